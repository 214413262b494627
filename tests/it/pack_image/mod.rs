//! `kiln pack` end to end on a real Debian 12 disk image through real
//! libguestfs (no skipping: a missing libguestfs fails this test):
//! 1. `--test-only` fails on the clean image, names the failing validator,
//!    exits non-zero and leaves the image's bytes unchanged;
//! 2. a pack installs packages from the Debian mirror through apt, runs
//!    scripts that take arguments and use another script's output, copies a
//!    file, and succeeds; its `--report` matches docs/report.schema.json
//!    and its `--log-file` holds every command with its output (a disk
//!    image's output is handed over when each command ends);
//! 3. `--test-only` then passes, and the files inside (read back through
//!    libguestfs) are what the manifest asked for;
//! 4. a manifest whose last validator fails leaves the image unchanged.
//!
//! Then, on images made for it, what Sahara's users relied on (copy_script in
//! test-only mode, the shebang rule) and that a pack keeps the image's
//! format, compression and backing file.

use crate::support;

use crate::support::reports;

use std::path::Path;
use std::process::{Command, Output};

use kiln::remote::image::{Accel, ImageOptions, ImageRemote};
use kiln::remote::{FileRead, Remote};
use support::{demo_image, repo_root, sha256_file};

mod batch;
mod batch_file;
mod stops;
mod verify;

/// Acceleration for these tests: `KILN_TEST_ACCEL`, default tcg (hardware
/// acceleration cannot run guests on this project's CI hosts; the fallback
/// itself is tested in image_target).
fn accel() -> String {
    std::env::var("KILN_TEST_ACCEL").unwrap_or_else(|_| "tcg".into())
}

fn kiln(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("kiln runs");
    eprintln!(
        "$ kiln {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `kiln pack --image IMAGE --accel ACCEL ARGS...`
fn pack(image: &Path, args: &[&str]) -> Output {
    let accel = accel();
    let mut all = vec![
        "pack",
        "--image",
        image.to_str().unwrap(),
        "--accel",
        &accel,
    ];
    all.extend_from_slice(args);
    kiln(&all)
}

/// A copy of the demo image per name, `DIR/NAME.qcow2`, for the tests
/// that pack several images.
fn demo_copies(dir: &Path, names: &[&str]) -> Vec<std::path::PathBuf> {
    names
        .iter()
        .map(|name| {
            let image = dir.join(format!("{name}.qcow2"));
            std::fs::copy(demo_image(), &image).unwrap();
            image
        })
        .collect()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn read_back(image: &Path, paths: &[&str]) -> Vec<Option<String>> {
    let options = ImageOptions {
        test_only: true,
        accel: Accel::Tcg,
        ..ImageOptions::new(image)
    };
    let mut session = ImageRemote::open(&options, &mut |_| {}).expect("the packed image opens");
    let contents = paths
        .iter()
        .map(|path| {
            session
                .read_file(&FileRead::new(path))
                .unwrap()
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect();
    session.discard();
    contents
}

#[test]
fn pack_test_only_then_pack_then_prove() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("demo.qcow2");
    std::fs::copy(demo_image(), &image).unwrap();
    let clean = sha256_file(&image);

    // 1. The clean image does not match: test-only names the validator and changes nothing.
    let output = pack(&image, &["--test-only", "demo", "1.0"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("FAILED    validators[1].package at "),
        "{text}"
    );
    assert!(text.contains("`dpkg -s less file` exited with 1"), "{text}");
    assert_eq!(
        sha256_file(&image),
        clean,
        "test-only must not change a byte"
    );

    // 2. The pack: apt from the Debian mirror, scripts with arguments and output, a copied file.
    let report = dir.path().join("report.json");
    let log = dir.path().join("pack.log");
    let output = pack(
        &image,
        &[
            "--report",
            report.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
            "demo",
            "1.0",
            "--motd",
            "Hello from the pack test",
            "--tools",
            "full",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "the pack passes");
    let text = stdout(&output);
    assert!(
        text.contains("changed   validators[1].package: installed less file"),
        "{text}"
    );
    assert!(
        text.contains(
            "validators[2].argument_case.cases.full[0].package: changed: installed procps"
        ),
        "{text}"
    );
    assert_ne!(sha256_file(&image), clean, "the pack changed the image");
    let report = reports::valid_json_report(&report);
    assert_eq!(report["passed"], true);
    assert_eq!(report["targets"][0]["distro"], "debian");
    assert!(report["targets"][0]["commands"].as_u64().unwrap() >= 10);
    let status = |path: &str| {
        report["targets"][0]["validators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["path"] == path)
            .unwrap_or_else(|| panic!("{path} in {report:#}"))["status"]
            .clone()
    };
    // The argument_case installed procps through its child: changed too.
    assert_eq!(status("validators[2].argument_case"), "changed");
    assert_eq!(status("validators[1].package"), "changed");
    let log = std::fs::read_to_string(&log).unwrap();
    // Not counted among the leftovers below.
    std::fs::remove_file(dir.path().join("pack.log")).unwrap();
    assert!(
        log.lines()
            .any(|line| line.contains("validators[1].package: $ ")
                && line.contains("apt-get -y install less file")
                && line.contains("-> exit 0")),
        "the install is not in the log:\n{log}"
    );
    for wanted in [
        "validators[1].package | Setting up less",
        "committing the changes",
        "PASSED in ",
    ] {
        assert!(log.contains(wanted), "`{wanted}` is not in the log:\n{log}");
    }

    // 3. Test-only now passes, and the files hold what the manifest asked for.
    let packed = sha256_file(&image);
    let output = pack(
        &image,
        &[
            "--test-only",
            "demo",
            "1.0",
            "--motd",
            "Hello from the pack test",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "the packed image conforms");
    assert_eq!(sha256_file(&image), packed);
    let files = read_back(
        &image,
        &["/etc/motd", "/tmp/healthcheck.sh", "/usr/bin/less"],
    );
    let motd = files[0].as_deref().expect("/etc/motd exists");
    assert!(
        motd.starts_with("Hello from the pack test (Debian 12."),
        "the motd script used the argument and os_version's output: {motd}"
    );
    let expected =
        std::fs::read_to_string(repo_root().join("manifests/demo/1.0/scripts/healthcheck.sh"))
            .unwrap();
    assert_eq!(files[1].as_deref(), Some(expected.as_str()));
    assert!(files[2].is_some(), "less is installed");

    // 4. A manifest whose last validator fails leaves the image as it was.
    let failing = dir.path().join("failing");
    copy_dir(&repo_root().join("manifests/demo/1.0"), &failing);
    let manifest = failing.join("image.yaml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("  - script:\n      break_it:\n        inline: |\n          echo broken > /etc/motd\n          exit 7\n");
    std::fs::write(&manifest, text).unwrap();
    let output = pack(&image, &["--manifest", manifest.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("FAILED    validators[6].script at "),
        "{text}"
    );
    assert!(text.contains("script `break_it` exited with 7"), "{text}");
    assert!(text.contains("left unchanged"), "{text}");
    assert_eq!(
        sha256_file(&image),
        packed,
        "a failed pack leaves the image byte for byte"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        3,
        "no overlay or staging file is left behind: {leftovers:?}"
    );
}

/// `qemu-img info --output=json` (or `check`) of `image`, parsed.
fn qemu_img_json(verb: &str, image: &Path) -> serde_json::Value {
    let output = Command::new("qemu-img")
        .args([verb, "--output=json"])
        .arg(image)
        .output()
        .expect("qemu-img runs");
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("qemu-img {verb} {}: {e}", image.display()))
}

fn qemu_img(args: &[&str]) {
    let output = Command::new("qemu-img").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A manifest that relies on what Sahara's users relied on: `copy_script`
/// puts a file in /tmp that a later script reads (in both modes), a
/// `#!/bin/bash` script uses bash-isms, and a script without a shebang tells
/// which shell ran it. In reconcile mode the scripts leave their findings in
/// /root for reading back.
fn write_sahara_habits_manifest(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let files = [
        (
            "image.yaml",
            "validators:\n  - copy_script: files/data.txt\n  - script: uses-copy.sh\n  - script: bash.sh\n  - script: no-shebang.sh\n",
        ),
        ("data.txt", "kiln data\n"),
        (
            "uses-copy.sh",
            "#!/bin/sh\ngrep -qx 'kiln data' /tmp/data.txt || { echo \"/tmp/data.txt: $(cat /tmp/data.txt 2>&1)\" >&2; exit 4; }\n[ \"$test_only\" = 1 ] || cp /tmp/data.txt /root/kiln-copied\n",
        ),
        (
            "bash.sh",
            "#!/bin/bash\nwords=(one two three)\n[[ ${words[2]} == three ]] || exit 3\necho \"bash-isms work: ${words[*]}\"\n[ \"$test_only\" = 1 ] || echo \"${words[*]}\" > /root/kiln-bash\n",
        ),
        (
            "no-shebang.sh",
            "shell=$(readlink -f /proc/$$/exe)\necho \"no-shebang shell: $shell, BASH_VERSION=${BASH_VERSION:-unset}\"\n[ \"$test_only\" = 1 ] || echo \"$shell ${BASH_VERSION:-unset}\" > /root/kiln-sh\n",
        ),
    ];
    std::fs::create_dir_all(dir.join("files")).unwrap();
    for (name, text) in files {
        let path = if name == "data.txt" {
            dir.join("files").join(name)
        } else {
            dir.join(name)
        };
        std::fs::write(path, text).unwrap();
    }
    dir.join("image.yaml")
}

/// On a real Debian image, in four appliance launches:
/// 1. test-only on a clean image: `copy_script` copies the missing file to
///    scratch (a later script reads it) and passes without a change; the
///    bash script's bash-isms work; the script without a shebang runs under
///    the guest's /bin/sh (dash); neither image file changes;
/// 2. a pack of a compressed qcow2 with a backing file keeps it compressed,
///    small (not flattened) and on the same backing file, which stays
///    unchanged; `--selinux-relabel` notes that Debian has no SELinux policy;
/// 3. reading the result back through that backing file shows the scripts'
///    work;
/// 4. a raw image stays raw.
#[test]
fn pack_keeps_sahara_habits_and_the_image_layout() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_sahara_habits_manifest(&dir.path().join("habits"));
    let manifest = manifest.to_str().unwrap();

    // A compressed top layer over a base: the top holds the first MiB of
    // the disk again (same bytes), written as compressed clusters.
    let base = dir.path().join("base.qcow2");
    std::fs::copy(demo_image(), &base).unwrap();
    let top = dir.path().join("top.qcow2");
    let head = dir.path().join("head.raw");
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        "base.qcow2",
        top.to_str().unwrap(),
    ]);
    qemu_img(&[
        "dd",
        "-f",
        "qcow2",
        "-O",
        "raw",
        "bs=1M",
        "count=1",
        &format!("if={}", base.display()),
        &format!("of={}", head.display()),
    ]);
    let written = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c"])
        .arg(format!("write -c -s {} 0 1M", head.display()))
        .arg(&top)
        .output()
        .expect("qemu-io runs");
    assert!(written.status.success(), "{written:?}");
    std::fs::remove_file(&head).unwrap();
    let compressed = |image: &Path| qemu_img_json("check", image)["compressed-clusters"].as_u64();
    assert_eq!(
        compressed(&top),
        Some(16),
        "the top layer starts compressed"
    );
    let base_sum = sha256_file(&base);
    let top_sum = sha256_file(&top);

    // 1. Test-only on the clean image.
    let log = dir.path().join("test-only.log");
    let output = pack(
        &top,
        &["--test-only", "--log-file", log.to_str().unwrap(), manifest],
    );
    assert_eq!(output.status.code(), Some(0), "test-only passes");
    let text = stdout(&output);
    assert!(
        text.contains("validators[0].copy_script: ok ("),
        "copy_script passed, not changed: {text}"
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    assert!(
        log_text.contains("bash-isms work: one two three"),
        "{log_text}"
    );
    assert!(
        log_text.contains("no-shebang shell: /usr/bin/dash, BASH_VERSION=unset"),
        "{log_text}"
    );
    assert_eq!(sha256_file(&top), top_sum, "test-only changes no byte");
    assert_eq!(sha256_file(&base), base_sum);

    // 2. The pack keeps the layout; `--selinux-relabel` on a guest without
    // SELinux says so and does nothing.
    let output = pack(&top, &["--selinux-relabel", manifest]);
    assert_eq!(output.status.code(), Some(0), "the pack passes");
    let text = stdout(&output);
    assert!(
        text.contains("validators[0].copy_script: changed: wrote /tmp/data.txt"),
        "{text}"
    );
    assert!(
        text.contains("SELinux relabel: the guest has no SELinux policy"),
        "{text}"
    );
    assert_ne!(sha256_file(&top), top_sum, "the pack changed the image");
    assert_eq!(
        sha256_file(&base),
        base_sum,
        "the backing file is unchanged"
    );
    let info = qemu_img_json("info", &top);
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["backing-filename"], "base.qcow2", "{info:#}");
    assert_eq!(info["backing-filename-format"], "qcow2", "{info:#}");
    // The rebase drops the top's clusters that equal the backing file's, so
    // what is left is the pack's changes: (nearly) all of them compressed.
    let check = qemu_img_json("check", &top);
    let allocated = check["allocated-clusters"].as_u64().unwrap();
    assert!(
        compressed(&top).is_some_and(|n| n > 0 && n * 2 >= allocated),
        "the result is compressed: {check:#}"
    );
    let size = std::fs::metadata(&top).unwrap().len();
    assert!(
        size < 32 << 20,
        "the top layer holds the changes, not the whole disk: {size} bytes"
    );

    // 3. Read back through the backing file.
    let files = read_back(
        &top,
        &[
            "/root/kiln-copied",
            "/root/kiln-bash",
            "/root/kiln-sh",
            "/etc/debian_version",
            "/.autorelabel",
        ],
    );
    assert_eq!(files[0].as_deref(), Some("kiln data\n"));
    assert_eq!(files[1].as_deref(), Some("one two three\n"));
    assert_eq!(files[2].as_deref(), Some("/usr/bin/dash unset\n"));
    assert!(
        files[3].as_deref().is_some_and(|v| v.starts_with("12.")),
        "{files:?}"
    );
    assert_eq!(
        files[4], None,
        "no relabel was scheduled on a guest without SELinux"
    );

    // 4. Raw stays raw.
    let raw = dir.path().join("disk.img");
    qemu_img(&[
        "convert",
        "-f",
        "qcow2",
        "-O",
        "raw",
        demo_image().to_str().unwrap(),
        raw.to_str().unwrap(),
    ]);
    let raw_sum = sha256_file(&raw);
    let output = pack(&raw, &[manifest]);
    assert_eq!(output.status.code(), Some(0), "the raw pack passes");
    assert_ne!(sha256_file(&raw), raw_sum, "the pack changed the raw image");
    assert_eq!(qemu_img_json("info", &raw)["format"], "raw");
}

/// `--selinux-relabel` changes the image, so test-only refuses it before
/// anything is opened.
#[test]
fn selinux_relabel_does_not_go_with_test_only() {
    let output = kiln(&[
        "pack",
        "--image",
        "/nonexistent.qcow2",
        "--test-only",
        "--selinux-relabel",
        "demo",
        "1.0",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("'--test-only' cannot be used with '--selinux-relabel'"),
        "{stderr}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

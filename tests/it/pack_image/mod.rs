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

/// A `kiln pack` run in progress: its stdout and stderr lines arrive on
/// one channel, so a test can act at the step it waits for.
struct Interruptible {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: String,
}

impl Interruptible {
    /// `kiln pack -v --image IMAGE --accel ACCEL ARGS...` with its own
    /// process group (so the test can signal the group as a terminal's
    /// Ctrl-C does) and `TMPDIR` set to `tmp`, which must be empty after.
    fn start(image: &Path, tmp: &Path, pause_at: Option<&str>, args: &[&str]) -> Interruptible {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command
            .args(["pack", "-v", "--image", image.to_str().unwrap()])
            .args(["--accel", &accel()])
            .args(args)
            .current_dir(repo_root())
            .env("TMPDIR", tmp)
            // libguestfs keeps its appliance cache under TMPDIR by default;
            // keep using the shared one instead of building a new one.
            .env("LIBGUESTFS_CACHEDIR", "/var/tmp")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        match pause_at {
            Some(point) => command.env("KILN_TEST_PAUSE_AT", point),
            None => command.env_remove("KILN_TEST_PAUSE_AT"),
        };
        let mut child = command.spawn().expect("kiln starts");
        let (sender, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let stdout_sender = sender.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = stdout_sender.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Interruptible {
            child,
            lines,
            seen: String::new(),
        }
    }

    /// Waits (at most `limit`) for a line satisfying `wanted`, or for
    /// `ready` to hold, checked between lines.
    fn wait_until(&mut self, limit: std::time::Duration, mut ready: impl FnMut(&str) -> bool) {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            match self
                .lines
                .recv_timeout(std::time::Duration::from_millis(100))
            {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if ready(&line) {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if ready("") {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("kiln ended before the awaited step:\n{}", self.seen)
                }
            }
        }
        let _ = self.child.kill();
        panic!("the awaited step never came:\n{}", self.seen);
    }

    /// Sends `signal` to kiln alone, or to its whole process group.
    fn signal(&self, signal: i32, group: bool) {
        let pid = self.child.id() as i32;
        // SAFETY: sending a signal to a process (group) this test started.
        let sent = unsafe {
            if group {
                libc::killpg(pid, signal)
            } else {
                libc::kill(pid, signal)
            }
        };
        assert_eq!(sent, 0, "sending signal {signal}");
    }

    /// Waits for kiln to exit (three minutes at most, a sanity bound) and
    /// returns its exit code and everything it printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            match self
                .lines
                .recv_timeout(std::time::Duration::from_millis(200))
            {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if std::time::Instant::now() > deadline {
                        let _ = self.child.kill();
                        panic!("kiln did not stop after the signal:\n{}", self.seen);
                    }
                }
            }
        }
        let status = self.child.wait().unwrap();
        eprintln!("--- kiln exited with {status}:\n{}", self.seen);
        (status.code(), self.seen)
    }
}

/// Processes whose command line mentions `needle` (an appliance's qemu
/// names its overlay or image, which live in the test's directory).
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(needle).then_some(text)
        })
        .collect()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// What every interrupted pack must leave: the exit status, the message,
/// the image byte for byte, no qemu, and no overlay, staged or temporary
/// file beside the image or in the temp directory.
fn assert_interrupted_cleanly(
    phase: &str,
    result: (Option<i32>, String),
    expected_code: i32,
    dir: &Path,
    tmp: &Path,
    image: &Path,
    clean: &str,
) {
    assert_stopped_cleanly(
        phase,
        result,
        (expected_code, "interrupted"),
        dir,
        tmp,
        image,
        clean,
    )
}

/// [`assert_interrupted_cleanly`] for any stop: `stop` is the exit status
/// and how kiln's message names the stop (`interrupted`, `timed out after 90s`).
fn assert_stopped_cleanly(
    phase: &str,
    (code, text): (Option<i32>, String),
    (expected_code, stop): (i32, &str),
    dir: &Path,
    tmp: &Path,
    image: &Path,
    clean: &str,
) {
    assert_eq!(code, Some(expected_code), "{phase}: exit status\n{text}");
    assert!(
        text.contains(&format!("kiln: {stop}; {} unchanged", image.display())),
        "{phase}: the message\n{text}"
    );
    for bad in [
        "double free",
        "panicked",
        "libguestfs: error",
        "call launch before",
    ] {
        assert!(!text.contains(bad), "{phase}: `{bad}` in\n{text}");
    }
    assert_eq!(sha256_file(image), clean, "{phase}: the image changed");
    // qemu is killed and reaped before kiln exits; the bound only absorbs
    // a loaded machine's scheduling.
    let needle = dir.to_string_lossy().into_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !processes_mentioning(&needle).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        processes_mentioning(&needle),
        Vec::<String>::new(),
        "{phase}: a process still uses the test's files"
    );
    assert_eq!(
        names_in(dir),
        ["demo.qcow2", "manifest", "tmp"],
        "{phase}: files left beside the image"
    );
    assert_eq!(
        names_in(tmp),
        Vec::<String>::new(),
        "{phase}: files left in TMPDIR"
    );
}

/// SIGINT and SIGTERM at each phase of a pack: before the appliance
/// launches, while it boots, during a validator's command, and in the
/// middle of the commit (after the result is written to a staging file,
/// before the rename). Each leaves the image as it was, no process and no
/// file behind, and exits 130 (SIGINT) or 143 (SIGTERM). A signal just
/// after the rename reports the image written. The pauses come
/// from the test-only hook `KILN_TEST_PAUSE_AT`, which does nothing unless
/// set; the boot and the validator are caught from kiln's own output.
#[test]
fn interrupts_leave_the_image_unchanged_at_every_phase() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("demo.qcow2");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::copy(demo_image(), &image).unwrap();
    let clean = sha256_file(&image);
    let manifest_dir = dir.path().join("manifest");
    std::fs::create_dir(&manifest_dir).unwrap();
    let slow = manifest_dir.join("slow.yaml");
    std::fs::write(
        &slow,
        "validators:\n  - script:\n      long_step:\n        inline: |\n          echo changed > /etc/kiln-interrupted\n          sleep 600\n",
    )
    .unwrap();
    let quick = manifest_dir.join("quick.yaml");
    std::fs::write(
        &quick,
        "validators:\n  - script:\n      quick_step:\n        inline: echo changed > /etc/kiln-interrupted\n",
    )
    .unwrap();
    let check = |phase: &str, result, code| {
        assert_interrupted_cleanly(phase, result, code, dir.path(), &tmp, &image, &clean)
    };

    // 1. Before launch: the overlay exists, no appliance yet. SIGINT to kiln alone.
    let mut run = Interruptible::start(&image, &tmp, Some("launch"), &["demo", "1.0"]);
    run.wait_until(Duration::from_secs(120), |line| {
        line.contains("test pause at launch")
    });
    assert!(
        names_in(dir.path())
            .iter()
            .any(|n| n.contains("kiln-overlay")),
        "the overlay exists before the launch"
    );
    run.signal(libc::SIGINT, false);
    check("before launch", run.finish(), 130);

    // 2. During the boot: SIGTERM as soon as the appliance's qemu runs.
    let mut run = Interruptible::start(&image, &tmp, None, &["demo", "1.0"]);
    let needle = dir.path().to_string_lossy().into_owned();
    run.wait_until(Duration::from_secs(300), |_| {
        processes_mentioning(&needle)
            .iter()
            .any(|p| p.contains("qemu"))
    });
    run.signal(libc::SIGTERM, false);
    let (code, text) = run.finish();
    assert!(
        !text.contains("image ready"),
        "the boot had finished:\n{text}"
    );
    check("during the boot", (code, text), 143);

    // 3. During a validator's command: Ctrl-C to the whole process group,
    //    as a terminal sends it, while the guest sleeps.
    let slow_path = slow.to_str().unwrap();
    let mut run = Interruptible::start(&image, &tmp, None, &["--manifest", slow_path]);
    run.wait_until(Duration::from_secs(300), |line| {
        line.contains("validators[0].script: apply run long_step")
    });
    std::thread::sleep(Duration::from_secs(2));
    run.signal(libc::SIGINT, true);
    let (code, text) = run.finish();
    assert!(
        text.contains("validators[0].script: FAILED: image demo.qcow2: interrupted"),
        "{text}"
    );
    assert!(!text.contains("committing"), "{text}");
    check("during a validator", (code, text), 130);

    // 4. During the commit: the changed image is in a staging file beside
    //    the original, not yet renamed over it.
    let quick_path = quick.to_str().unwrap();
    let mut run = Interruptible::start(&image, &tmp, Some("commit"), &["--manifest", quick_path]);
    run.wait_until(Duration::from_secs(300), |line| {
        line.contains("test pause at commit")
    });
    assert!(
        names_in(dir.path())
            .iter()
            .any(|n| n.contains("kiln-commit")),
        "the staging file exists during the commit: {:?}",
        names_in(dir.path())
    );
    run.signal(libc::SIGINT, false);
    let (code, text) = run.finish();
    assert!(text.contains("committing the changes"), "{text}");
    check("during the commit", (code, text), 130);

    // 5. Just after the commit's rename: the new image stands, and kiln
    //    says so instead of claiming it unchanged.
    let mut run =
        Interruptible::start(&image, &tmp, Some("committed"), &["--manifest", quick_path]);
    run.wait_until(Duration::from_secs(300), |line| {
        line.contains("test pause at committed")
    });
    run.signal(libc::SIGTERM, false);
    let (code, text) = run.finish();
    assert_eq!(code, Some(143), "{text}");
    assert!(
        text.contains(&format!(
            "kiln: interrupted after the commit; {} was written",
            image.display()
        )),
        "{text}"
    );
    assert_ne!(sha256_file(&image), clean, "the commit completed");
    assert_eq!(names_in(dir.path()), ["demo.qcow2", "manifest", "tmp"]);
    assert_eq!(names_in(&tmp), Vec::<String>::new());
}

/// `--timeout` passing while the guest runs a slow script stops the pack
/// as Ctrl-C does: nothing is committed, so the image keeps its bytes, and
/// no qemu, overlay or temporary file is left; kiln exits 124 and its
/// closing line says the run timed out. (Whether the deadline lands in the
/// boot or in the script, the outcome asserted is the same.)
#[test]
fn a_timed_out_pack_leaves_the_image_byte_identical() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("demo.qcow2");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::copy(demo_image(), &image).unwrap();
    let clean = sha256_file(&image);
    let manifest_dir = dir.path().join("manifest");
    std::fs::create_dir(&manifest_dir).unwrap();
    let slow = manifest_dir.join("slow.yaml");
    std::fs::write(
        &slow,
        "validators:\n  - script:\n      long_step:\n        inline: |\n          echo changed > /etc/kiln-timed-out\n          sleep 600\n",
    )
    .unwrap();
    let mut run = Interruptible::start(
        &image,
        &tmp,
        None,
        &["--timeout", "90s", "--manifest", slow.to_str().unwrap()],
    );
    run.wait_until(Duration::from_secs(300), |line| {
        line.contains("TIMED OUT after 90s")
    });
    let (code, text) = run.finish();
    assert!(!text.contains("committing"), "{text}");
    assert_stopped_cleanly(
        "timed out",
        (code, text),
        (124, "timed out after 90s"),
        dir.path(),
        &tmp,
        &image,
        &clean,
    );
}

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

mod support;

#[path = "support/reports.rs"]
mod reports;

use std::path::Path;
use std::process::{Command, Output};

use kiln::remote::{FileRead, Remote};
use kiln::target::image::{Accel, ImageOptions, ImageSession};
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
    let mut session = ImageSession::open(&options, &mut |_| {}).expect("the packed image opens");
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

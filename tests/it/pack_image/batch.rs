//! `kiln pack` with several `--image`s on real copies of the demo image:
//! one appliance for all of them, a result per image, the passing images
//! changed and written, the failing one byte-identical; a test-only batch
//! changes nothing; and the refusals that need no appliance.

use super::*;

/// The batch tests' manifest: a script that fails on an image holding
/// /etc/kiln-marker, one that stamps /root/kiln-stamp (and in test-only
/// mode checks for it), and a copied file.
fn write_batch_manifest(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let files = [
        (
            "image.yaml",
            "validators:\n  - script: refuse-marked.sh\n  - script: stamp.sh\n  - copy_script: files/data.txt\n",
        ),
        (
            "refuse-marked.sh",
            "#!/bin/sh\nif [ -e /etc/kiln-marker ]; then echo 'this image is marked' >&2; exit 3; fi\n",
        ),
        (
            "stamp.sh",
            "#!/bin/sh\nif [ \"$test_only\" = 1 ]; then grep -qx stamped /root/kiln-stamp; exit $?; fi\necho stamped > /root/kiln-stamp\n",
        ),
        ("files/data.txt", "kiln data\n"),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir.join("image.yaml")
}

/// Writes /etc/kiln-marker into `image` with guestfish (not with kiln, so
/// the test does not lean on what it tests).
fn mark(image: &Path, scratch: &Path) {
    let marker = scratch.join("marker");
    std::fs::write(&marker, "marked\n").unwrap();
    let status = Command::new("guestfish")
        .args(["-a", image.to_str().unwrap(), "-i", "upload"])
        .arg(&marker)
        .arg("/etc/kiln-marker")
        .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
        .status()
        .expect("guestfish runs");
    assert!(
        status.success(),
        "guestfish could not mark {}",
        image.display()
    );
}

/// Watches /proc while kiln runs and collects every qemu process whose
/// command line mentions `needle` (the test's directory, where the images
/// and their overlays live): how many appliances a run really launched.
pub(super) struct QemuWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<std::collections::BTreeMap<u32, String>>,
}

impl QemuWatch {
    pub(super) fn start(needle: &Path) -> QemuWatch {
        let needle = needle.to_string_lossy().into_owned();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = std::collections::BTreeMap::new();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                for (pid, cmdline) in support::processes_mentioning(&needle) {
                    // The appliance itself, not the qemu-img runs around it.
                    if cmdline.contains("qemu-system") {
                        seen.entry(pid).or_insert(cmdline);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            seen
        });
        QemuWatch { stop, thread }
    }

    pub(super) fn finish(self) -> std::collections::BTreeMap<u32, String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Three copies of the demo image, the middle one marked, in one
/// `kiln pack`: exactly one qemu ran (holding all three images' overlays);
/// the marked image fails and keeps its bytes, the other two pass and are
/// written; the report has one entry per image with its result; kiln exits
/// with 1. Then a `--test-only` batch of the three finds the stamps in the
/// two packed images (and the marker in the third) and changes no byte.
#[test]
fn a_batch_packs_each_image_in_one_appliance_and_keeps_the_failing_one() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_batch_manifest(&dir.path().join("manifest"));
    let images = demo_copies(dir.path(), &["a", "b", "c"]);
    mark(&images[1], dir.path());
    let before: Vec<_> = images.iter().map(|i| sha256_file(i)).collect();
    let report = dir.path().join("report.json");

    let watch = QemuWatch::start(dir.path());
    let output = pack(
        &images[0],
        &[
            "-v",
            "--image",
            images[1].to_str().unwrap(),
            "--image",
            images[2].to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            manifest.to_str().unwrap(),
        ],
    );
    let qemus = watch.finish();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "one image failed\n{text}");
    assert_eq!(qemus.len(), 1, "one appliance for the batch: {qemus:#?}");
    let cmdline = qemus.values().next().unwrap();
    for name in ["a.qcow2", "b.qcow2", "c.qcow2"] {
        assert!(
            cmdline.contains(&format!(".{name}.kiln-overlay-")),
            "the appliance holds {name}'s overlay: {cmdline}"
        );
    }
    assert_ne!(
        sha256_file(&images[0]),
        before[0],
        "a passed and was written"
    );
    assert_eq!(sha256_file(&images[1]), before[1], "b failed: unchanged");
    assert_ne!(
        sha256_file(&images[2]),
        before[2],
        "c passed and was written"
    );
    assert!(text.contains("this image is marked"), "{text}");
    assert!(text.contains("b.qcow2 left unchanged"), "{text}");
    assert!(text.contains("FAILED: 2 of 3 images passed"), "{text}");

    let report = reports::valid_json_report(&report);
    let targets = report["targets"].as_array().unwrap();
    let results: Vec<_> = targets
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap().to_string(),
                t["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let named = |name: &str, result: &str| {
        (
            format!("image {}", dir.path().join(name).display()),
            result.to_string(),
        )
    };
    assert_eq!(
        results,
        [
            named("a.qcow2", "passed"),
            named("b.qcow2", "failed"),
            named("c.qcow2", "passed")
        ]
    );
    assert_eq!(
        targets[1]["error"]["validator"].as_str(),
        Some("validators[0].script")
    );
    assert_eq!(report["passed"], false);

    // Test-only: the stamps are in a and c, b still refuses; nothing changes.
    let packed: Vec<_> = images.iter().map(|i| sha256_file(i)).collect();
    let output = pack(
        &images[0],
        &[
            "--test-only",
            "--image",
            images[1].to_str().unwrap(),
            "--image",
            images[2].to_str().unwrap(),
            manifest.to_str().unwrap(),
        ],
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let closing: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("PASSED ") || l.starts_with("FAILED "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let shown = |word: &str, name: &str| format!("{word} {}", dir.path().join(name).display());
    assert_eq!(
        closing,
        [
            shown("PASSED", "a.qcow2"),
            shown("FAILED", "b.qcow2"),
            shown("PASSED", "c.qcow2")
        ],
        "{text}"
    );
    let after: Vec<_> = images.iter().map(|i| sha256_file(i)).collect();
    assert_eq!(after, packed, "a test-only batch changes no byte");
}

/// Refused before anything loads or launches, with a one-line reason and
/// exit status 2: `--output` with two images, and one image named twice
/// (here once through a symlink).
#[test]
fn a_batch_refuses_output_and_a_repeated_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("a.qcow2");
    let other = dir.path().join("b.qcow2");
    std::fs::write(&image, b"not opened").unwrap();
    std::fs::write(&other, b"not opened either").unwrap();
    let alias = dir.path().join("alias.qcow2");
    std::os::unix::fs::symlink(&image, &alias).unwrap();
    let output = dir.path().join("out.qcow2");

    let refused = kiln(&[
        "pack",
        "--image",
        image.to_str().unwrap(),
        "--image",
        other.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "demo",
        "1.0",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "kiln: --output {} names one result, but 2 images were given; leave --output out to pack each image in place",
            output.display()
        )
    );
    assert!(!output.exists());

    let refused = kiln(&[
        "pack",
        "--image",
        image.to_str().unwrap(),
        "--image",
        alias.to_str().unwrap(),
        "demo",
        "1.0",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(
        stderr.trim_end(),
        format!(
            "kiln: --image {} is the same file as --image {}; each image can be packed only once per run",
            alias.display(),
            image.display()
        )
    );
    assert_eq!(std::fs::read(&image).unwrap(), b"not opened");
}

//! `kiln pack --verify` on real copies of the demo image: the manifest runs
//! again in test-only mode in the same appliance before the commit, and a
//! pack that does not pass its own check is not written. Once for one
//! image and once for a batch, so both ways of running an image keep the
//! verify pass.

use super::*;

/// A manifest whose script stamps /root/kiln-stamp only when its argument
/// `stamp` is `yes`, and whose test-only run checks for the stamp: with
/// `--stamp no` the pack passes but its verify pass does not.
pub(super) fn write_stamp_manifest(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let files = [
        (
            "image.yaml",
            "arguments:\n  stamp:\n    default: \"yes\"\nvalidators:\n  - script:\n      stamp.sh:\n        env_vars: [stamp]\n",
        ),
        (
            "stamp.sh",
            "#!/bin/sh\nif [ \"$test_only\" = 1 ]; then grep -qx \"stamped\" /root/kiln-stamp; exit $?; fi\nif [ \"$stamp\" = yes ]; then echo stamped > /root/kiln-stamp; fi\nexit 0\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir.join("image.yaml")
}

const VERIFYING: &str = "verifying: running the manifest again in test-only mode";

/// One image: `--stamp no` packs without the stamp, the verify pass finds
/// none, and the image keeps its bytes (exit 1).
#[test]
fn verify_keeps_an_image_whose_pack_does_not_pass_its_own_check() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_stamp_manifest(&dir.path().join("manifest"));
    let image = dir.path().join("a.qcow2");
    std::fs::copy(demo_image(), &image).unwrap();
    let before = sha256_file(&image);

    let output = pack(
        &image,
        &["--verify", manifest.to_str().unwrap(), "--stamp", "no"],
    );
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "the verify pass fails\n{text}"
    );
    assert!(text.contains(VERIFYING), "{text}");
    assert!(text.contains("a.qcow2 left unchanged"), "{text}");
    assert_eq!(
        sha256_file(&image),
        before,
        "a failed verify writes nothing"
    );
}

/// A batch of two: each image's pack stamps it, each verify pass finds the
/// stamp (the report lists the script's command twice, reconciling then
/// test-only), both are written and the stamp is in each.
#[test]
fn verify_runs_for_each_image_of_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_stamp_manifest(&dir.path().join("manifest"));
    let images = demo_copies(dir.path(), &["a", "b"]);
    let before: Vec<_> = images.iter().map(|i| sha256_file(i)).collect();
    let report = dir.path().join("report.json");

    let output = pack(
        &images[0],
        &[
            "--verify",
            "--image",
            images[1].to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            manifest.to_str().unwrap(),
        ],
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(text.matches(VERIFYING).count(), 2, "{text}");
    for (image, before) in images.iter().zip(&before) {
        assert_ne!(&sha256_file(image), before, "{} written", image.display());
    }
    let report = reports::valid_json_report(&report);
    for target in report["targets"].as_array().unwrap() {
        assert_eq!(target["result"], "passed", "{target}");
        let modes: Vec<_> = target["validators"][0]["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c["env"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["name"] == "test_only")
                    .map(|e| e["value"].as_str().unwrap().to_string())
            })
            .collect();
        assert_eq!(
            modes,
            [Some("0".to_string()), Some("1".to_string())],
            "the pack, then its verify pass: {target}"
        );
    }
    assert_eq!(
        read_back(&images[1], &["/root/kiln-stamp"]),
        [Some("stamped\n".to_string())]
    );
}

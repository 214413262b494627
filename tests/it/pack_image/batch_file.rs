//! `kiln pack --batch FILE` on real copies of the demo image: each line's
//! image packed with that line's manifest and arguments, all in one
//! appliance, each result named by its line; and a bad line refused with
//! `FILE:LINE:COL` before anything launches, every image unchanged.

use super::batch::QemuWatch;
use super::*;

/// A manifest whose script writes its argument `word` to `/root/NAME`
/// (and in test-only mode checks it is there).
fn write_word_manifest(dir: &Path, name: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let script = format!(
        "#!/bin/sh\nif [ \"$test_only\" = 1 ]; then [ \"$(cat /root/{name})\" = \"$word\" ]; exit $?; fi\nprintf '%s\\n' \"$word\" > /root/{name}\n"
    );
    std::fs::write(dir.join("write.sh"), script).unwrap();
    std::fs::write(
        dir.join("image.yaml"),
        "arguments:\n  word:\n    required: true\nvalidators:\n  - script:\n      write.sh:\n        env_vars: [word]\n",
    )
    .unwrap();
    dir.join("image.yaml")
}

/// `cat`s `path` from the first partition of each image, with guestfish in
/// one appliance (not with kiln: the test does not lean on what it tests);
/// `None` where the file is absent.
fn cat_each(images: &[&Path], path: &str) -> Vec<Option<String>> {
    use std::io::Write;
    let mut command = Command::new("guestfish");
    command
        .arg("--ro")
        .env("LIBGUESTFS_BACKEND_SETTINGS", "force_tcg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for image in images {
        command.args(["--format=qcow2", "-a", image.to_str().unwrap()]);
    }
    // A script on stdin: `-cat` goes on when the file is absent.
    let mut script = String::from("run\n");
    for index in 0..images.len() {
        let device = format!("/dev/sd{}1", (b'a' + index as u8) as char);
        script += &format!("mount {device} /\n-cat {path}\necho KILN-END\numount /\n");
    }
    let mut child = command.spawn().expect("guestfish runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "guestfish: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .split_terminator("KILN-END\n")
        // guestfish's `cat` ends what it prints with a newline of its own.
        .map(|text| text.strip_suffix('\n').map(str::to_string))
        .collect()
}

/// Two images, two manifests, two arguments (one given as a quoted
/// `--arg` pair with a space in its value), with `--verify`, in one
/// `kiln pack --batch`: one qemu held both overlays; each image holds its
/// own line's result and not the other's; the report names each line; a
/// `--test-only` run of the same file passes and changes nothing.
#[test]
fn a_batch_file_packs_each_line_with_its_own_manifest_and_arguments_in_one_appliance() {
    let dir = tempfile::tempdir().unwrap();
    write_word_manifest(&dir.path().join("first"), "kiln-first");
    write_word_manifest(&dir.path().join("second"), "kiln-second");
    let images = demo_copies(dir.path(), &["a", "b"]);
    let batch = dir.path().join("images.txt");
    std::fs::write(
        &batch,
        "# relative to this file's directory\na.qcow2 first/image.yaml --word alpha\n\n\"b.qcow2\"  second/image.yaml --arg 'word=beta gamma'  # the second\n",
    )
    .unwrap();
    let report = dir.path().join("report.json");

    let watch = QemuWatch::start(dir.path());
    let output = kiln(&[
        "pack",
        "--accel",
        &accel(),
        "--verify",
        "--report",
        report.to_str().unwrap(),
        "--batch",
        batch.to_str().unwrap(),
    ]);
    let qemus = watch.finish();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(qemus.len(), 1, "one appliance for the batch: {qemus:#?}");
    let cmdline = qemus.values().next().unwrap();
    for name in ["a.qcow2", "b.qcow2"] {
        assert!(
            cmdline.contains(&format!(".{name}.kiln-overlay-")),
            "the appliance holds {name}'s overlay: {cmdline}"
        );
    }
    let place = |line: usize| format!("{}:{line}", batch.display());
    for (image, line) in images.iter().zip([2, 4]) {
        let closing = format!("PASSED      {} ({})", image.display(), place(line));
        assert!(text.contains(&closing), "{closing}\n{text}");
    }
    assert!(text.contains("PASSED: 2 of 2 images passed"), "{text}");

    let [a, b] = [images[0].as_path(), images[1].as_path()];
    assert_eq!(
        cat_each(&[a, b], "/root/kiln-first"),
        [Some("alpha\n".to_string()), None]
    );
    assert_eq!(
        cat_each(&[a, b], "/root/kiln-second"),
        [None, Some("beta gamma\n".to_string())]
    );

    // Test-only with the same file: each line's check passes, no byte changes.
    let packed = (sha256_file(a), sha256_file(b));
    let output = kiln(&[
        "pack",
        "--accel",
        &accel(),
        "--test-only",
        "--batch",
        batch.to_str().unwrap(),
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("checking (read-only) 2 images"), "{text}");
    assert_eq!((sha256_file(a), sha256_file(b)), packed);

    let report = reports::valid_json_report(&report);
    assert_eq!(report["manifest"], serde_json::Value::Null, "one a line");
    let targets: Vec<_> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap().to_string(),
                t["result"].as_str().unwrap().to_string(),
                t["validators"][0]["summary"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [
            (
                format!("image {} ({})", a.display(), place(2)),
                "passed".to_string(),
                "run write.sh".to_string()
            ),
            (
                format!("image {} ({})", b.display(), place(4)),
                "passed".to_string(),
                "run write.sh".to_string()
            ),
        ]
    );
}

/// A bad line anywhere (here after a good one) is refused with
/// `FILE:LINE:COL`, exit 2, before anything launches: no qemu, no overlay,
/// every image byte-identical. Then `--batch` with `--image` is refused.
#[test]
fn a_bad_batch_line_names_its_place_and_launches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_word_manifest(&dir.path().join("m"), "kiln-word");
    let image = dir.path().join("a.qcow2");
    std::fs::copy(demo_image(), &image).unwrap();
    let other = dir.path().join("b.qcow2");
    std::fs::write(&other, b"not opened").unwrap();
    std::os::unix::fs::symlink(&image, dir.path().join("alias.qcow2")).unwrap();
    let before = (sha256_file(&image), sha256_file(&other));
    let batch = dir.path().join("images.txt");
    let cases = [
        ("b.qcow2 nosuch 1.0", "4:9: no plugin `nosuch` in"),
        (
            "b.qcow2 m/image.yaml --wrod x",
            "4:22: DIR/m/image.yaml takes no argument `--wrod` (it takes: --word); did you mean `--word`?",
        ),
        (
            "b.qcow2 m/image.yaml --word 'unclosed",
            "4:29: this ' is never closed",
        ),
        (
            "b.qcow2 m/image.yaml",
            "4:9: bad plugin arguments: Argument word is required for image processing",
        ),
        (
            "alias.qcow2 m/image.yaml --word x",
            "4:1: alias.qcow2 is the same file as DIR/a.qcow2 on line 2; each image can be packed only once per run",
        ),
    ];
    let shown_dir = dir.path().display().to_string();
    for (bad, expected) in cases {
        std::fs::write(
            &batch,
            format!("# a good line, then a bad one\na.qcow2 m/image.yaml --word x\n\n{bad}\n"),
        )
        .unwrap();
        let watch = QemuWatch::start(dir.path());
        let output = kiln(&["pack", "--batch", batch.to_str().unwrap()]);
        let qemus = watch.finish();
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let expected = format!("kiln: {}:{}", batch.display(), expected).replace("DIR", &shown_dir);
        assert!(
            stderr.starts_with(&expected) && stderr.lines().count() == 1,
            "{bad}:\n{stderr}\nexpected {expected}"
        );
        assert!(qemus.is_empty(), "{bad}: launched {qemus:#?}");
        assert_eq!((sha256_file(&image), sha256_file(&other)), before, "{bad}");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains("kiln-"))
            .collect();
        assert!(left.is_empty(), "{bad}: {left:?}");
    }

    let refused = kiln(&[
        "pack",
        "--batch",
        batch.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim_end(),
        format!(
            "kiln: --batch {} names each image with its manifest and arguments, so --image {} does not go with it; put it in the file's lines",
            batch.display(),
            image.display()
        )
    );
}

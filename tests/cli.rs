//! The `kiln` binary's behaviour that needs no real target: lint, explain,
//! list, plugin help, and the one-line errors for bad input that must come
//! before any image is opened or host contacted.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{repo_root, Fixture};

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("kiln runs")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn lint_passes_good_manifests_and_fails_bad_ones_with_positions() {
    let good = repo_root().join("manifests/demo/1.0/image.yaml");
    let bad = repo_root().join("tests/malformed/unknown_type.yaml");
    let output = kiln(&["lint", good.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert!(text(&output).0.contains("ok (2 arguments, 8 validators)"));

    let output = kiln(&["lint", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let (_, stderr) = text(&output);
    assert!(
        stderr.contains(&format!(
            "{}:4:5: validators[1].pakage: unknown validator type `pakage`",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `package`?"));
    assert!(stderr.contains("1 of 2 manifests have errors"));
}

#[test]
fn explain_shows_arguments_and_tree() {
    let output = kiln(&["explain", "demo", "1.0"]);
    assert_eq!(output.status.code(), Some(0));
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains("tools  minimal         minimal|full"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- argument_case: by tools: full"),
        "{stdout}"
    );
    assert!(
        stdout.contains("      - package: package procps"),
        "{stdout}"
    );
    let output = kiln(&["explain", "tests/malformed/two_keys.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.starts_with(
        "kiln: tests/malformed/two_keys.yaml:3:5: validators[0]: a validator is a one-key map"
    ));
}

#[test]
fn list_shows_bundled_plugins_and_sahara_layouts() {
    let output = kiln(&["list"]);
    assert!(
        text(&output).0.contains("demo    1.0"),
        "{:?}",
        text(&output)
    );
    // Sahara's version directories (v5_7_0) read as 5.7.0.
    let dir = tempfile::tempdir().unwrap();
    let version = dir.path().join("cdh/v5_7_0");
    std::fs::create_dir_all(&version).unwrap();
    std::fs::write(version.join("image.yaml"), "validators: []\n").unwrap();
    let output = kiln(&["list", "--manifest-dir", dir.path().to_str().unwrap()]);
    assert!(
        text(&output).0.contains("cdh     5.7.0"),
        "{:?}",
        text(&output)
    );
    let config = dir.path().join("sahara.conf");
    std::fs::write(
        &config,
        format!(
            "[DEFAULT]\ndebug = True\n[database]\nconnection = x\n[kiln]\nmanifest_dirs = {}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let output = kiln(&["list", "--config-file", config.to_str().unwrap()]);
    assert!(
        text(&output).0.contains("cdh     5.7.0"),
        "{:?}",
        text(&output)
    );
}

#[test]
fn plugin_help_lists_arguments_without_hidden_ones() {
    let dir = tempfile::tempdir().unwrap();
    let version = dir.path().join("p/1");
    std::fs::create_dir_all(&version).unwrap();
    std::fs::write(
        version.join("image.yaml"),
        "arguments:\n  shown: {description: Shown one., default: a, choices: [a, b]}\n  secret: {default: x, hidden: true}\nvalidators: []\n",
    )
    .unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let output = kiln(&["pack", "--manifest-dir", dir_arg, "p", "1", "--help"]);
    assert_eq!(output.status.code(), Some(0));
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains("--shown VALUE")
            && stdout.contains("Shown one.")
            && stdout.contains("[default: a; choices: a, b]"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("secret"),
        "hidden arguments stay out of help: {stdout}"
    );
}

#[test]
fn bad_arguments_fail_before_any_image_is_opened() {
    let missing_image = "/nonexistent/never-opened.qcow2";
    let cases: [(&[&str], &str); 6] = [
        (
            &[
                "pack",
                "--image",
                missing_image,
                "demo",
                "1.0",
                "--tools",
                "huge",
            ],
            "Value for argument tools must be one of minimal, full",
        ),
        (
            &[
                "pack",
                "--image",
                missing_image,
                "demo",
                "1.0",
                "--nope",
                "x",
            ],
            "takes no argument `--nope` (it takes: --motd, --tools)",
        ),
        (
            &[
                "pack",
                "--image",
                missing_image,
                "demo",
                "1.0",
                "--test-only",
            ],
            "--test-only is one of kiln's own options; put it before PLUGIN VERSION",
        ),
        (
            &["pack", "--image", missing_image, "demo", "9.9"],
            "plugin `demo` has no version `9.9` (versions: 1.0)",
        ),
        (
            &["pack", "--image", missing_image, "nosuch", "1.0"],
            "no plugin `nosuch`",
        ),
        (&["pack", "demo", "1.0"], "--image PATH is required"),
    ];
    for (args, expected) in cases {
        let output = kiln(args);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?}: expected `{expected}` in `{stderr}`"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn required_arguments_and_arg_pairs() {
    let fixture = Fixture::new(
        "arguments:\n  need: {required: true, description: x}\nvalidators: []\n",
        &[],
    );
    let manifest = fixture.path.to_str().unwrap();
    let output = kiln(&[
        "pack",
        "--image",
        "/nonexistent.qcow2",
        "--manifest",
        manifest,
    ]);
    assert!(
        text(&output)
            .1
            .contains("Argument need is required for image processing"),
        "{:?}",
        text(&output)
    );
    let output = kiln(&[
        "pack",
        "--image",
        "/nonexistent.qcow2",
        "--manifest",
        manifest,
        "--arg",
        "need",
    ]);
    assert!(text(&output).1.contains("--arg takes NAME=VALUE"));
    // With the argument given, the next problem is the image itself.
    let output = kiln(&[
        "pack",
        "--image",
        "/nonexistent.qcow2",
        "--manifest",
        manifest,
        "--arg",
        "need=1",
    ]);
    let (_, stderr) = text(&output);
    assert!(
        stderr.contains("/nonexistent.qcow2: no such file"),
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn validate_needs_hosts() {
    let output = kiln(&["validate", "demo", "1.0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output)
        .1
        .contains("name the hosts to validate with --host"));
}

#[test]
fn help_texts_describe_the_verbs() {
    let (stdout, _) = text(&kiln(&["--help"]));
    for verb in ["lint", "explain", "list", "pack", "validate"] {
        assert!(stdout.contains(verb), "{stdout}");
    }
    let (stdout, _) = text(&kiln(&["pack", "--help"]));
    for option in [
        "--image",
        "--root-filesystem",
        "--test-only",
        "--config-file",
        "--output",
        "--accel",
        "--report",
        "--verify",
        "--manifest",
        "--arg",
    ] {
        assert!(stdout.contains(option), "pack --help mentions {option}");
    }
    assert!(Path::new(env!("CARGO_BIN_EXE_kiln")).exists());
}

#[test]
fn the_guides_invocation_parses_with_a_sahara_conf() {
    // `sahara-image-pack --image CentOS.qcow2 --config-file etc/sahara/sahara.conf cdh 5.7.0`,
    // with kiln in place of the command name, against the real CDH 5.7.0 manifest.
    let dir = tempfile::tempdir().unwrap();
    let version = dir.path().join("plugins/cdh/v5_7_0");
    std::fs::create_dir_all(&version).unwrap();
    let corpus = repo_root().join("../shared/corpus/sahara/cdh/v5_7_0");
    std::fs::copy(corpus.join("image.yaml"), version.join("image.yaml")).unwrap();
    for script in std::fs::read_to_string(corpus.join("RESOURCES"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let path = version.join(script.trim());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
    }
    let conf = dir.path().join("etc/sahara/sahara.conf");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    std::fs::write(
        &conf,
        "[DEFAULT]\nuse_floating_ips = false\n\n[kiln]\nmanifest_dirs = ../../plugins\n",
    )
    .unwrap();
    let image = dir.path().join("CentOS.qcow2");
    let output = kiln(&[
        "pack",
        "--image",
        image.to_str().unwrap(),
        "--config-file",
        conf.to_str().unwrap(),
        "cdh",
        "5.7.0",
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("CentOS.qcow2: no such file"),
        "the manifest loaded and its arguments passed: {stderr}"
    );
    let output = kiln(&[
        "pack",
        "--config-file",
        conf.to_str().unwrap(),
        "cdh",
        "5.7.0",
        "--help",
    ]);
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains("--java_distro VALUE") && !stdout.contains("--plugin_version"),
        "{stdout}"
    );
}

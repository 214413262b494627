//! kiln's own options and a plugin's arguments: which words are whose,
//! the three ways of naming a manifest, argparse's prefixes and one-letter
//! options, and the one-line refusals for bad arguments that come before
//! any image is opened or host contacted.

use super::*;

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
fn unknown_options_before_the_manifest_are_unknown_kiln_options() {
    let manifest = repo_root().join("manifests/demo/1.0/image.yaml");
    let manifest = manifest.to_str().unwrap();
    let missing = "/nonexistent/never-opened.qcow2";
    assert_refused(
        &["pack", "--imgae", missing, "--manifest", manifest],
        &["unknown kiln option `--imgae` (did you mean `--image`?)"],
        &["name a manifest"],
    );
    assert_refused(
        &["pack", "--image", missing, "--tset-only", "demo", "1.0"],
        &["unknown kiln option `--tset-only` (did you mean `--test-only`?)"],
        &["name a manifest"],
    );
    assert_refused(
        &["pack", "--image", missing, "--limit", "foo", "demo", "1.0"],
        &["unknown kiln option `--limit`;", "see `kiln pack --help`"],
        &["did you mean", "name a manifest"],
    );
    // Plugin arguments after --manifest without `--` are kiln options too,
    // and the message says where they go.
    assert_refused(
        &[
            "pack",
            "--image",
            missing,
            "--manifest",
            manifest,
            "--tools",
            "full",
        ],
        &[
            "unknown kiln option `--tools`",
            "after `--` with --manifest FILE",
        ],
        &["did you mean"],
    );
    assert_refused(
        &["validate", "--hots", "web1", "demo", "1.0"],
        &["unknown kiln option `--hots` (did you mean `--host`?)"],
        &[],
    );
    assert_refused(
        &["lint", "--manfest", manifest],
        &["unknown kiln option `--manfest` (did you mean `--manifest`?); see `kiln lint --help`"],
        &["plugin"],
    );
    // Other usage errors are one line too.
    assert_refused(
        &["--color", "sometimes", "list"],
        &["invalid value 'sometimes' for '--color <WHEN>'"],
        &[],
    );
    assert_refused(&["-q", "-v", "list"], &["cannot be used with"], &[]);
    // A stray word is not called an option.
    assert_refused(
        &["list", "extra"],
        &["unexpected argument 'extra' found"],
        &["option"],
    );
    assert_refused(
        &["completions"],
        &["the following required arguments were not provided: <SHELL>"],
        &[],
    );
}

#[test]
fn plugin_arguments_are_only_what_follows_the_manifests_name() {
    let missing = "/nonexistent/never-opened.qcow2";
    // A kiln option after PLUGIN VERSION, long or short, is named as one.
    assert_refused(
        &["pack", "--image", missing, "demo", "1.0", "-v"],
        &["-v is one of kiln's own options; put it before PLUGIN VERSION"],
        &[],
    );
    assert_refused(
        &["pack", "demo", "1.0", "--image", missing],
        &["--image is one of kiln's own options; put it before PLUGIN VERSION"],
        &[],
    );
    // A misspelt kiln option there gets a suggestion, a misspelt plugin
    // argument its own.
    assert_refused(
        &["pack", "--image", missing, "demo", "1.0", "--imgae", "x"],
        &[
            "takes no argument `--imgae` (it takes: --motd, --tools)",
            "did you mean kiln's own `--image`?",
        ],
        &[],
    );
    assert_refused(
        &["pack", "--image", missing, "demo", "1.0", "--toosl", "full"],
        &["takes no argument `--toosl` (it takes: --motd, --tools); did you mean `--tools`?"],
        &[],
    );
    // (`--tool` is a prefix of `--tools` alone, so, as with argparse, it
    // names it: see plugin_arguments_take_prefixes_and_one_letter_options_as_argparse_did.)
    assert_refused(
        &["pack", "--image", missing, "demo", "1.0", "--tool", "huge"],
        &["Value for argument tools must be one of minimal, full (got `huge`)"],
        &[],
    );
    // `--arg` names the pair as typed, never a `--tool` nobody wrote.
    assert_refused(
        &["pack", "--image", missing, "--arg", "tool=full", "demo", "1.0"],
        &[
            "--arg tool=full: ",
            "manifests/demo/1.0/image.yaml takes no argument `tool` (it takes: motd, tools); did you mean `tools`?",
        ],
        &["--tool "],
    );
    assert_refused(
        &[
            "validate", "--host", "web1", "--arg", "nope=1", "demo", "1.0",
        ],
        &[
            "--arg nope=1: ",
            "takes no argument `nope` (it takes: motd, tools)",
        ],
        &["did you mean"],
    );
    // Both spellings of a declared argument reach the manifest.
    for args in [
        &["pack", "--image", missing, "demo", "1.0", "--tools", "huge"][..],
        &[
            "pack",
            "--image",
            missing,
            "--arg",
            "tools=huge",
            "demo",
            "1.0",
        ][..],
    ] {
        assert_refused(
            args,
            &["Value for argument tools must be one of minimal, full (got `huge`)"],
            &[],
        );
    }
}

#[test]
fn every_verb_names_a_manifest_the_same_three_ways() {
    let path = "manifests/demo/1.0/image.yaml";
    let ways: [&[&str]; 3] = [&["demo", "1.0"], &[path], &["--manifest", path]];
    for way in ways {
        let output = kiln(&[&["lint"], way].concat());
        assert_eq!(
            output.status.code(),
            Some(0),
            "lint {way:?}: {:?}",
            text(&output)
        );
        assert!(text(&output)
            .0
            .contains("image.yaml: ok (2 arguments, 8 validators)"));

        let output = kiln(&[&["explain"], way].concat());
        assert_eq!(
            output.status.code(),
            Some(0),
            "explain {way:?}: {:?}",
            text(&output)
        );
        assert!(text(&output).0.contains("- argument_case: by tools: full"));

        // With the manifest loaded and its arguments checked, what is left
        // is the image (pack) or the hosts (validate).
        let output = kiln(&[&["pack", "--image", "/nonexistent.qcow2"], way].concat());
        assert!(
            text(&output).1.contains("/nonexistent.qcow2: no such file"),
            "pack {way:?}: {:?}",
            text(&output)
        );
        let output = kiln(&[&["validate"], way].concat());
        assert!(
            text(&output).1.contains("name the hosts to validate"),
            "validate {way:?}: {:?}",
            text(&output)
        );
    }
    // A path is followed by the plugin's arguments, as PLUGIN VERSION is;
    // with --manifest they go after `--`.
    for args in [
        &["validate", path, "--tools", "huge"][..],
        &["validate", "--manifest", path, "--", "--tools", "huge"][..],
    ] {
        assert_refused(args, &["must be one of minimal, full (got `huge`)"], &[]);
    }
    // lint takes several, mixed.
    let output = kiln(&["lint", "demo", "1.0", path, "--manifest", path]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_eq!(text(&output).0.matches(": ok (").count(), 3);
    // Two names for one run, or half of one, are refused.
    assert_refused(
        &["explain", "demo", "1.0", "--manifest", path],
        &["--manifest manifests/demo/1.0/image.yaml and `demo` both name a manifest"],
        &[],
    );
    assert_refused(
        &[
            "pack",
            "--image",
            "/x.qcow2",
            "--manifest",
            path,
            "demo",
            "1.0",
        ],
        &["both name a manifest"],
        &[],
    );
    assert_refused(
        &["lint", "demo"],
        &["`demo` is no manifest file and no VERSION follows it"],
        &[],
    );
    assert_refused(&["explain"], &["name a manifest: PLUGIN VERSION"], &[]);
    assert_refused(&["lint"], &["name the manifests to check"], &[]);
}

#[test]
fn output_onto_the_image_or_with_test_only_is_refused_before_anything_opens() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("base.qcow2");
    // Not an image: if the refusal failed, opening it would say so.
    std::fs::write(&image, "not an image").unwrap();
    let link = dir.path().join("link.qcow2");
    std::os::unix::fs::symlink(&image, &link).unwrap();
    let image_arg = image.to_str().unwrap();
    let respelt = format!(
        "{}/./../{}/base.qcow2",
        dir.path().display(),
        dir.path().file_name().unwrap().to_str().unwrap()
    );
    let missing_dir = dir.path().join("nowhere/disk.qcow2");
    for (image, output) in [
        (image_arg, image_arg),
        (image_arg, respelt.as_str()),
        (image_arg, link.to_str().unwrap()),
        (link.to_str().unwrap(), image_arg),
        // Neither exists: compared where they would be.
        (missing_dir.to_str().unwrap(), missing_dir.to_str().unwrap()),
    ] {
        assert_refused(
            &["pack", "--image", image, "--output", output, "demo", "1.0"],
            &[
                "is the image itself",
                "name a new file, or leave --output out",
            ],
            &["not an image", "qcow2: no such file"],
        );
    }
    assert_refused(
        &[
            "pack",
            "--image",
            image_arg,
            "--test-only",
            "--output",
            "/tmp/new.qcow2",
            "demo",
            "1.0",
        ],
        &["the argument '--test-only' cannot be used with '--output <NEW>'"],
        &[],
    );
    // Another file is no refusal: the next problem is the missing image.
    let output = kiln(&[
        "pack",
        "--image",
        "/nonexistent.qcow2",
        "--output",
        "/nonexistent-new.qcow2",
        "demo",
        "1.0",
    ]);
    assert!(
        text(&output).1.contains("/nonexistent.qcow2: no such file"),
        "{:?}",
        text(&output)
    );
}

/// A manifest with arguments sharing a prefix, a one-letter one and a
/// hidden one.
const PREFIXED: &str = "arguments:
  java-distro: {default: openjdk, choices: [openjdk, oracle-java]}
  java-version: {default: '8'}
  x: {default: '0'}
  secret: {default: s, hidden: true}
validators: []
";

#[test]
fn plugin_arguments_take_prefixes_and_one_letter_options_as_argparse_did() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("image.yaml");
    std::fs::write(&manifest, PREFIXED).unwrap();
    let report = dir.path().join("report.json");
    let image = dir.path().join("missing.qcow2");
    let arguments = |words: &[&str]| {
        let mut args = vec![
            "pack",
            "--image",
            image.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            manifest.to_str().unwrap(),
        ];
        args.extend(words);
        let output = kiln(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{words:?}: {:?}",
            text(&output)
        );
        assert!(
            text(&output).1.contains("missing.qcow2"),
            "{words:?}: the arguments passed: {:?}",
            text(&output)
        );
        reports::valid_json_report(&report)["manifest_arguments"].clone()
    };
    let got = arguments(&[
        "--java-d",
        "oracle-java",
        "--java_v=11",
        "-x",
        "5",
        "--sec",
        "t",
    ]);
    assert_eq!(got["java-distro"], "oracle-java", "{got:#}");
    assert_eq!(got["java-version"], "11", "{got:#}");
    assert_eq!(got["x"], "5", "{got:#}");
    assert_eq!(got["secret"], "t", "hidden arguments are accepted: {got:#}");
    assert_eq!(arguments(&["-x7"])["x"], "7");
    assert_eq!(arguments(&["-x=8"])["x"], "8");
    assert_eq!(arguments(&["--x", "9"])["x"], "9");
    // An ambiguous prefix names what it could be.
    assert_refused(
        &[
            "pack",
            "--image",
            image.to_str().unwrap(),
            manifest.to_str().unwrap(),
            "--java",
            "openjdk",
        ],
        &["`--java` is ambiguous", "--java-distro, --java-version"],
        &[],
    );
    // A kiln option typed in full is still named as kiln's.
    assert_refused(
        &[
            "pack",
            "--image",
            image.to_str().unwrap(),
            manifest.to_str().unwrap(),
            "--test-only",
        ],
        &["--test-only is one of kiln's own options"],
        &[],
    );
    // Hidden: out of the plugin's help, in `kiln explain`, marked so.
    let (help, _) = text(&kiln(&["pack", manifest.to_str().unwrap(), "--help"]));
    assert!(
        help.contains("--java-distro") && !help.contains("secret"),
        "{help}"
    );
    let (explained, _) = text(&kiln(&["explain", manifest.to_str().unwrap()]));
    assert!(explained.contains("secret (hidden)"), "{explained}");
}

#[test]
fn a_timeout_must_be_a_duration() {
    for bad in ["soon", "0", "1.5h", "10x"] {
        assert_refused(
            &[
                "pack",
                "--timeout",
                bad,
                "--image",
                "x.qcow2",
                "demo",
                "1.0",
            ],
            &["--timeout", "is not a duration", "90s, 45m, 2h"],
            &[],
        );
    }
    let (help, _) = text(&kiln(&["validate", "--help"]));
    assert!(
        help.contains("--timeout <DURATION>") && help.contains("exits 124"),
        "{help}"
    );
}

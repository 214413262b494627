//! The `kiln` binary's behaviour that needs no real target: lint, explain,
//! list, plugin help, and the one-line errors for bad input that must come
//! before any image is opened or host contacted.

use crate::support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{component, repo_root, Fixture};

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("kiln runs")
}

fn kiln_os(args: &[&OsStr]) -> Output {
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

/// A `validator_types` entry for the `attacks` test component.
fn declared(name: &str, keys: &str) -> String {
    format!(
        "  {name}:\n    wasm: {}\n{keys}",
        component("kiln_hostile_attacks").display()
    )
}

#[test]
fn lint_warns_about_grants_that_let_a_type_run_anything() {
    let yaml = [
        "validator_types:\n".to_string(),
        declared(
            "finder",
            "    grants: [exec]\n    commands: ['systemctl restart *', 'find *']\n",
        ),
        declared("anything", "    grants: [exec, read-file, write-file]\n"),
        declared("wild", "    grants: [exec]\n    commands: ['**']\n"),
        declared(
            "loader",
            "    grants: [exec]\n    commands: ['true']\n    env: [LD_PRELOAD, JAVA_HOME]\n",
        ),
        declared(
            "careful",
            "    grants: [exec, write-file]\n    commands: ['systemctl restart nginx', 'python3 /opt/app/migrate.py', 'chmod * /srv/app']\n    env: [JAVA_HOME]\n    paths: {write: ['/srv/app/*.conf']}\n",
        ),
        "validators: []\n".to_string(),
    ]
    .concat();
    let fixture = Fixture::new(&yaml, &[]);
    let manifest = fixture.path.to_str().unwrap();
    let output = kiln(&["lint", manifest]);
    let (stdout, stderr) = text(&output);
    // Warnings inform; the manifest loads, so lint passes.
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("ok (0 arguments, 0 validators, 5 warnings)"),
        "{stdout}"
    );
    let expected = [
        format!("{manifest}:2:3: warning: validator type `finder`: `find *` lets the type run any program as root (find -exec); narrow it or drop `exec`"),
        format!("{manifest}:6:3: warning: validator type `anything`: exec without `commands` lets the type run any command as root on the target"),
        format!("{manifest}:6:3: warning: validator type `anything`: write-file without `paths: {{write: [...]}}` lets the type write any file on the target as root (a cron job or a systemd unit then runs it)"),
        format!("{manifest}:9:3: warning: validator type `wild`: `**` lets the type run any command as root on the target (the pattern is only wildcards); name the program and narrow its arguments"),
        format!("{manifest}:13:3: warning: validator type `loader`: `env: [LD_PRELOAD]` lets the type load a shared library of its choosing into every program it runs, as root"),
    ];
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected, "{stderr}");

    // A `--validators` type is warned about at its sidecar, once however
    // many manifests are linted with it.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        component("kiln_hostile_attacks"),
        dir.path().join("runner.wasm"),
    )
    .unwrap();
    let sidecar = dir.path().join("runner.yaml");
    std::fs::write(
        &sidecar,
        "grants: [exec]\ncommands: ['xargs **', 'rm **']\n",
    )
    .unwrap();
    let demo = repo_root().join("manifests/demo/1.0/image.yaml");
    let output = kiln(&[
        "lint",
        "--validators",
        dir.path().to_str().unwrap(),
        demo.to_str().unwrap(),
        demo.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let sidecar = sidecar.display();
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!("{sidecar}:1:1: warning: validator type `runner`: `rm **` lets the type give rm any paths on the target, /etc/shadow and /usr/bin included; spell the paths out in the pattern"),
            format!("{sidecar}:1:1: warning: validator type `runner`: `xargs **` lets the type run any program as root (xargs PROGRAM); narrow it or drop `exec`"),
        ],
        "{stderr}"
    );
    assert_eq!(
        stdout
            .matches("ok (2 arguments, 8 validators, 2 warnings)")
            .count(),
        2,
        "{stdout}"
    );
}

/// Asserts that nothing kiln wrote can steer a terminal, and that the
/// hostile text is there, visibly escaped.
fn assert_escaped(what: &str, output: &Output) {
    let (stdout, stderr) = text(output);
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        assert!(
            !bytes.contains(&0x1b) && !bytes.contains(&0x07),
            "{what}: raw ESC or BEL on {stream}:\n{stdout}\n{stderr}"
        );
    }
    assert!(
        stdout.contains("\\e") || stderr.contains("\\e"),
        "{what}: the escape sequence should show as `\\e`:\n{stdout}\n{stderr}"
    );
}

#[test]
fn hostile_names_and_component_text_reach_the_terminal_escaped() {
    let dir = tempfile::tempdir().unwrap();
    // A manifest whose file name retitles the terminal, declaring a type
    // whose summary does too, with an argument description that clears
    // the line.
    let name = b"evil\x1b]0;owned\x07.yaml";
    let manifest = dir.path().join(OsStr::from_bytes(name));
    std::fs::write(
        &manifest,
        [
            "arguments:\n  colour: {description: \"\\x1b[2K\\rred\", default: \"\\x1b[31m\"}\n",
            "validator_types:\n",
            &declared("attacks", "    grants: [exec]\n"),
            "validators:\n  - attacks: {attack: escapes}\n",
        ]
        .concat(),
    )
    .unwrap();
    let path = manifest.as_os_str();

    let output = kiln_os(&["explain".as_ref(), path]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_escaped("explain", &output);
    let (stdout, _) = text(&output);
    assert!(stdout.contains("evil\\e]0;owned\\u{7}.yaml"), "{stdout}");
    assert!(
        stdout.contains("- attacks: \\e]0;owned\\u{7}\\e[2K\\r\\e[32mall passed\\e[0m"),
        "{stdout}"
    );
    // White space (\r included) folds, as in any description.
    assert!(stdout.contains("\\e[2K red"), "{stdout}");

    let output = kiln_os(&["lint".as_ref(), path]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert_escaped("lint", &output);
    assert!(
        text(&output).1.contains(
            "evil\\e]0;owned\\u{7}.yaml:4:3: warning: validator type `attacks`: exec without `commands`"
        ),
        "{:?}",
        text(&output)
    );

    let output = kiln_os(&[
        "pack".as_ref(),
        "--manifest".as_ref(),
        path,
        "--".as_ref(),
        "--help".as_ref(),
    ]);
    assert_escaped("plugin help", &output);
    assert!(
        text(&output).0.contains("      [default: \\e[31m]"),
        "{:?}",
        text(&output)
    );

    // Load errors name the file.
    let broken = dir.path().join(OsStr::from_bytes(b"broken\x1b[2J.yaml"));
    std::fs::write(&broken, "validators: [{nope: {}}]\n").unwrap();
    let output = kiln_os(&["lint".as_ref(), broken.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
    assert_escaped("lint error", &output);
    let output = kiln_os(&["explain".as_ref(), broken.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
    assert_escaped("explain error", &output);

    // An image path, a host name and an inventory line.
    let image = dir.path().join(OsStr::from_bytes(b"disk\x1b[2K.qcow2"));
    let output = kiln_os(&[
        "pack".as_ref(),
        "--image".as_ref(),
        image.as_os_str(),
        "--manifest".as_ref(),
        path,
    ]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    assert_escaped("pack with a missing image", &output);
    let output = kiln_os(&[
        "validate".as_ref(),
        "--host".as_ref(),
        OsStr::from_bytes(b"web\x1b]0;x\x07"),
        "--manifest".as_ref(),
        path,
    ]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    assert_escaped("validate --host", &output);
    let inventory = dir.path().join("hosts");
    std::fs::write(&inventory, b"[web]\nweb1\x1b[2K\x07\n").unwrap();
    let output = kiln_os(&[
        "validate".as_ref(),
        "--inventory".as_ref(),
        inventory.as_os_str(),
        "--manifest".as_ref(),
        path,
    ]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    assert_escaped("validate --inventory", &output);

    // Plugin and version names are directory names.
    let plugins = tempfile::tempdir().unwrap();
    let version = plugins.path().join(OsStr::from_bytes(b"p\x1b[31m/1\x07"));
    std::fs::create_dir_all(&version).unwrap();
    std::fs::write(version.join("image.yaml"), "validators: []\n").unwrap();
    let output = kiln_os(&[
        "list".as_ref(),
        "--manifest-dir".as_ref(),
        plugins.path().as_os_str(),
    ]);
    assert_escaped("list", &output);
    assert!(
        text(&output).0.contains("p\\e[31m  1\\u{7}"),
        "{:?}",
        text(&output)
    );
}

/// Runs kiln with `env` set and stdout piped; for the colour cases.
fn kiln_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .args(args)
        .current_dir(repo_root())
        .env_remove("NO_COLOR");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("kiln runs")
}

/// Asserts a usage error: exit 2, one line on stderr holding `expected`
/// and none of `absent`, nothing on stdout.
fn assert_refused(args: &[&str], expected: &[&str], absent: &[&str]) {
    let output = kiln(args);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
    assert!(stdout.is_empty(), "{args:?}: {stdout}");
    for text in expected {
        assert!(
            stderr.contains(text),
            "{args:?}: expected `{text}` in `{stderr}`"
        );
    }
    for text in absent {
        assert!(!stderr.contains(text), "{args:?}: `{text}` in `{stderr}`");
    }
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
        &["pack", "--image", missing, "demo", "1.0", "--tool", "full"],
        &["takes no argument `--tool` (it takes: --motd, --tools); did you mean `--tools`?"],
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

#[test]
fn quiet_prints_only_the_closing_line_and_errors() {
    // Port 1 on loopback refuses at once: a real, fast, unreachable host.
    let output = kiln(&["validate", "-q", "--host", "127.0.0.1:1", "demo", "1.0"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].starts_with("0 of 1 hosts passed in "), "{stdout}");
    assert!(
        stderr.starts_with("kiln: 127.0.0.1:1 UNREACHABLE: ")
            && stderr.contains("Connection refused"),
        "{stderr}"
    );
    // Without -q: the opening line, the host's line and the table.
    let (stdout, _) = text(&kiln(&["validate", "--host", "127.0.0.1:1", "demo", "1.0"]));
    assert!(
        stdout.contains("checking 1 host(s)") && stdout.contains("HOST"),
        "{stdout}"
    );

    // A pack's opening line is progress too; its error is not.
    let output = kiln(&["-q", "pack", "--image", "/etc/hostname", "demo", "1.0"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with("kiln: /etc/hostname is damaged or not a disk image"),
        "{stderr}"
    );

    let output = kiln(&["lint", "--quiet", "demo", "1.0"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(text(&output), (String::new(), String::new()));
    let output = kiln(&["lint", "-q", "tests/malformed/unknown_type.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).1.contains("unknown validator type `pakage`"));
}

/// kiln's own colour codes; anything else with an ESC in it is a leak.
fn assert_only_kiln_colours(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for (i, _) in text.match_indices('\x1b') {
        let rest = &text[i..];
        assert!(
            ["\x1b[32m", "\x1b[1;31m", "\x1b[33m", "\x1b[0m"]
                .iter()
                .any(|code| rest.starts_with(code)),
            "{what}: an ESC kiln did not write: {text:?}"
        );
    }
    assert!(!bytes.contains(&0x07), "{what}: BEL in {text:?}");
}

#[test]
fn colour_only_when_asked_or_on_a_terminal_without_no_color() {
    let dir = tempfile::tempdir().unwrap();
    // A file name that retitles the terminal, shown in the opening line.
    let manifest = dir
        .path()
        .join(OsStr::from_bytes(b"evil\x1b]0;owned\x07.yaml"));
    std::fs::write(&manifest, "validators: []\n").unwrap();
    let manifest = manifest.to_str().unwrap();
    let args = ["validate", "--host", "127.0.0.1:1", manifest];
    let red = "\x1b[1;31m";

    let output = kiln_env(&[&["--color", "always"], &args[..]].concat(), &[]);
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains(&format!("{red}UNREACHABLE\x1b[0m: ")),
        "{stdout:?}"
    );
    assert!(
        stdout.contains(&format!("{red}unreachable\x1b[0m  ")),
        "{stdout:?}"
    );
    assert!(stdout.contains("evil\\e]0;owned\\u{7}.yaml"), "{stdout:?}");
    assert_only_kiln_colours("--color always", &output.stdout);
    // A flag beats the environment.
    let output = kiln_env(
        &[&["--color", "always"], &args[..]].concat(),
        &[("NO_COLOR", "1")],
    );
    assert!(output.stdout.contains(&0x1b));

    for (flags, env) in [
        (&["--color", "never"][..], &[][..]),
        (&[][..], &[][..]),
        (&["--color", "auto"][..], &[][..]),
    ] {
        let output = kiln_env(&[flags, &args[..]].concat(), env);
        assert!(
            text(&output).0.contains("unreachable"),
            "{:?}",
            text(&output)
        );
        assert!(
            !output.stdout.contains(&0x1b),
            "{flags:?}: {:?}",
            text(&output)
        );
    }

    // On a terminal (a pty from script(1)), auto colours unless NO_COLOR
    // is set.
    let on_terminal = |no_color: Option<&str>| {
        let line = format!(
            "{} validate --host 127.0.0.1:1 demo 1.0",
            env!("CARGO_BIN_EXE_kiln")
        );
        let mut command = Command::new("script");
        command
            .args(["-qec", &line, "/dev/null"])
            .current_dir(repo_root())
            .env("TERM", "xterm")
            .env_remove("NO_COLOR");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        command.output().expect("script(1) runs")
    };
    let output = on_terminal(None);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&format!("{red}unreachable\x1b[0m")),
        "{:?}",
        text(&output)
    );
    let output = on_terminal(Some("1"));
    assert!(
        text(&output).0.contains("unreachable"),
        "{:?}",
        text(&output)
    );
    assert!(!output.stdout.contains(&0x1b), "{:?}", text(&output));
}

#[test]
fn completions_for_each_shell() {
    for (shell, markers) in [
        (
            "bash",
            &["_kiln()", "complete -F _kiln", "--test-only", "--manifest"][..],
        ),
        ("zsh", &["#compdef kiln", "--test-only", "completions"][..]),
        (
            "fish",
            &["complete -c kiln", "-l test-only", "-l color"][..],
        ),
    ] {
        let output = kiln(&["completions", shell]);
        assert_eq!(output.status.code(), Some(0), "{shell}");
        let (stdout, _) = text(&output);
        for marker in markers {
            assert!(stdout.contains(marker), "{shell}: no `{marker}`");
        }
    }
    // The bash script works: bash completes `kiln pack --ima` and `kiln va`.
    let script = text(&kiln(&["completions", "bash"])).0;
    // The words as bash would split the line, the last being completed
    // (empty after a trailing space).
    let complete = |words: &[&str]| {
        let cword = words.len() - 1;
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let program = format!(
            "{script}\nCOMP_WORDS=({}); COMP_CWORD={cword}; _kiln kiln \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            quoted.join(" ")
        );
        let output = Command::new("bash")
            .args(["-c", &program])
            .output()
            .expect("bash runs");
        assert!(output.status.success(), "{:?}", text(&output));
        text(&output).0
    };
    assert_eq!(complete(&["kiln", "pack", "--ima"]).trim(), "--image");
    assert_eq!(complete(&["kiln", "va"]).trim(), "validate");
    let colours = complete(&["kiln", "--color", ""]);
    assert_eq!(
        colours.split_whitespace().collect::<Vec<_>>(),
        ["auto", "always", "never"]
    );
}

#[test]
fn the_man_page_is_generated_and_renders() {
    for (args, title) in [
        (&["man"][..], ".TH kiln 1"),
        (&["man", "pack"][..], ".TH kiln-pack 1"),
    ] {
        let output = kiln(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        let page = output.stdout;
        let roff = String::from_utf8_lossy(&page);
        assert!(roff.contains(title), "{args:?}: {roff}");
        // groff renders it without a warning (-ww: all of them).
        let mut groff = Command::new("groff")
            // -P-cbou: plain text, no overstrike or escape sequences.
            .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("groff runs (.ci/install-deps installs groff-base)");
        use std::io::Write;
        groff.stdin.take().unwrap().write_all(&page).unwrap();
        let rendered = groff.wait_with_output().unwrap();
        let (shown, warnings) = text(&rendered);
        assert!(
            rendered.status.success() && warnings.is_empty(),
            "{args:?}: {warnings}"
        );
        let shown = shown.replace(['\u{2010}', '\u{2212}'], "-");
        for option in ["--quiet", "--color"] {
            assert!(shown.contains(option), "{args:?}: {option} in {shown}");
        }
        if args.len() == 2 {
            assert!(
                shown.contains("--test-only") && shown.contains("--output"),
                "{shown}"
            );
        } else {
            assert!(
                shown.contains("completions") && shown.contains("validate"),
                "{shown}"
            );
        }
    }
    assert_refused(
        &["man", "pakc"],
        &["no verb `pakc` (verbs: lint, explain"],
        &[],
    );
}

/// Runs kiln with stdout (and, if asked, stderr) a pipe whose reading end
/// is already closed, as `kiln ... | head -1` leaves it once head exits.
fn with_closed_pipe(args: &[&str], close_stderr: bool) -> Output {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: a two-element array for pipe(2).
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just made and are owned here only.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .args(args)
        .current_dir(repo_root())
        .stdout(write.try_clone().unwrap());
    if close_stderr {
        command.stderr(write);
    }
    command.output().expect("kiln runs")
}

#[test]
fn a_closed_pipe_ends_kiln_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for args in [
        &["list"][..],
        &["explain", "demo", "1.0"][..],
        &["completions", "bash"][..],
        &["man"][..],
        // Before any host is contacted, and (with -q) from the hosts'
        // worker threads writing to a closed stderr.
        &["validate", "--host", "127.0.0.1:1", "demo", "1.0"][..],
    ] {
        let output = with_closed_pipe(args, false);
        let (_, stderr) = text(&output);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        assert_ne!(output.status.code(), Some(101), "{args:?}");
        assert_eq!(
            output.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {:?}",
            output.status
        );
    }
    let output = with_closed_pipe(
        &[
            "validate",
            "-q",
            "--host",
            "127.0.0.1:1",
            "--host",
            "127.0.0.2:1",
            "demo",
            "1.0",
        ],
        true,
    );
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}",
        output.status
    );
}

#[test]
fn help_names_the_new_verbs_and_options() {
    let (stdout, _) = text(&kiln(&["--help"]));
    for word in [
        "completions",
        "man",
        "--quiet",
        "--color",
        "PLUGIN VERSION",
        "NO_COLOR",
    ] {
        assert!(
            stdout.contains(word),
            "kiln --help mentions {word}: {stdout}"
        );
    }
    let (stdout, _) = text(&kiln(&["pack", "--help"]));
    for word in [
        "--quiet",
        "--color <WHEN>",
        "only what follows it is the plugin's",
    ] {
        assert!(
            stdout.contains(word),
            "pack --help mentions {word}: {stdout}"
        );
    }
}

#[test]
fn a_pack_whose_reader_goes_away_cleans_up_and_leaves_the_image_unchanged() {
    use std::io::BufRead;
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("demo.qcow2");
    std::fs::copy(support::demo_image(), &image).unwrap();
    let before = support::sha256_file(&image);
    // `kiln pack ... | head`: read up to the line saying the appliance is
    // up, then close the pipe, so that kiln's next line (the first
    // validator's, printed from inside the run) finds no reader.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["pack", "--image", image.to_str().unwrap(), "demo", "1.0"])
        .current_dir(repo_root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kiln runs");
    let mut read = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    while !read.contains("image ready") {
        assert!(
            stdout.read_line(&mut read).unwrap() > 0,
            "kiln ended early: {read}"
        );
    }
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    let (_, stderr) = text(&output);
    assert!(stderr.is_empty(), "no panic, no message: {stderr}");
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}",
        output.status
    );
    assert_eq!(
        support::sha256_file(&image),
        before,
        "the image is unchanged"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        [OsStr::new("demo.qcow2")],
        "no overlay left beside it"
    );
    // No appliance still runs on it: none has the directory in its command line.
    let needle = dir.path().as_os_str().as_bytes();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        assert!(
            !cmdline.windows(needle.len()).any(|w| w == needle),
            "process {:?} still uses the image: {}",
            entry.file_name(),
            String::from_utf8_lossy(&cmdline)
        );
    }
}

// ---- reports, logs and `kiln pin` (the run needs no target) ----

use crate::support::reports;

fn pack_with_report(dir: &Path, format: &str, manifest: &[&str]) -> (Output, PathBuf, PathBuf) {
    let report = dir.join(format!("report.{format}"));
    let log = dir.join("kiln.log");
    let image = dir.join("missing.qcow2");
    let mut args = vec![
        "pack",
        "--image",
        image.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--report-format",
        format,
        "--log-file",
        log.to_str().unwrap(),
    ];
    args.extend(manifest);
    (kiln(&args), report, log)
}

#[test]
fn a_report_and_log_are_written_when_the_manifest_fails_to_load() {
    let dir = tempfile::tempdir().unwrap();
    let (output, report, log) = pack_with_report(
        dir.path(),
        "json",
        &["--manifest", "tests/malformed/unknown_type.yaml"],
    );
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    let report = reports::valid_json_report(&report);
    assert_eq!(report["command"], "pack");
    assert_eq!(report["passed"], false);
    assert_eq!(report["exit_code"], 2);
    assert_eq!(report["kiln_version"], env!("CARGO_PKG_VERSION"));
    assert!(report["arguments"]
        .as_array()
        .unwrap()
        .contains(&"--report-format".into()));
    let error = report["error"].as_str().unwrap();
    assert!(error.contains("unknown validator type `pakage`"), "{error}");
    // The image named is there, with the error that kept it from running.
    let target = &report["targets"][0];
    assert_eq!(target["kind"], "image", "{report:#}");
    assert_eq!(target["result"], "error", "{report:#}");
    assert_eq!(target["validators"], serde_json::json!([]), "{report:#}");
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.starts_with("kiln "), "{log}");
    assert!(
        log.contains("kiln: ") && log.contains("unknown validator type"),
        "{log}"
    );

    let (output, report, _) = pack_with_report(
        dir.path(),
        "junit",
        &["--manifest", "tests/malformed/unknown_type.yaml"],
    );
    assert_eq!(output.status.code(), Some(2));
    let xml = reports::valid_junit_report(&report);
    assert!(xml.contains("<error type=\"error\""), "{xml}");
    assert!(xml.contains("errors=\"1\""), "{xml}");
}

#[test]
fn a_report_lists_every_validator_as_not_run_when_the_image_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (output, report, _) = pack_with_report(dir.path(), "json", &["demo", "1.0"]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    let report = reports::valid_json_report(&report);
    assert!(report["manifest"]
        .as_str()
        .unwrap()
        .ends_with("manifests/demo/1.0/image.yaml"));
    assert_eq!(
        report["manifest_arguments"]["tools"], "minimal",
        "{report:#}"
    );
    let target = &report["targets"][0];
    assert_eq!(target["result"], "error", "{report:#}");
    assert!(target["error"]["message"]
        .as_str()
        .unwrap()
        .contains("missing.qcow2"));
    let validators = target["validators"].as_array().unwrap();
    // `kiln lint` counts 8 validators in the demo manifest: all listed,
    // flow control and what it nests included, none run.
    assert_eq!(validators.len(), 8, "{report:#}");
    assert!(validators.iter().all(|v| v["status"] == "not run"));
    assert!(validators
        .iter()
        .any(|v| v["path"] == "validators[2].argument_case.cases.full[0].package"));

    let (_, report, _) = pack_with_report(dir.path(), "junit", &["demo", "1.0"]);
    let xml = reports::valid_junit_report(&report);
    assert!(
        xml.contains("tests=\"9\" failures=\"0\" errors=\"1\" skipped=\"8\""),
        "{xml}"
    );
    assert!(xml.contains("<skipped message=\"not run\"/>"), "{xml}");
}

#[test]
fn an_unreachable_host_is_in_the_report_with_nothing_run() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    // Port 1 on loopback refuses at once.
    let output = kiln(&[
        "validate",
        "--host",
        "root@127.0.0.1:1",
        "--connect-timeout",
        "5",
        "--report",
        report.to_str().unwrap(),
        "demo",
        "1.0",
    ]);
    assert_eq!(output.status.code(), Some(1), "{:?}", text(&output));
    let report = reports::valid_json_report(&report);
    let target = &report["targets"][0];
    assert_eq!(target["target"], "root@127.0.0.1:1", "{report:#}");
    assert_eq!(target["kind"], "host");
    assert_eq!(target["result"], "unreachable");
    assert_eq!(target["validators"].as_array().unwrap().len(), 8);
    assert!(target["validators"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["status"] == "not run"));
}

#[test]
fn pin_rewrites_stale_digests_in_place() {
    let wasm = component("kiln_hostile_attacks");
    let digest = support::sha256_file(&wasm);
    let stale = "0".repeat(64);
    let yaml = format!(
        "# my site\nvalidator_types:\n  attacks:   # the test type\n    wasm: {w}   # rebuilt often\n    sha256: \"{stale}\"  # pinned\n    grants: [exec]\n  narrow: {{wasm: {w}, grants: [exec]}}\nvalidators: []\n",
        w = wasm.display()
    );
    let fixture = Fixture::new(&yaml, &[]);
    let manifest = fixture.path.to_str().unwrap();
    // A stale digest refuses the manifest; `pin --check` says so.
    assert_eq!(kiln(&["lint", manifest]).status.code(), Some(2));
    assert_eq!(kiln(&["pin", "--check", manifest]).status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&fixture.path).unwrap(), yaml);

    let output = kiln(&["pin", manifest]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    assert!(
        text(&output).0.contains("2 digest(s) rewritten"),
        "{:?}",
        text(&output)
    );
    // Only the digests changed: comments, quotes' place and layout stay.
    let expected = yaml
        .replace(&format!("\"{stale}\""), &digest)
        .replace("{wasm: ", &format!("{{sha256: {digest}, wasm: "));
    assert_eq!(std::fs::read_to_string(&fixture.path).unwrap(), expected);
    assert_eq!(kiln(&["lint", manifest]).status.code(), Some(0));
    assert_eq!(kiln(&["pin", "--check", manifest]).status.code(), Some(0));
}

#[test]
fn help_names_the_report_and_log_options() {
    for verb in ["pack", "validate"] {
        let (stdout, _) = text(&kiln(&[verb, "--help"]));
        for option in ["--report-format", "--log-file", "junit"] {
            assert!(
                stdout.contains(option),
                "{verb} --help lacks {option}:\n{stdout}"
            );
        }
    }
    let (stdout, _) = text(&kiln(&["pin", "--help"]));
    assert!(stdout.contains("sha256"), "{stdout}");
}

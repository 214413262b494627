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
        // Never the machine's /etc/sahara/sahara.conf or /etc/kiln/kiln.conf.
        .env("KILN_DEFAULT_CONFIG", "")
        .current_dir(repo_root())
        .output()
        .expect("kiln runs")
}

fn kiln_os(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        // Never the machine's /etc/sahara/sahara.conf or /etc/kiln/kiln.conf.
        .env("KILN_DEFAULT_CONFIG", "")
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
#[cfg_attr(not(sahara_corpus), ignore = "set KILN_SAHARA_CORPUS=…/corpus/sahara")]
fn the_guides_invocation_parses_with_a_sahara_conf() {
    // `sahara-image-pack --image CentOS.qcow2 --config-file etc/sahara/sahara.conf cdh 5.7.0`,
    // with kiln in place of the command name, against the real CDH 5.7.0 manifest.
    let dir = tempfile::tempdir().unwrap();
    let version = dir.path().join("plugins/cdh/v5_7_0");
    std::fs::create_dir_all(&version).unwrap();
    let corpus = support::sahara_corpus().join("cdh/v5_7_0");
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
        .env("KILN_DEFAULT_CONFIG", "")
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

/// A catalog in the Sahara plugins' layout: `ambari/image.yaml` shared by
/// `ambari/2.3/version.yaml` (which fixes a value) and `ambari/2.4`.
fn shared_version_catalog() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("ambari");
    for (path, text) in [
        (
            "image.yaml",
            "arguments:\n  ambari_version:\n    default: 2.6.2.0\n    choices: [2.6.2.0, 2.4.3.0]\nvalidators:\n  - script:\n      common/install:\n        env_vars: [ambari_version, cdh_version]\n",
        ),
        ("common/install", "#!/bin/sh\n"),
        ("2.3/version.yaml", "manifest: ../image.yaml\nset:\n  ambari_version: 2.4.3.0\n"),
        ("2.4/version.yaml", "manifest: ../image.yaml\n"),
    ] {
        let path = plugin.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn list_shows_which_versions_share_a_manifest_and_what_they_set() {
    let catalog = shared_version_catalog();
    let dir = catalog.path().to_str().unwrap();
    let output = kiln(&["list", "--manifest-dir", dir]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let shared = format!("{dir}/ambari/image.yaml");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[1].starts_with("ambari  2.3 ")
            && lines[1].contains(&shared)
            && lines[1].ends_with("  ambari_version=2.4.3.0"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("ambari  2.4 ") && lines[2].ends_with(&shared),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("  {shared}: ambari 2.3, ambari 2.4\n")),
        "{stdout}"
    );
}

#[test]
fn explain_shows_a_versions_values_and_each_scripts_env_vars() {
    let catalog = shared_version_catalog();
    let dir = catalog.path().to_str().unwrap();
    let output = kiln(&["explain", "--manifest-dir", dir, "ambari", "2.3"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "version entry {dir}/ambari/2.3/version.yaml (shares the manifest above)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("  ambari_version = 2.4.3.0  fixed (set:) at {dir}/ambari/2.3/version.yaml:3:3, replacing the manifest's default 2.6.2.0\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains("      env: ambari_version, cdh_version (undeclared)\n"),
        "{stdout}"
    );
    let output = kiln(&["pack", "--manifest-dir", dir, "ambari", "2.3", "--help"]);
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains(&format!("[fixed for this version: 2.4.3.0 (by {dir}/ambari/2.3/version.yaml:3:3); choices: 2.6.2.0, 2.4.3.0]")),
        "{stdout}"
    );
    let output = kiln(&[
        "pack",
        "--image",
        "/nonexistent.qcow2",
        "--manifest-dir",
        dir,
        "ambari",
        "2.3",
        "--ambari_version",
        "2.6.2.0",
    ]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("Argument ambari_version is fixed to `2.4.3.0` for this plugin version by")
            && !stderr.contains("nonexistent"),
        "refused before the image is opened: {stderr}"
    );
}

#[test]
fn lint_checks_version_entries_and_warns_about_undeclared_env_vars() {
    let catalog = shared_version_catalog();
    let dir = catalog.path().to_str().unwrap();
    let output = kiln(&[
        "lint",
        "--manifest-dir",
        dir,
        "ambari",
        "2.3",
        "ambari",
        "2.4",
    ]);
    let (stdout, stderr) = text(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "a warning is no error: {stderr}"
    );
    assert!(
        stdout.contains(&format!("{dir}/ambari/2.3/version.yaml: ok (version entry for {dir}/ambari/image.yaml, 1 value; 1 arguments, 1 validators, 1 warning)")),
        "{stdout}"
    );
    assert_eq!(
        stderr,
        format!("{dir}/ambari/image.yaml:8:36: warning: validators[0].script: env_vars names `cdh_version`, which the manifest does not declare and nothing sets, so the script never gets it; declare it under `arguments` or drop it\n"),
        "said once for the two versions"
    );
    std::fs::write(
        catalog.path().join("ambari/2.4/version.yaml"),
        "manifest: ../image.yaml\nset:\n  ambari_version: 3.0\n",
    )
    .unwrap();
    let output = kiln(&["lint", "--manifest-dir", dir, "ambari", "2.4"]);
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.starts_with(&format!("{dir}/ambari/2.4/version.yaml:3:3: version entry: `set.ambari_version`: `3.0` is not one of")),
        "{stderr}"
    );
}
// ---- sahara-image-pack's oslo options and config files ----

/// `DIR/NAME/1/image.yaml`, a plugin with one version and no arguments,
/// so that `kiln list` shows which manifest directory was searched.
fn plugin_in(dir: &Path, name: &str) {
    let version = dir.join(name).join("1");
    std::fs::create_dir_all(&version).unwrap();
    std::fs::write(version.join("image.yaml"), "validators: []\n").unwrap();
}

/// `kiln ARGS` with `KILN_DEFAULT_CONFIG` set to `default`.
fn kiln_with_default_config(args: &[&str], default: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(repo_root())
        .env("KILN_DEFAULT_CONFIG", default)
        .output()
        .expect("kiln runs")
}

#[test]
fn config_dirs_are_read_in_sorted_order_after_the_config_files() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    plugin_in(&a, "from-a");
    plugin_in(&b, "from-b");
    let file = dir.path().join("sahara.conf");
    std::fs::write(&file, format!("[kiln]\nmanifest_dirs = {}\n", b.display())).unwrap();
    let conf_dir = dir.path().join("sahara.conf.d");
    std::fs::create_dir(&conf_dir).unwrap();
    // Read in sorted order, the later winning: 20-a.conf after 10-b.conf.
    std::fs::write(
        conf_dir.join("20-a.conf"),
        format!("[kiln]\nmanifest_dirs = {}\n", a.display()),
    )
    .unwrap();
    std::fs::write(
        conf_dir.join("10-b.conf"),
        format!("[kiln]\nmanifest_dirs = {}\n", b.display()),
    )
    .unwrap();
    // Only *.conf files count.
    std::fs::write(
        conf_dir.join("30-b.conf.orig"),
        format!("[kiln]\nmanifest_dirs = {}\n", b.display()),
    )
    .unwrap();
    let (file, conf_dir) = (file.to_str().unwrap(), conf_dir.to_str().unwrap());
    // The directory comes after the file, wherever it stands on the line.
    for args in [
        ["list", "--config-file", file, "--config-dir", conf_dir],
        ["list", "--config-dir", conf_dir, "--config-file", file],
    ] {
        let output = kiln(&args);
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            stdout.contains("from-a") && !stdout.contains("from-b"),
            "{args:?}: {stdout}"
        );
    }
    let missing = dir.path().join("nowhere");
    assert_refused(
        &["list", "--config-dir", missing.to_str().unwrap()],
        &["--config-dir", "nowhere", "cannot read the directory"],
        &[],
    );
}

#[test]
fn the_default_config_file_is_read_only_when_none_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    plugin_in(&a, "from-a");
    plugin_in(&b, "from-b");
    let default = dir.path().join("sahara.conf");
    std::fs::write(&default, "[kiln]\nmanifest_dirs = a\n").unwrap();
    let named = dir.path().join("named.conf");
    std::fs::write(&named, "[kiln]\nmanifest_dirs = b\n").unwrap();
    let output = kiln_with_default_config(&["list"], &default);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stdout.contains("from-a") && !stdout.contains("demo"),
        "{stdout}"
    );
    // A --config-file (or --config-dir) replaces the default files.
    let output = kiln_with_default_config(
        &["list", "--config-file", named.to_str().unwrap()],
        &default,
    );
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains("from-b") && !stdout.contains("from-a"),
        "{stdout}"
    );
    // A default file that does not exist is no error.
    let output = kiln_with_default_config(&["list"], &dir.path().join("absent.conf"));
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("demo"), "the bundled manifests: {stdout}");
}

#[test]
fn a_quoted_manifest_dirs_value_names_the_directory_without_its_quotes() {
    let dir = tempfile::tempdir().unwrap();
    plugin_in(&dir.path().join("mdir"), "quoted");
    let conf = dir.path().join("sahara.conf");
    std::fs::write(&conf, "[kiln]\nmanifest_dirs = \"mdir\"\n").unwrap();
    let output = kiln(&["list", "--config-file", conf.to_str().unwrap()]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("quoted"), "{stdout}");
    assert!(!stdout.contains("no plugins found"), "{stdout}");
}

#[test]
fn config_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let demo = repo_root().join("manifests/demo/1.0/image.yaml");
    for (body, expected) in [
        ("[kiln]\naccel = tcg\n= x\n", ":3: empty key"),
        (
            "[kiln]\n  indented = x\n",
            ":2: unexpected continuation line",
        ),
        (
            "[DEFAULT]\ntest_only = maybe\n",
            ":2: [DEFAULT] test_only must be true or false",
        ),
        (
            "[kiln_limits]\nscript = soon\n",
            ":2: [kiln_limits] script: `soon` is not a duration",
        ),
        (
            "[kiln_limits]\n\npakage = 2h\n",
            ":3: [kiln_limits] pakage: validator type `pakage` is neither built in nor declared",
        ),
    ] {
        let conf = dir.path().join("bad.conf");
        std::fs::write(&conf, body).unwrap();
        assert_refused(
            &[
                "lint",
                "--config-file",
                conf.to_str().unwrap(),
                demo.to_str().unwrap(),
            ],
            &[&format!("{}{expected}", conf.display())],
            &[],
        );
    }
}

#[test]
fn image_and_test_only_come_from_the_config_unless_the_command_line_says() {
    let dir = tempfile::tempdir().unwrap();
    let configured = dir.path().join("configured.qcow2");
    let conf = dir.path().join("sahara.conf");
    std::fs::write(
        &conf,
        format!(
            "[DEFAULT]\nimage = {}\ntest_only = true\n",
            configured.display()
        ),
    )
    .unwrap();
    let report = dir.path().join("report.json");
    let pack = |extra: &[&str]| {
        let mut args = vec![
            "pack",
            "--config-file",
            conf.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ];
        args.extend(extra);
        args.extend(["demo", "1.0"]);
        let output = kiln(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{extra:?}: {:?}",
            text(&output)
        );
        (text(&output).1, reports::valid_json_report(&report))
    };
    // Neither on the command line: the config's image, opened test-only.
    let (stderr, json) = pack(&[]);
    assert!(stderr.contains("configured.qcow2"), "{stderr}");
    assert_eq!(json["test_only"], true, "{json:#}");
    assert_eq!(
        json["targets"][0]["target"],
        format!("image {}", configured.display())
    );
    // The command line wins: its image, and --notest-only over the config.
    let given = dir.path().join("given.qcow2");
    let (stderr, json) = pack(&["--image", given.to_str().unwrap(), "--notest-only"]);
    assert!(
        stderr.contains("given.qcow2") && !stderr.contains("configured"),
        "{stderr}"
    );
    assert_eq!(json["test_only"], false, "{json:#}");
    // Of --test-only and --notest-only, the last one wins.
    let (_, json) = pack(&["--test-only", "--notest-only"]);
    assert_eq!(json["test_only"], false, "{json:#}");
    let (_, json) = pack(&["--notest-only", "--test-only"]);
    assert_eq!(json["test_only"], true, "{json:#}");
    // --output with the config's test_only is refused, as with --test-only.
    let out = dir.path().join("out.qcow2");
    let (stderr, _) = pack(&["--output", out.to_str().unwrap()]);
    assert!(
        stderr.contains("does not go with test-only mode"),
        "{stderr}"
    );
}

#[test]
fn debug_is_verbose_twice_and_logfile_is_log_file() {
    let output = kiln(&["pack", "--help"]);
    let (stdout, _) = text(&output);
    assert!(
        stdout.contains("--debug") && stdout.contains("The same as -vv"),
        "{stdout}"
    );
    assert!(
        stdout.contains("--notest-only") && stdout.contains("--config-dir"),
        "{stdout}"
    );
    assert_refused(&["--debug", "-q", "list"], &["--debug"], &[]);
    // `--debug` shows the commands a run sends (what -v adds) even on a
    // run that stops at the image: the log records the verbosity.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("run.log");
    let output = kiln(&[
        "pack",
        "--debug",
        "--logfile",
        log.to_str().unwrap(),
        "--image",
        dir.path().join("missing.qcow2").to_str().unwrap(),
        "demo",
        "1.0",
    ]);
    assert_eq!(output.status.code(), Some(2), "{:?}", text(&output));
    let logged = std::fs::read_to_string(&log).expect("--logfile wrote the log");
    assert!(logged.contains("missing.qcow2"), "{logged}");
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

/// A limits-only declaration sets a type's limits and nothing else:
/// anything that would change what a built-in may do is refused, with
/// its position, and a name kiln has no type for is refused too.
#[test]
fn a_limits_only_declaration_cannot_widen_a_built_in() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "validator_types:\n  package:\n    limits: {seconds: 7200}\n  script:\n    limits: {seconds: 30}\nvalidators:\n  - script:\n      x:\n        inline: 'true'\n").unwrap();
    let output = kiln(&["lint", good.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{:?}", text(&output));
    for (yaml, expected) in [
        (
            "  script:\n    limits: {seconds: 1}\n    grants: [exec, read-file]\n",
            ":4:5: validator type `script`: without `wasm`, a declaration sets only the `limits`",
        ),
        (
            "  copy_script:\n    commands: ['**']\n    limits: {seconds: 1}\n",
            ":3:5: validator type `copy_script`: without `wasm`",
        ),
        (
            "  nosuch:\n    limits: {seconds: 1}\n",
            ":2:3: validator type `nosuch` is neither built in nor declared",
        ),
        (
            "  script:\n    limits: {seconds: soon}\n",
            "validator type `script`: `soon` is not a whole number",
        ),
    ] {
        let bad = dir.path().join("bad.yaml");
        std::fs::write(
            &bad,
            format!("validator_types:\n{yaml}validators:\n  - script: x.sh\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("x.sh"), "#!/bin/sh\n").unwrap();
        let output = kiln(&["lint", bad.to_str().unwrap()]);
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("{}{expected}", bad.display())) || stderr.contains(expected),
            "{yaml}: {stderr}"
        );
    }
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

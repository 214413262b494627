//! The `kiln` binary's behaviour that needs no real target: lint, explain,
//! list, plugin help, and the one-line errors for bad input that must come
//! before any image is opened or host contacted.

mod support;

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

// ---- reports, logs and `kiln pin` (the run needs no target) ----

#[path = "support/reports.rs"]
mod reports;

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

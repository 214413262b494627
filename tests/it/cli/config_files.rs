//! sahara-image-pack's oslo options and config files: `--config-file`,
//! `--config-dir`, the default config, and the values a config gives
//! that the command line may override.

use super::*;

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

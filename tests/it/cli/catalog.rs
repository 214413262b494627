//! What kiln says about manifests without running them: `kiln lint` (load
//! errors with positions, and warnings about grants and env vars),
//! `kiln explain` and `kiln list`, version entries included.

use super::*;

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

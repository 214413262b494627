//! Loading manifests: every real Sahara manifest in the corpus loads (with
//! empty stand-ins for the scripts its RESOURCES file lists), and every
//! malformed manifest in tests/malformed/ fails with its expected
//! `FILE:LINE:COL: message`, never a panic or a hang. The corpus lives
//! outside this repository: its tests run when `KILN_SAHARA_CORPUS` names
//! it and are reported as ignored otherwise.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{kiln, repo_root, sahara_corpus as corpus_dir};

/// Copies a corpus manifest into a temp dir with stand-ins for its scripts.
fn corpus_copy(manifest: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let source_dir = manifest.parent().unwrap();
    std::fs::copy(manifest, dir.path().join("image.yaml")).unwrap();
    let resources = std::fs::read_to_string(source_dir.join("RESOURCES")).unwrap();
    for line in resources.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = dir.path().join(line);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
    }
    let path = dir.path().join("image.yaml");
    (dir, path)
}

fn corpus_manifests() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![corpus_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().unwrap() == "image.yaml" {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
#[cfg_attr(not(sahara_corpus), ignore = "set KILN_SAHARA_CORPUS=…/corpus/sahara")]
fn all_seven_sahara_manifests_load() {
    let manifests = corpus_manifests();
    assert_eq!(
        manifests.len(),
        7,
        "the corpus has seven manifests: {manifests:?}"
    );
    for manifest in manifests {
        let (_dir, path) = corpus_copy(&manifest);
        let loaded = kiln()
            .load(&path, &Default::default())
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        assert!(!loaded.root.blocks.is_empty());
        assert_eq!(loaded.arguments.len(), 4, "{}", manifest.display());
    }
}

#[test]
#[cfg_attr(not(sahara_corpus), ignore = "set KILN_SAHARA_CORPUS=…/corpus/sahara")]
fn a_corpus_manifest_without_its_scripts_names_the_missing_one() {
    let manifest = corpus_dir().join("spark/image.yaml");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image.yaml");
    std::fs::copy(&manifest, &path).unwrap();
    let error = kiln()
        .load(&path, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!("{}:30:21: validators[0].os_case[0].redhat[1].script: Script centos/wget_cdh_repo not found", path.display())),
        "{error}"
    );
}

#[test]
#[cfg_attr(not(sahara_corpus), ignore = "set KILN_SAHARA_CORPUS=…/corpus/sahara")]
fn cdh_arguments_keep_sahara_types() {
    let (_dir, path) = corpus_copy(&corpus_dir().join("cdh/v5_11_0/image.yaml"));
    let manifest = kiln().load(&path, &Default::default()).unwrap();
    let version = manifest.argument("plugin_version").unwrap();
    assert!(version.hidden);
    assert!(!version.required);
    assert_eq!(version.default.as_deref(), Some("5.11.0"));
    assert_eq!(version.choices, ["5.11.0", "5.11.1", "5.11.2"]);
    let mapr = corpus_copy(&corpus_dir().join("mapr/image.yaml"));
    let mapr = kiln().load(&mapr.1, &Default::default()).unwrap();
    assert_eq!(
        mapr.argument("scala_version").unwrap().default.as_deref(),
        Some("1"),
        "scalars stay strings"
    );
}

/// The expectation on a malformed manifest's first line:
/// `# expect: LINE:COL: text` or `# expect: text`.
fn expectation(path: &Path) -> (Option<(usize, usize)>, String) {
    let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
    let Some(rest) = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
    else {
        return (Some((1, 1)), "the manifest is empty".into());
    };
    let mut parts = rest.splitn(3, ':');
    let (a, b) = (parts.next().unwrap(), parts.next());
    match (a.parse::<usize>(), b.and_then(|b| b.parse::<usize>().ok())) {
        (Ok(line), Some(col)) => (
            Some((line, col)),
            parts.next().unwrap_or("").trim().to_string(),
        ),
        _ => (None, rest.trim().to_string()),
    }
}

#[test]
fn every_malformed_manifest_fails_at_its_place() {
    let dir = repo_root().join("tests/malformed");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the malformed corpus is there");
    for path in files {
        let (place, text) = expectation(&path);
        let started = Instant::now();
        let error = match kiln().load(&path, &Default::default()) {
            Ok(_) => panic!("{} should not load", path.display()),
            Err(e) => e.to_string(),
        };
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{} took {:?}",
            path.display(),
            started.elapsed()
        );
        assert!(!error.contains('\n'), "one line: {error}");
        if let Some((line, col)) = place {
            let prefix = format!("{}:{line}:{col}: ", path.display());
            assert!(
                error.starts_with(&prefix),
                "{}: expected `{prefix}…`, got `{error}`",
                path.display()
            );
        } else {
            assert!(
                error.starts_with(&format!("{}:", path.display())),
                "{error}"
            );
        }
        assert!(
            error.contains(&text),
            "{}: expected `{text}` in `{error}`",
            path.display()
        );
    }
}

#[test]
fn huge_files_are_refused_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.yaml");
    let mut text = String::from("validators:\n");
    while text.len() < 5 << 20 {
        text.push_str("  - package: a\n");
    }
    std::fs::write(&path, text).unwrap();
    let error = kiln()
        .load(&path, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("manifests are limited to"), "{error}");
}

#[test]
fn a_missing_manifest_is_a_read_error() {
    let error = kiln()
        .load(Path::new("/nonexistent/image.yaml"), &Default::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "/nonexistent/image.yaml: cannot read the manifest: No such file or directory (os error 2)"
    );
}

#[test]
fn the_bundled_manifests_load() {
    let demo = repo_root().join("manifests/demo/1.0/image.yaml");
    let manifest = kiln().load(&demo, &Default::default()).unwrap();
    assert_eq!(
        manifest
            .arguments
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["motd", "tools"]
    );
}

/// A small catalog in the Sahara plugins' layout: one shared manifest with
/// its scripts beside it, and a `version.yaml` per version.
fn shared_catalog(entries: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("ambari");
    std::fs::create_dir_all(plugin.join("common")).unwrap();
    std::fs::write(
        plugin.join("image.yaml"),
        "arguments:\n  ambari_version:\n    default: 2.6.2.0\n    choices: [2.6.2.0, 2.4.3.0]\n  java_distro:\n    default: openjdk\n  unset:\n    required: true\nvalidators:\n  - script:\n      common/install:\n        env_vars: [ambari_version]\n",
    )
    .unwrap();
    std::fs::write(plugin.join("common/install"), "#!/bin/sh\n").unwrap();
    for (version, text) in entries {
        std::fs::create_dir_all(plugin.join(version)).unwrap();
        std::fs::write(plugin.join(version).join("version.yaml"), text).unwrap();
    }
    dir
}

fn entry_path(catalog: &tempfile::TempDir, version: &str) -> PathBuf {
    catalog
        .path()
        .join("ambari")
        .join(version)
        .join("version.yaml")
}

#[test]
fn a_version_entry_fixes_and_defaults_values_of_the_shared_manifest() {
    let catalog = shared_catalog(&[(
        "2.3",
        "manifest: ../image.yaml\nset:\n  ambari_version: 2.4.3.0\ndefaults:\n  java_distro: oracle-java\n",
    )]);
    let manifest = kiln()
        .load(&entry_path(&catalog, "2.3"), &Default::default())
        .unwrap();
    assert_eq!(manifest.path, catalog.path().join("ambari/image.yaml"));
    let entry = manifest.version.as_ref().unwrap();
    assert_eq!(entry.chain, [entry_path(&catalog, "2.3")]);
    let fixed = manifest.fixed_value("ambari_version").unwrap();
    assert_eq!(
        (fixed.value.as_str(), fixed.replaces.as_deref()),
        ("2.4.3.0", Some("2.6.2.0"))
    );
    assert_eq!(
        fixed.location.to_string(),
        format!("{}:3:3", entry_path(&catalog, "2.3").display())
    );
    assert!(manifest.fixed_value("java_distro").is_none());
    let given = support::args(&[("unset", "x")]);
    let values = kiln::interpreter::resolve_arguments(&manifest, &given).unwrap();
    assert_eq!(values["ambari_version"], "2.4.3.0");
    assert_eq!(values["java_distro"], "oracle-java");
    // A default gives way to the command line; a fixed value does not.
    let given = support::args(&[("unset", "x"), ("java_distro", "openjdk")]);
    let values = kiln::interpreter::resolve_arguments(&manifest, &given).unwrap();
    assert_eq!(values["java_distro"], "openjdk");
    let given = support::args(&[("unset", "x"), ("ambari_version", "2.4.3.0")]);
    assert!(kiln::interpreter::resolve_arguments(&manifest, &given).is_ok());
    let given = support::args(&[("unset", "x"), ("ambari_version", "2.6.2.0")]);
    let error = kiln::interpreter::resolve_arguments(&manifest, &given)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("Argument ambari_version is fixed to `2.4.3.0` for this plugin version by")
            && error.contains("2.3/version.yaml:3:3")
            && error.contains("(got `2.6.2.0`)"),
        "{error}"
    );
}

#[test]
fn a_chain_of_version_entries_lets_the_nearest_win() {
    let catalog = shared_catalog(&[
        ("2.4", "manifest: ../image.yaml\nset:\n  ambari_version: 2.6.2.0\ndefaults:\n  java_distro: a\n"),
        ("2.3", "manifest: ../2.4/version.yaml\nset:\n  ambari_version: 2.4.3.0\n"),
    ]);
    let manifest = kiln()
        .load(&entry_path(&catalog, "2.3"), &Default::default())
        .unwrap();
    let entry = manifest.version.as_ref().unwrap();
    assert_eq!(
        entry.chain,
        [entry_path(&catalog, "2.3"), entry_path(&catalog, "2.4")]
    );
    assert_eq!(
        manifest
            .argument("ambari_version")
            .unwrap()
            .default
            .as_deref(),
        Some("2.4.3.0")
    );
    assert_eq!(
        manifest.argument("java_distro").unwrap().default.as_deref(),
        Some("a")
    );
}

#[test]
fn a_bad_version_entry_fails_at_its_place() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "manifest: ../image.yaml\nset:\n  ambari_versoin: 2.4.3.0\n",
            "3:3",
            "version entry: `set.ambari_versoin`: ",
        ),
        (
            "manifest: ../image.yaml\ndefaults:\n  ambari_version: 9.9\n",
            "3:3",
            "`defaults.ambari_version`: `9.9` is not one of the argument's choices (2.6.2.0, 2.4.3.0)",
        ),
        (
            "manifest: ../shared.yaml\n",
            "1:11",
            "`manifest: ../shared.yaml`: no such file",
        ),
        (
            "manifest: ../image.yaml\nsets:\n  a: b\n",
            "2:1",
            "unknown key `sets` (known: manifest, set, defaults)",
        ),
        (
            "manifest: ../image.yaml\nset:\n  java_distro: a\ndefaults:\n  java_distro: b\n",
            "5:3",
            "`java_distro` is given twice in this entry",
        ),
        ("manifest:\n", "1:1", "`manifest` must name the shared manifest file"),
    ];
    for (text, place, message) in cases {
        let catalog = shared_catalog(&[("2.3", text)]);
        let path = entry_path(&catalog, "2.3");
        let error = kiln()
            .load(&path, &Default::default())
            .unwrap_err()
            .to_string();
        let prefix = format!("{}:{place}: ", path.display());
        assert!(
            error.starts_with(&prefix) && error.contains(message) && !error.contains('\n'),
            "{text:?}: expected `{prefix}…{message}…`, got `{error}`"
        );
    }
}

#[test]
fn version_entries_that_name_each_other_are_a_cycle() {
    let catalog = shared_catalog(&[
        ("2.3", "manifest: ../2.4/version.yaml\n"),
        ("2.4", "manifest: ../2.3/version.yaml\n"),
    ]);
    let path = entry_path(&catalog, "2.3");
    let error = kiln()
        .load(&path, &Default::default())
        .unwrap_err()
        .to_string();
    let expected = format!(
        "{}:1:11: version entry: the entries name each other in a cycle ({} -> {} -> {})",
        entry_path(&catalog, "2.4").display(),
        path.display(),
        entry_path(&catalog, "2.4").display(),
        path.display()
    );
    assert!(error.starts_with(&expected), "{error}");
}

// ---------------------------------------------------------------------------
// Corpus runs: each real manifest on the scripted remote, for `ubuntu` and
// `centos`, reconciling and test-only, against the exact command sequence
// recorded in tests/fixtures/corpus-runs/. `KILN_BLESS=1` rewrites the
// recordings; review every changed file against its manifest before
// committing it.

/// The catalog of the Sahara plugins as kiln lays it out: CDH's
/// per-version manifests, and ambari, mapr and spark's one manifest each,
/// shared by their versions through version entries (the values Sahara's
/// plugin code set: ambari 2.3 fixes `ambari_version`).
fn corpus_catalog() -> tempfile::TempDir {
    let corpus = corpus_dir();
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        std::fs::copy(from.join("image.yaml"), to.join("image.yaml")).unwrap();
        let resources = std::fs::read_to_string(from.join("RESOURCES")).unwrap();
        for name in resources.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let path = to.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("#!/bin/sh\n# stand-in for {name}\n")).unwrap();
        }
    };
    for version in ["v5_7_0", "v5_9_0", "v5_11_0", "v5_13_0"] {
        copy(
            &corpus.join("cdh").join(version),
            &dir.path().join("cdh").join(version),
        );
    }
    for plugin in ["ambari", "mapr", "spark"] {
        copy(&corpus.join(plugin), &dir.path().join(plugin));
    }
    let entries = [
        (
            "ambari/2.3",
            "manifest: ../image.yaml\nset:\n  ambari_version: 2.4.3.0\n",
        ),
        ("ambari/2.4", "manifest: ../image.yaml\n"),
        ("ambari/2.5", "manifest: ../image.yaml\n"),
        ("ambari/2.6", "manifest: ../image.yaml\n"),
        ("mapr/5.2.0.mrv2", "manifest: ../image.yaml\n"),
        ("spark/2.2", "manifest: ../image.yaml\n"),
        ("spark/2.3", "manifest: ../image.yaml\n"),
    ];
    for (version, text) in entries {
        let path = dir.path().join(version).join("version.yaml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// The remote's log as text: one line per call, environment entries
/// indented below their command.
fn recorded(calls: &[kiln::remote::scripted::Call], catalog: &Path) -> String {
    use kiln::remote::scripted::Call;
    let mut out = String::new();
    for call in calls {
        match call {
            Call::Run(command) => {
                out.push_str(&format!("run {}\n", command.script));
                for (name, value) in &command.env {
                    out.push_str(&format!("    env {name}={value}\n"));
                }
            }
            Call::Write {
                path,
                contents,
                mode,
            } => {
                let text = String::from_utf8_lossy(contents);
                // A stand-in names its script; an inline script shows its text.
                let what = text
                    .lines()
                    .find_map(|l| l.strip_prefix("# "))
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("inline {:?}", text));
                out.push_str(&format!(
                    "write {path} mode {} ({} bytes: {what})\n",
                    mode.map_or("kept".to_string(), |m| format!("{m:o}")),
                    contents.len()
                ));
            }
            Call::Read(path) => out.push_str(&format!("read {path}\n")),
            Call::Metadata(path) => out.push_str(&format!("metadata {path}\n")),
        }
    }
    out.replace(&catalog.display().to_string(), "CATALOG")
}

/// What an operator would pass for each version, besides the defaults:
/// Spark 2.2 packs Spark 2.3.2 unless told (as in Sahara), CDH 5.11 a point
/// release, and an Ambari run takes the Oracle Java branch.
fn given_arguments(version_dir: &str) -> &'static [(&'static str, &'static str)] {
    match version_dir {
        "spark/2.2" => &[("plugin_version", "2.2.1")],
        "cdh/v5_11_0" => &[
            ("plugin_version", "5.11.2"),
            ("hdfs_lib_dir", "/usr/lib/hadoop"),
        ],
        "ambari/2.6" => &[("java_distro", "oracle-java")],
        _ => &[],
    }
}

/// One run, recorded: the plugin version's manifest on a scripted `distro`
/// whose package checks fail until an install (reconcile) or pass (test-only).
fn corpus_run(catalog: &Path, version_dir: &str, distro: &str, test_only: bool) -> String {
    use kiln::remote::CommandOutput;
    let dir = catalog.join(version_dir);
    let path = [dir.join("version.yaml"), dir.join("image.yaml")]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap();
    let manifest = kiln()
        .load(&path, &Default::default())
        .unwrap_or_else(|e| panic!("{version_dir}: {e}"));
    let mut remote = kiln::remote::scripted::ScriptedRemote::new(distro);
    if !test_only {
        // Each package check fails once (not installed), then passes after
        // the install that follows it.
        let answers: Vec<CommandOutput> = (0..200)
            .flat_map(|_| {
                [
                    CommandOutput::failure(1, "not installed"),
                    CommandOutput::success(""),
                ]
            })
            .collect();
        for check in ["dpkg -s", "rpm -q"] {
            remote = remote.on(check, answers.clone());
        }
    }
    let (summary, remote) = kiln().run(
        &manifest,
        remote,
        &support::args(given_arguments(version_dir)),
        test_only,
        Box::new(kiln::interpreter::Quiet),
    );
    let mut out = format!(
        "# {version_dir} on {distro}, {}: {}\n",
        if test_only { "test-only" } else { "reconcile" },
        match &summary.outcome {
            Ok(()) => "passed".to_string(),
            Err(e) => format!("failed: {e}"),
        }
    );
    let arguments: Vec<String> = summary
        .arguments
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    out.push_str(&format!("# arguments: {}\n", arguments.join(" ")));
    out.push_str(&recorded(&remote.calls(), catalog));
    out.replace(&catalog.display().to_string(), "CATALOG")
}

#[test]
#[cfg_attr(not(sahara_corpus), ignore = "set KILN_SAHARA_CORPUS=…/corpus/sahara")]
fn every_corpus_manifest_runs_its_exact_command_sequence() {
    let catalog = corpus_catalog();
    let expected_dir = repo_root().join("tests/fixtures/corpus-runs");
    let bless = std::env::var_os("KILN_BLESS").is_some_and(|v| v == "1");
    let versions = [
        "cdh/v5_7_0",
        "cdh/v5_9_0",
        "cdh/v5_11_0",
        "cdh/v5_13_0",
        "ambari/2.3",
        "ambari/2.6",
        "mapr/5.2.0.mrv2",
        "spark/2.2",
        "spark/2.3",
    ];
    let mut mismatches = Vec::new();
    for version in versions {
        for distro in ["ubuntu", "centos"] {
            for (mode, test_only) in [("reconcile", false), ("test-only", true)] {
                let got = corpus_run(catalog.path(), version, distro, test_only);
                let name = format!("{}-{distro}-{mode}.txt", version.replace('/', "-"));
                let file = expected_dir.join(&name);
                if bless {
                    std::fs::create_dir_all(&expected_dir).unwrap();
                    std::fs::write(&file, &got).unwrap();
                    continue;
                }
                let expected = std::fs::read_to_string(&file).unwrap_or_else(|e| {
                    panic!("{}: {e} (KILN_BLESS=1 records it)", file.display())
                });
                if got != expected {
                    mismatches.push(name);
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "command sequences differ from tests/fixtures/corpus-runs/ for {mismatches:?}; KILN_BLESS=1 rewrites them (review each diff)"
    );
}

#[test]
#[cfg_attr(not(sahara_corpus), ignore = "set KILN_SAHARA_CORPUS=…/corpus/sahara")]
fn ambari_2_3_gives_its_scripts_ambari_version_2_4_3_0() {
    let catalog = corpus_catalog();
    for distro in ["ubuntu", "centos"] {
        let run = corpus_run(catalog.path(), "ambari/2.3", distro, false);
        assert!(run.contains("    env ambari_version=2.4.3.0\n"), "{run}");
        assert!(!run.contains("2.6.2.0"), "{run}");
        let run = corpus_run(catalog.path(), "ambari/2.6", distro, false);
        assert!(run.contains("    env ambari_version=2.6.2.0\n"), "{run}");
    }
}

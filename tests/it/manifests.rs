//! Loading manifests: every real Sahara manifest in the shared corpus loads
//! (with empty stand-ins for the scripts its RESOURCES file lists), and every
//! malformed manifest in tests/malformed/ fails with its expected
//! `FILE:LINE:COL: message`, never a panic or a hang.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{kiln, repo_root};

fn corpus_dir() -> PathBuf {
    repo_root().join("../shared/corpus/sahara")
}

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

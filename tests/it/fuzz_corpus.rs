//! Replays what the fuzzers kept (`tests/fuzz-corpus/TARGET/`, minimized)
//! through the very calls the fuzz targets make (`fuzz/harness.rs`, which
//! this file includes), so every input that once found a new path in the
//! manifest loader, the YAML reader, the inventory parsers or a built-in
//! type's `check` stays covered on stable Rust without the fuzzing tools.
//! See docs/fuzzing.md for how the corpus was made and how to extend it.

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The corpus files of `target`, in name order.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz-corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{}: the corpus is missing", dir.display());
    files
}

/// Runs `call` on every file of the corpora named, and fails naming each
/// file that panicked.
fn replay(targets: &[&str], call: impl Fn(&[u8])) {
    let mut failures = Vec::new();
    for target in targets {
        for path in corpus(target) {
            let data = std::fs::read(&path).unwrap();
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| call(&data))) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {why}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn yaml_reader_corpus() {
    replay(&["yaml", "manifest"], harness::yaml);
}

#[test]
fn manifest_loader_corpus() {
    let manifests = harness::Manifests::new();
    replay(&["manifest", "yaml"], |data| manifests.load(data));
}

#[test]
fn inventory_corpus() {
    replay(&["inventory"], harness::inventory);
}

#[test]
fn builtin_check_corpus() {
    let checks = harness::Checks::new();
    replay(&["check"], |data| checks.check(data));
}

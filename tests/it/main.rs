//! kiln's integration tests, as one test binary: each former test file is a
//! module here, so wasmtime and libguestfs are linked once rather than once
//! per file, and the components compile once per run (`support::kiln`).
//! Run one module with `cargo test --test it cli::`, one test with its full
//! name. A new file in this directory must be declared below; the
//! `every_file_is_a_declared_module` test fails until it is, because cargo
//! would otherwise never build it.

mod cli;
mod fuzz_corpus;
mod hostile;
mod image_target;
mod manifests;
mod pack_image;
mod semantics;
mod ssh_target;
mod support;
mod third_party;
mod validate_fleet;

use std::path::Path;

/// The `.rs` files (and module directories) in `dir` that `root` (the
/// directory's `main.rs` or `mod.rs`) does not declare with `mod NAME;`.
fn undeclared_modules(dir: &Path, root: &str) -> Vec<String> {
    let source = std::fs::read_to_string(dir.join(root)).unwrap();
    let declared = |name: &str| {
        source.lines().any(|line| {
            let line = line.trim();
            let line = line.strip_prefix("pub ").unwrap_or(line);
            line == format!("mod {name};")
        })
    };
    let mut missing: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_string();
            let module = if path.is_dir() {
                path.join("mod.rs").is_file().then_some(name.clone())?
            } else {
                name.strip_suffix(".rs")?.to_string()
            };
            (module != root.trim_end_matches(".rs") && !declared(&module))
                .then(|| dir.join(&name).display().to_string())
        })
        .collect();
    missing.sort();
    missing
}

/// `dir` and every module directory (one with a `mod.rs`) below it.
fn module_dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut dirs = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.join("mod.rs").is_file() {
            dirs.extend(module_dirs(&path));
        }
    }
    dirs
}

#[test]
fn every_file_is_a_declared_module() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/it");
    let dirs = module_dirs(&here);
    // The topic directories count too; a guard that saw only the top
    // would miss a file added to one of them.
    for sub in ["support", "cli", "hostile", "validate_fleet"] {
        assert!(
            dirs.contains(&here.join(sub)),
            "{sub} is a module directory"
        );
    }
    for dir in dirs {
        let root = if dir == here { "main.rs" } else { "mod.rs" };
        let missing = undeclared_modules(&dir, root);
        assert!(
            missing.is_empty(),
            "not declared in {}, so never built: {missing:?}; add `mod NAME;` for each",
            dir.join(root).display()
        );
    }
}

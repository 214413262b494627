//! Builds the validator components in `validators-wasm/` for `wasm32-wasip2`
//! so that kiln can embed its built-in validator types, and tells the tests
//! where every built component lies (`KILN_COMPONENT_DIR`). It also turns on
//! `cfg(sahara_corpus)` when `KILN_SAHARA_CORPUS` names Sahara's manifests.
//!
//! The nested cargo uses its own target directory, so it never waits on the
//! lock of the build that runs this script.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let validators = root.join("validators-wasm");
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"))
        .join("validators-wasm");

    sahara_corpus_cfg();

    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    for entry in [
        "Cargo.toml",
        "Cargo.lock",
        "sdk",
        "builtin",
        "examples",
        "hostile",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            validators.join(entry).display()
        );
    }

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&validators)
        .args([
            "build",
            "--release",
            "--workspace",
            "--target",
            WASM_TARGET,
            "--target-dir",
        ])
        .arg(&target_dir);
    // The outer build's flags are for the host, not for wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build the validator components: {e}"));
    if !status.success() {
        panic!(
            "building the validator components in {} failed; is the target installed? (rustup target add {WASM_TARGET})",
            validators.display()
        );
    }

    // host/builtins.rs embeds the built-ins from here (include_bytes! fails
    // the build, naming the file, if one is missing).
    let out = target_dir.join(WASM_TARGET).join("release");
    println!("cargo:rustc-env=KILN_COMPONENT_DIR={}", out.display());
}

/// The tests that need Sahara's real manifests (kept outside this
/// repository) run only when `KILN_SAHARA_CORPUS` names them: the variable
/// turns on `cfg(sahara_corpus)`, which reaches the package's test targets,
/// and without it those tests are reported as ignored, never as passed.
fn sahara_corpus_cfg() {
    println!("cargo::rustc-check-cfg=cfg(sahara_corpus)");
    println!("cargo::rerun-if-env-changed=KILN_SAHARA_CORPUS");
    if env::var_os("KILN_SAHARA_CORPUS").is_some_and(|dir| !dir.is_empty()) {
        println!("cargo::rustc-cfg=sahara_corpus");
    }
}

//! Builds chosen packages of the `validators-wasm/` workspace for
//! `wasm32-wasip2`. Shared by `runtime/build.rs` (the built-ins kiln embeds)
//! and `test-components/build.rs` (the examples and hostile fixtures only the
//! tests use), so that a release build compiles only what ships.
//!
//! Packages are found by listing a group directory (`builtin/`, `hostile/`,
//! ...) rather than by a list kept here, so a new fixture needs no edit in a
//! build script. The nested cargo uses its own target directory
//! (`$CARGO_TARGET_DIR/validators-wasm`), so it never waits on the lock of the
//! build that runs it; the two build scripts share that directory, and cargo's
//! own lock orders them when they run at once.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const WASM_TARGET: &str = "wasm32-wasip2";

/// One validator crate: its cargo package name and the file it builds to.
pub struct WasmPackage {
    pub name: String,
}

impl WasmPackage {
    /// The component's file name (`kiln-hostile-attacks` builds
    /// `kiln_hostile_attacks.wasm`).
    #[allow(dead_code)] // test-components names its constants by it; runtime/build.rs needs no names
    pub fn file_stem(&self) -> String {
        self.name.replace('-', "_")
    }
}

/// The repository's root and the `validators-wasm/` workspace in it.
pub struct WasmWorkspace {
    pub root: PathBuf,
    pub validators: PathBuf,
    target_dir: PathBuf,
}

impl WasmWorkspace {
    /// Locates the workspace from the build script's package directory
    /// (`runtime/` or `test-components/`, both directly below the root).
    pub fn from_build_env() -> WasmWorkspace {
        let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
        let root = manifest_dir.parent().unwrap().to_path_buf();
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
        WasmWorkspace {
            validators: root.join("validators-wasm"),
            root,
            target_dir,
        }
    }

    /// Every package directly below `validators-wasm/<group>/`, sorted by name.
    pub fn packages_in(&self, group: &str) -> Vec<WasmPackage> {
        let dir = self.validators.join(group);
        let mut packages: Vec<WasmPackage> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .filter_map(|entry| {
                let manifest = entry.ok()?.path().join("Cargo.toml");
                manifest.is_file().then(|| package_name(&manifest))
            })
            .map(|name| WasmPackage { name })
            .collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        packages
    }

    /// Tells cargo to run the build script again when any of `entries`
    /// (relative to `validators-wasm/`) or the contract changes.
    pub fn rerun_if_changed(&self, entries: &[&str]) {
        println!("cargo:rerun-if-changed={}", self.root.join("wit").display());
        for entry in ["Cargo.toml", "Cargo.lock", "sdk"].iter().chain(entries) {
            println!(
                "cargo:rerun-if-changed={}",
                self.validators.join(entry).display()
            );
        }
    }

    /// Builds `packages` (release, wasm32-wasip2) and returns the directory
    /// the components land in.
    pub fn build(&self, packages: &[WasmPackage]) -> PathBuf {
        let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(&self.validators)
            .args([
                "build",
                "--release",
                "--target",
                WASM_TARGET,
                "--target-dir",
            ])
            .arg(&self.target_dir);
        for package in packages {
            build.args(["--package", &package.name]);
        }
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
        let status = build.status().unwrap_or_else(|e| {
            panic!("could not run cargo to build the validator components: {e}")
        });
        if !status.success() {
            panic!(
                "building the validator components in {} failed; is the target installed? (rustup target add {WASM_TARGET})",
                self.validators.display()
            );
        }
        self.target_dir.join(WASM_TARGET).join("release")
    }
}

/// The `name = "…"` of a Cargo.toml's `[package]` table (the first `name`
/// line; the validator crates declare it first, before `[lib]`).
fn package_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest)
        .unwrap_or_else(|e| panic!("reading {}: {e}", manifest.display()));
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("name"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|value| value.trim().trim_matches('"').to_string())
        .next()
        .unwrap_or_else(|| panic!("{} declares no package name", manifest.display()))
}

//! Builds the built-in validator components (`validators-wasm/builtin/`) for
//! `wasm32-wasip2` so that kiln can embed them, and tells `host/builtins.rs`
//! where they lie (`KILN_COMPONENT_DIR`). It also turns on
//! `cfg(sahara_corpus)` when `KILN_SAHARA_CORPUS` names Sahara's manifests.
//!
//! Only the built-ins: the examples and hostile fixtures are built by the
//! dev-only `test-components` crate, so a release build compiles only what
//! ships.

#[path = "wasm_build.rs"]
mod wasm_build;

use std::env;

use wasm_build::WasmWorkspace;

fn main() {
    sahara_corpus_cfg();

    let workspace = WasmWorkspace::from_build_env();
    workspace.rerun_if_changed(&["builtin"]);
    let out = workspace.build(&workspace.packages_in("builtin"));
    // host/builtins.rs embeds the built-ins from here (include_bytes! fails
    // the build, naming the file, if one is missing).
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

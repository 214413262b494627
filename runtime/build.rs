//! Builds the built-in validator components (`validators-wasm/builtin/`) for
//! `wasm32-wasip2` so that kiln can embed them, and tells `host/builtins.rs`
//! where they lie (`KILN_COMPONENT_DIR`).
//!
//! Only the built-ins: the examples and hostile fixtures are built by the
//! dev-only `test-components` crate, so a release build compiles only what
//! ships.

#[path = "wasm_build.rs"]
mod wasm_build;

use wasm_build::WasmWorkspace;

fn main() {
    let workspace = WasmWorkspace::from_build_env();
    workspace.rerun_if_changed(&["builtin"]);
    let out = workspace.build(&workspace.packages_in("builtin"));
    // host/builtins.rs embeds the built-ins from here (include_bytes! fails
    // the build, naming the file, if one is missing).
    println!("cargo:rustc-env=KILN_COMPONENT_DIR={}", out.display());
}

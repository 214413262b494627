//! Builds the components only tests and benchmarks use — the examples
//! (`validators-wasm/examples/`) and the misbehaving fixtures
//! (`validators-wasm/hostile/`) — and writes their paths as constants for
//! `src/lib.rs` to include, in the manner of wasmtime's
//! `crates/test-programs/artifacts`.

#[path = "../runtime/wasm_build.rs"]
mod wasm_build;

use std::fmt::Write as _;
use std::path::PathBuf;

use wasm_build::WasmWorkspace;

const GROUPS: [&str; 2] = ["examples", "hostile"];

fn main() {
    let workspace = WasmWorkspace::from_build_env();
    workspace.rerun_if_changed(&GROUPS);
    let packages: Vec<_> = GROUPS
        .iter()
        .flat_map(|group| workspace.packages_in(group))
        .collect();
    let out = workspace.build(&packages);

    let mut code = String::new();
    let mut all = String::new();
    for package in &packages {
        let stem = package.file_stem();
        let path = out.join(format!("{stem}.wasm"));
        assert!(path.is_file(), "{} was not built", path.display());
        let constant = stem.to_uppercase();
        writeln!(code, "/// `{}`, built for wasm32-wasip2.", package.name).unwrap();
        writeln!(
            code,
            "pub const {constant}: &str = {:?};",
            path.display().to_string()
        )
        .unwrap();
        writeln!(all, "    ({stem:?}, {constant}),").unwrap();
    }
    writeln!(code, "/// Every component here as (file stem, path).").unwrap();
    writeln!(code, "pub const ALL: &[(&str, &str)] = &[\n{all}];").unwrap();

    let generated = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("components.rs");
    std::fs::write(&generated, code).unwrap();
}

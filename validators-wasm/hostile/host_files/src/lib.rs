//! A hostile validator type for kiln's tests: `run` tries to reach the
//! host's own filesystem through WASI (read `/etc/passwd`, list `/`, write
//! the file named by the spec's `canary`) and reports each attempt in its
//! error, `LEAKED` for one that worked, so the test can see what happened.

use kiln_validator_sdk::{export_validator, leaf_plan, parse_spec, Guest, Plan, SpecError};

struct HostFiles;

fn attempt<T>(what: &str, result: std::io::Result<T>) -> String {
    match result {
        Ok(_) => format!("{what}: LEAKED"),
        Err(e) => format!("{what}: refused ({e})"),
    }
}

impl Guest for HostFiles {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("read the host's files"))
    }

    fn run(spec: String, _test_only: bool) -> Result<(), String> {
        let spec = parse_spec(&spec).map_err(|e| e.message)?;
        let canary = spec["canary"]
            .as_str()
            .unwrap_or("/tmp/kiln-hostile-canary")
            .to_string();
        let report = [
            attempt("read /etc/passwd", std::fs::read_to_string("/etc/passwd")),
            attempt("list /", std::fs::read_dir("/")),
            attempt("write canary", std::fs::write(&canary, b"pwned")),
        ];
        Err(report.join("; "))
    }
}

export_validator!(HostFiles);

//! A hostile validator type for kiln's tests: `run` reads the process
//! environment, arguments and working directory through WASI and reports
//! what it found in its error, so the test can check nothing of the host's
//! leaked in.

use kiln_validator_sdk::{export_validator, leaf_plan, Guest, Plan, SpecError};

struct Environment;

impl Guest for Environment {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("read the environment"))
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        let vars: Vec<String> = std::env::vars_os()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
            .collect();
        let args: Vec<String> = std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let cwd = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|e| format!("none ({e})"));
        Err(format!(
            "vars={} [{}]; args={} [{}]; cwd={cwd}",
            vars.len(),
            vars.join(" "),
            args.len(),
            args.join(" ")
        ))
    }
}

export_validator!(Environment);

//! A hostile validator type for kiln's tests: `run` floods `host.log` with
//! 4 KiB lines forever, so only the log limit stops it.

use kiln_validator_sdk::{export_validator, host, leaf_plan, Guest, LogLevel, Plan, SpecError};

struct LogSpam;

impl Guest for LogSpam {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("flood the log"))
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        let line = "spam ".repeat(800);
        loop {
            host::log(LogLevel::Warn, &line);
        }
    }
}

export_validator!(LogSpam);

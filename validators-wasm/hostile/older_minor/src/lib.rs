//! A validator type built against the frozen 0.1.0 contract
//! (`wit/since_v0.1.0/`), for kiln's versioning tests. Apart from the
//! version it is an ordinary leaf validator: `run` logs, runs
//! `echo built-against-0.1.0` (grant: exec) and notes a change.

wit_bindgen::generate!({ world: "validator-type", path: "../../../wit/since_v0.1.0" });

use exports::kiln::validator::validator::Guest;
use kiln::validator::host;
use kiln::validator::types::{LogLevel, Plan, SpecError};

const COMMAND: &str = "echo built-against-0.1.0";

struct Versioned;

impl Guest for Versioned {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(Plan {
            nested: Vec::new(),
            resources: Vec::new(),
            summary: "built against kiln:validator@0.1.0".into(),
        })
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        host::log(LogLevel::Info, "built against kiln:validator@0.1.0");
        let output = host::run_command(COMMAND, &[])?;
        if output.exit_code != 0 {
            return Err(format!("`{COMMAND}` exited with {}", output.exit_code));
        }
        host::note_change("ran under the 0.1.0 contract");
        Ok(())
    }
}

export!(Versioned);

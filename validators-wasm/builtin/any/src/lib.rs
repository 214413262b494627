//! The `any` validator type: succeeds when one child does.
//!
//! Every child runs first in test-only mode, stopping at the first success.
//! Only when none passed and the run reconciles does a second pass run them
//! in reconcile mode, again stopping at the first success. When none
//! succeeds, the error lists every child's failure of the last pass.

use kiln_validator_sdk::{
    export_validator, host, kind_of, single_blocks, spec_error, Guest, Plan, SpecError, Value,
};

struct Any;

impl Guest for Any {
    fn check(spec: String) -> Result<Plan, SpecError> {
        let count = children(&kiln_validator_sdk::parse_spec(&spec)?)?;
        Ok(Plan {
            nested: single_blocks(count),
            resources: Vec::new(),
            summary: format!("any of {count}"),
        })
    }

    fn run(spec: String, test_only: bool) -> Result<(), String> {
        let count = children(&kiln_validator_sdk::parse_run_spec(&spec)?)?;
        let mut failures = match first_success(count, true) {
            Ok(()) => return Ok(()),
            Err(failures) => failures,
        };
        if !test_only {
            failures = match first_success(count, false) {
                Ok(()) => return Ok(()),
                Err(failures) => failures,
            };
        }
        Err(format!("no alternative passed: {}", failures.join("; ")))
    }
}

/// Runs children in order until one passes; the failures otherwise.
fn first_success(count: usize, test_only: bool) -> Result<(), Vec<String>> {
    let mut failures = Vec::new();
    for index in 0..count {
        match host::run_nested(index as u32, test_only) {
            Ok(()) => return Ok(()),
            Err(e) => failures.push(format!("[{index}] {e}")),
        }
    }
    Err(failures)
}

fn children(spec: &Value) -> Result<usize, SpecError> {
    match spec {
        Value::Array(items) if !items.is_empty() => Ok(items.len()),
        Value::Array(_) => Err(spec_error("", "any has no alternatives")),
        other => Err(spec_error(
            "",
            format!("any must be a list of validators, found {}", kind_of(other)),
        )),
    }
}

export_validator!(Any);

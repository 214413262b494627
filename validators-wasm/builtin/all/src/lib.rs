//! The `all` validator type: runs its children in order and stops at the
//! first failure. The manifest's top-level `validators` list runs as `all`.

use kiln_validator_sdk::{
    export_validator, host, kind_of, single_blocks, spec_error, Guest, Plan, SpecError, Value,
};

struct All;

impl Guest for All {
    fn check(spec: String) -> Result<Plan, SpecError> {
        let count = children(&kiln_validator_sdk::parse_spec(&spec)?)?;
        Ok(Plan {
            nested: single_blocks(count),
            resources: Vec::new(),
            summary: format!("all of {count}"),
        })
    }

    fn run(spec: String, test_only: bool) -> Result<(), String> {
        let count = children(&kiln_validator_sdk::parse_run_spec(&spec)?)?;
        (0..count).try_for_each(|index| host::run_nested(index as u32, test_only))
    }
}

fn children(spec: &Value) -> Result<usize, SpecError> {
    match spec {
        Value::Array(items) => Ok(items.len()),
        other => Err(spec_error(
            "",
            format!("all must be a list of validators, found {}", kind_of(other)),
        )),
    }
}

export_validator!(All);

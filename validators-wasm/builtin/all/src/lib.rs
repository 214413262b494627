//! The `all` validator type: runs its children in order and stops at the
//! first failure. The manifest's top-level `validators` list runs as `all`.

use kiln_validator_sdk::{export_validator, host, kind_of, pointer_index, spec_error, BlockShape, Guest, NestedBlock, Plan, SpecError, Value};

struct All;

impl Guest for All {
    fn check(spec: String) -> Result<Plan, SpecError> {
        let count = children(&kiln_validator_sdk::parse_spec(&spec)?)?;
        let nested = (0..count).map(|i| NestedBlock { pointer: pointer_index("", i), shape: BlockShape::Single }).collect();
        Ok(Plan { nested, resources: Vec::new(), summary: format!("all of {count}") })
    }

    fn run(spec: String, test_only: bool) -> Result<(), String> {
        let count = children(&kiln_validator_sdk::parse_spec(&spec).map_err(|e| e.message)?).map_err(|e| e.message)?;
        (0..count).try_for_each(|index| host::run_nested(index as u32, test_only))
    }
}

fn children(spec: &Value) -> Result<usize, SpecError> {
    match spec {
        Value::Array(items) => Ok(items.len()),
        other => Err(spec_error("", format!("all must be a list of validators, found {}", kind_of(other)))),
    }
}

export_validator!(All);

//! The `argument_set` validator type: sets an argument's value for the
//! validators that follow.
//!
//! Spec: exactly `argument_name` and `value`.

use kiln_validator_sdk::{
    expect_str, export_validator, host, kind_of, leaf_plan, pointer_key, spec_error, Guest, Plan,
    SpecError, Value,
};

struct ArgumentSet;

impl Guest for ArgumentSet {
    fn check(spec: String) -> Result<Plan, SpecError> {
        let (name, value) = parse(&kiln_validator_sdk::parse_spec(&spec)?)?;
        Ok(leaf_plan(format!("set {name} = {value}")))
    }

    fn run(spec: String, _test_only: bool) -> Result<(), String> {
        let spec = kiln_validator_sdk::parse_run_spec(&spec)?;
        let (name, value) = parse(&spec)?;
        host::set_argument(&name, &value)
    }
}

fn parse(spec: &Value) -> Result<(String, String), SpecError> {
    let map = spec.as_object().ok_or_else(|| {
        spec_error(
            "",
            format!(
                "argument_set must be a map with argument_name and value, found {}",
                kind_of(spec)
            ),
        )
    })?;
    for key in map.keys() {
        if key != "argument_name" && key != "value" {
            return Err(spec_error(
                &pointer_key("", key),
                format!("unknown key `{key}` (argument_set takes argument_name and value)"),
            ));
        }
    }
    let name = map
        .get("argument_name")
        .ok_or_else(|| spec_error("", "argument_set needs argument_name"))?;
    let name = expect_str(name, "/argument_name", "argument_name")?;
    let value = map
        .get("value")
        .ok_or_else(|| spec_error("", "argument_set needs value"))?;
    let value = expect_str(value, "/value", "value")?;
    Ok((name.to_string(), value.to_string()))
}

export_validator!(ArgumentSet);

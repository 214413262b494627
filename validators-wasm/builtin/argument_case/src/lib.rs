//! The `argument_case` validator type: runs the block of the case equal to an
//! argument's value; no matching case runs nothing; an argument that has no
//! value is an error.
//!
//! Spec: exactly `argument_name` and `cases` (value → list of validators).

use kiln_validator_sdk::{
    expect_str, export_validator, host, kind_of, pointer_key, spec_error, BlockShape, Guest,
    NestedBlock, Plan, SpecError, Value,
};

struct ArgumentCase;

struct Spec {
    argument: String,
    /// (case value, pointer to its validator list), in order.
    cases: Vec<(String, String)>,
}

impl Guest for ArgumentCase {
    fn check(spec: String) -> Result<Plan, SpecError> {
        let spec = parse(&kiln_validator_sdk::parse_spec(&spec)?)?;
        let nested = spec
            .cases
            .iter()
            .map(|(_, pointer)| NestedBlock {
                pointer: pointer.clone(),
                shape: BlockShape::Sequence,
            })
            .collect();
        let values: Vec<&str> = spec.cases.iter().map(|(v, _)| v.as_str()).collect();
        Ok(Plan {
            nested,
            resources: Vec::new(),
            summary: format!("by {}: {}", spec.argument, values.join(", ")),
        })
    }

    fn run(spec: String, test_only: bool) -> Result<(), String> {
        let spec = parse(&kiln_validator_sdk::parse_run_spec(&spec)?)?;
        let value = host::get_argument(&spec.argument)
            .ok_or_else(|| format!("Argument {} not found", spec.argument))?;
        match spec.cases.iter().position(|(case, _)| *case == value) {
            Some(index) => host::run_nested(index as u32, test_only),
            None => Ok(()),
        }
    }
}

fn parse(spec: &Value) -> Result<Spec, SpecError> {
    let map = spec.as_object().ok_or_else(|| {
        spec_error(
            "",
            format!(
                "argument_case must be a map with argument_name and cases, found {}",
                kind_of(spec)
            ),
        )
    })?;
    for key in map.keys() {
        if key != "argument_name" && key != "cases" {
            return Err(spec_error(
                &pointer_key("", key),
                format!("unknown key `{key}` (argument_case takes argument_name and cases)"),
            ));
        }
    }
    let argument = map
        .get("argument_name")
        .ok_or_else(|| spec_error("", "argument_case needs argument_name"))?;
    let argument = expect_str(argument, "/argument_name", "argument_name")?.to_string();
    let cases = map
        .get("cases")
        .ok_or_else(|| spec_error("", "argument_case needs cases"))?;
    let cases = cases.as_object().ok_or_else(|| {
        spec_error(
            "/cases",
            format!(
                "cases must be a map from value to validators, found {}",
                kind_of(cases)
            ),
        )
    })?;
    let cases = cases
        .keys()
        .map(|value| (value.clone(), pointer_key("/cases", value)))
        .collect();
    Ok(Spec { argument, cases })
}

export_validator!(ArgumentCase);

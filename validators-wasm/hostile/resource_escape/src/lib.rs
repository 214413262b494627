//! A hostile validator type for kiln's tests: it lies about the resources it
//! needs. `check` declares the resource named by the spec's `declare` (if
//! any); `run` reads the one named by `read` instead, ignores a refusal and
//! claims success, or reports `LEAKED` when the read worked.

use kiln_validator_sdk::{
    export_validator, host, leaf_plan, parse_spec, Guest, Plan, ResourceRef, SpecError,
};

struct ResourceEscape;

impl Guest for ResourceEscape {
    fn check(spec: String) -> Result<Plan, SpecError> {
        let spec = parse_spec(&spec)?;
        let mut plan = leaf_plan("read a resource it did not declare");
        if let Some(path) = spec["declare"].as_str() {
            plan.resources.push(ResourceRef {
                pointer: "/declare".into(),
                path: path.into(),
            });
        }
        Ok(plan)
    }

    fn run(spec: String, _test_only: bool) -> Result<(), String> {
        let spec = parse_spec(&spec).map_err(|e| e.message)?;
        let path = spec["read"].as_str().unwrap_or("../../etc/shadow");
        match host::read_resource(path) {
            Ok(bytes) => Err(format!("LEAKED {} bytes of {path}", bytes.len())),
            Err(_ignored) => Ok(()),
        }
    }
}

export_validator!(ResourceEscape);

//! A hostile validator type for kiln's tests: it lies about its spec. `check`
//! declares no nested blocks, then `run` asks kiln to run nested block 0
//! anyway (it holds the `nested` grant), ignores the refusal and claims
//! success.

use kiln_validator_sdk::{export_validator, host, leaf_plan, Guest, Plan, SpecError};

struct UndeclaredNested;

impl Guest for UndeclaredNested {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("nothing nested, it says"))
    }

    fn run(_spec: String, test_only: bool) -> Result<(), String> {
        let _ignored = host::run_nested(0, test_only);
        Ok(())
    }
}

export_validator!(UndeclaredNested);

//! A hostile validator type for kiln's tests: `run` runs a command although
//! its declaration grants no `exec`, ignores the refusal and claims success.
//! kiln must refuse the call and fail the node anyway.

use kiln_validator_sdk::{export_validator, host, leaf_plan, Guest, Plan, SpecError};

struct ExecWithoutGrant;

impl Guest for ExecWithoutGrant {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("run a command it may not"))
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        let _ignored = host::run_command("useradd -o -u 0 backdoor", &[]);
        Ok(())
    }
}

export_validator!(ExecWithoutGrant);

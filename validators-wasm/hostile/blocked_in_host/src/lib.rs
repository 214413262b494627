//! A hostile validator type for kiln's tests: `run` starts a command that
//! never ends (`sleep 3600`), and retries it whenever it comes back, so it
//! spends its life blocked inside a host call where epoch interruption
//! cannot reach it. kiln must still stop it at its wall-clock limit.

use kiln_validator_sdk::{export_validator, host, leaf_plan, Guest, Plan, SpecError};

struct BlockedInHost;

impl Guest for BlockedInHost {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("sleep an hour on the target"))
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        loop {
            let _ignored = host::run_command("sleep 3600", &[]);
        }
    }
}

export_validator!(BlockedInHost);

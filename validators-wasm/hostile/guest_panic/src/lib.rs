//! A hostile validator type for kiln's tests: `run` panics. The workspace
//! builds with `panic = "abort"`, so the panic message goes to stderr and the
//! component traps; kiln must name the crash and carry the message.

use kiln_validator_sdk::{export_validator, leaf_plan, Guest, Plan, SpecError};

struct GuestPanic;

impl Guest for GuestPanic {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("panic"))
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        panic!("hostile validator gave up on purpose");
    }
}

export_validator!(GuestPanic);

//! A hostile validator type for kiln's tests: `check` never returns, so a
//! manifest using it must fail to load at the wall-clock limit, before any
//! target is touched.

use kiln_validator_sdk::{export_validator, Guest, Plan, SpecError};

struct CheckLoop;

impl Guest for CheckLoop {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        let mut turns: u64 = 0;
        loop {
            turns = core::hint::black_box(turns.wrapping_add(1));
        }
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        Ok(())
    }
}

export_validator!(CheckLoop);

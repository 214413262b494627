//! A hostile validator type for kiln's tests: `run` spins forever without
//! calling the host, so only epoch interruption (the wall-clock limit) can
//! stop it.

use kiln_validator_sdk::{export_validator, leaf_plan, Guest, Plan, SpecError};

struct EndlessLoop;

impl Guest for EndlessLoop {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("spin forever"))
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        let mut turns: u64 = 0;
        loop {
            // black_box keeps the optimiser from proving the loop empty.
            turns = core::hint::black_box(turns.wrapping_add(1));
        }
    }
}

export_validator!(EndlessLoop);

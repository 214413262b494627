//! A hostile validator type for kiln's tests: `run` hoards memory a mebibyte
//! at a time until something stops it (the memory limit).

use kiln_validator_sdk::{export_validator, leaf_plan, Guest, Plan, SpecError};

struct MemoryBomb;

impl Guest for MemoryBomb {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("allocate without bound"))
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Touch every page so nothing can be left uncommitted.
            hoard.push(vec![0xa5; 1 << 20]);
            core::hint::black_box(&hoard);
        }
    }
}

export_validator!(MemoryBomb);

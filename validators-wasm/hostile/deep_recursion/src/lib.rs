//! A hostile validator type for kiln's tests: `run` recurses without bound.
//! The recursion keeps its state in wasm locals, so it is the engine's stack
//! (not the guest's shadow stack in linear memory) that runs out.

use kiln_validator_sdk::{export_validator, leaf_plan, Guest, Plan, SpecError};

struct DeepRecursion;

// Endless on purpose: that is the behaviour under test.
#[allow(unconditional_recursion)]
#[inline(never)]
fn dive(depth: u64) -> u64 {
    let next = core::hint::black_box(depth.wrapping_add(1));
    // Not a tail call: the multiplication needs the result.
    dive(next).wrapping_mul(3).wrapping_add(depth)
}

impl Guest for DeepRecursion {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("recurse without bound"))
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        Err(format!("recursion ended at {}", dive(0)))
    }
}

export_validator!(DeepRecursion);

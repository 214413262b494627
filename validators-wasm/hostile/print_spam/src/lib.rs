//! A hostile validator type for kiln's tests: `run` floods stdout through
//! WASI with `println!` forever; stdout is a bounded buffer on kiln's side,
//! so the log limit must stop it.

use kiln_validator_sdk::{export_validator, leaf_plan, Guest, Plan, SpecError};

struct PrintSpam;

impl Guest for PrintSpam {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("flood stdout"))
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        let line = "spam ".repeat(800);
        loop {
            println!("{line}");
        }
    }
}

export_validator!(PrintSpam);

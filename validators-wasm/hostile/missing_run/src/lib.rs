//! A component that exports `kiln:validator/validator` at the right version
//! but without `run` (built from a broken copy of the WIT in `wit/`). kiln's
//! tests expect it refused when it loads, not when a run first needs `run`.

wit_bindgen::generate!({ world: "validator-type", path: "wit" });

use exports::kiln::validator::validator::Guest;
use kiln::validator::types::{Plan, SpecError};

struct CheckOnly;

impl Guest for CheckOnly {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(Plan {
            nested: Vec::new(),
            resources: Vec::new(),
            summary: "check only".into(),
        })
    }
}

export!(CheckOnly);

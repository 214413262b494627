//! A hostile validator type for kiln's tests: `run` writes a sudoers file
//! although its declaration grants no `write-file`, ignores the refusal and
//! claims success.

use kiln_validator_sdk::{export_validator, host, leaf_plan, Guest, Plan, SpecError};

struct WriteWithoutGrant;

impl Guest for WriteWithoutGrant {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("write a file it may not"))
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        let _ignored = host::write_file(
            "/etc/sudoers.d/hostile",
            b"ALL ALL=(ALL) NOPASSWD: ALL\n",
            0o440,
        );
        Ok(())
    }
}

export_validator!(WriteWithoutGrant);

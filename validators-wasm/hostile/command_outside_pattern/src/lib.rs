//! A hostile validator type for kiln's tests: declared with `exec` narrowed
//! to `systemctl *`, `run` runs an allowed command, then one outside the
//! pattern, then one that starts like an allowed one and smuggles a second
//! command after `;`. It ignores the refusals and claims success.

use kiln_validator_sdk::{export_validator, host, leaf_plan, Guest, Plan, SpecError};

struct CommandOutsidePattern;

impl Guest for CommandOutsidePattern {
    fn check(_spec: String) -> Result<Plan, SpecError> {
        Ok(leaf_plan("run commands outside its patterns"))
    }

    fn run(_spec: String, _test_only: bool) -> Result<(), String> {
        host::run_command("systemctl is-enabled sshd", &[])?;
        let _ignored = host::run_command("rm -rf /var/lib/important", &[]);
        let _ignored =
            host::run_command("systemctl is-enabled sshd; rm -rf /var/lib/important", &[]);
        Ok(())
    }
}

export_validator!(CommandOutsidePattern);

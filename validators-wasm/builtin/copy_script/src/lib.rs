//! The `copy_script` validator type: puts a resource on the target at
//! `/tmp/<file name>` (the last path component), in both modes, as Sahara
//! did: the scripts that follow (MapR's) read it, and a sysprepped image or
//! a host whose /tmp was cleaned no longer has it. In test-only mode the copy
//! is scratch space (the host allows test-only writes under /tmp only, never
//! through a symlink, and a test-only image session writes to a discarded
//! overlay), so the validator passes without reporting a change.
//!
//! Spec: as `script`, without `env_vars` (`output` is accepted and ignored,
//! as Sahara did).

use kiln_validator_sdk::{export_validator, host, script_spec, Guest, Plan, SpecError};

struct CopyScript;

impl Guest for CopyScript {
    fn check(spec: String) -> Result<Plan, SpecError> {
        let script = script_spec::parse(&kiln_validator_sdk::parse_spec(&spec)?, false)?;
        Ok(Plan {
            nested: Vec::new(),
            resources: script.resources(),
            summary: format!("copy {} to {}", script.name, destination(&script.name)),
        })
    }

    fn run(spec: String, test_only: bool) -> Result<(), String> {
        let spec = kiln_validator_sdk::parse_run_spec(&spec)?;
        let script = script_spec::parse(&spec, false)?;
        let contents = script.contents()?;
        let target = destination(&script.name);
        // Writing only when needed keeps a conforming target unchanged.
        if host::read_file(&target)?.as_deref() == Some(contents.as_slice()) {
            return Ok(());
        }
        host::write_file(&target, &contents, 0o755)?;
        if !test_only {
            host::note_change(&format!("wrote {target}"));
        }
        Ok(())
    }
}

/// `/tmp/` plus the last component of the path.
fn destination(path: &str) -> String {
    let file_name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path);
    format!("/tmp/{file_name}")
}

export_validator!(CopyScript);

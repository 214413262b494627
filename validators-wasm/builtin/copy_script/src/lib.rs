//! The `copy_script` validator type: puts a resource on the target at
//! `/tmp/<file name>` (the last path component). In test-only mode it checks
//! that the file is there with exactly that content instead.
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
        let found = host::read_file(&target)?;
        if !test_only {
            // Writing only when needed keeps an image that conforms unchanged.
            if found.as_deref() != Some(contents.as_slice()) {
                host::write_file(&target, &contents, 0o755)?;
                host::note_change(&format!("wrote {target}"));
            }
            return Ok(());
        }
        match found {
            None => Err(format!("{target} is missing (copy of {})", script.name)),
            Some(found) if found == contents => Ok(()),
            Some(found) => Err(format!(
                "{target} differs from {} ({} bytes on the target, {} expected)",
                script.name,
                found.len(),
                contents.len()
            )),
        }
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

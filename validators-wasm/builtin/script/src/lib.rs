//! The `script` validator type: runs a script on the target as root.
//!
//! Spec: a resource path (`setup.sh`), or a one-key map from a path (or, with
//! `inline`, a friendly name) to options: `env_vars` (or `arguments`), a list
//! of argument names exported to the script; `output`, an argument that
//! receives the script's stdout; `inline`, the script text itself. The options
//! may be a map or a list of one-key maps (the guide shows both).
//!
//! The script always sees `test_only` (1 or 0) and `distro`, then the listed
//! arguments that have values. Names that are not shell identifiers reach the
//! script with `-` replaced by `_` (`java-distro` becomes `java_distro`).
//! Values travel as environment entries, never through shell parsing.
//!
//! The shebang decides the interpreter: a script that starts with `#!` is
//! executed as written (bash-isms in a `#!/bin/bash` script work); one
//! without runs under the target's `/bin/sh`, which is where Sahara's image
//! runs put every script. The choice is explicit in the command rather than
//! left to the calling shell's fallback for files the kernel cannot exec.

use kiln_validator_sdk::{
    export_validator, failure_message, host, script_spec, Guest, Plan, SpecError,
};

struct Script;

impl Guest for Script {
    fn check(spec: String) -> Result<Plan, SpecError> {
        let script = script_spec::parse(&kiln_validator_sdk::parse_spec(&spec)?, true)?;
        let resources = script.resources();
        let mut summary = format!("run {}", script.name);
        if let Some(output) = &script.output {
            summary.push_str(&format!(" (stdout into {output})"));
        }
        Ok(Plan {
            nested: Vec::new(),
            resources,
            summary,
        })
    }

    fn run(spec: String, test_only: bool) -> Result<(), String> {
        let spec = kiln_validator_sdk::parse_run_spec(&spec)?;
        let script = script_spec::parse(&spec, true)?;
        let contents = script.contents()?;
        let path = format!(
            "/tmp/kiln-script-{:016x}",
            script_spec::fingerprint(&script.name, &contents)
        );
        host::write_file(&path, &contents, 0o755)?;
        let env = environment(&script.env_vars, test_only);
        // One round trip: run, remember the status, remove the script.
        let command = format!(
            "{}; status=$?; rm -f {path}; exit $status",
            invocation(&path, &contents)
        );
        let output = host::run_command(&command, &env)?;
        if output.exit_code != 0 {
            let shown = failure_message(&script.name, &output);
            return Err(shown.replacen(
                &format!("`{}`", script.name),
                &format!("script `{}`", script.name),
                1,
            ));
        }
        if !test_only {
            host::note_change(&format!("ran {}", script.name));
        }
        if let Some(name) = &script.output {
            let stdout = String::from_utf8_lossy(&output.stdout);
            host::set_argument(name, stdout.trim_end_matches(['\n', '\r']))?;
        }
        Ok(())
    }
}

/// How the written script is started: executed by its own shebang line, or
/// handed to `/bin/sh` when it has none.
fn invocation(path: &str, contents: &[u8]) -> String {
    if contents.starts_with(b"#!") {
        path.to_string()
    } else {
        format!("/bin/sh {path}")
    }
}

/// `test_only`, `distro`, then each listed argument that has a value.
fn environment(env_vars: &[String], test_only: bool) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "test_only".to_string(),
            if test_only { "1" } else { "0" }.to_string(),
        ),
        ("distro".to_string(), host::distro()),
    ];
    for name in env_vars {
        if name == "test_only" || name == "distro" {
            continue;
        }
        if let Some(value) = host::get_argument(name) {
            env.push((name.replace('-', "_"), value));
        }
    }
    env
}

export_validator!(Script);

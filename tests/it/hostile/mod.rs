//! The hostile-validator suite: components in `validators-wasm/hostile/`
//! that loop, hoard memory, recurse, panic, flood the log, reach for the
//! host's files, network and environment, act without grants or lie about
//! their spec. Each is declared in a manifest with small limits and run
//! against the scripted remote (or a test remote that blocks); each test
//! checks the named outcome, that the run ended cleanly before the next
//! validator, that the target received no forbidden call, and that nothing
//! beside the manifest changed on the host.

mod attacks;
mod misbehaving;

use crate::support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln::interpreter::{Quiet, RunError, RunSummary, ValidationError};
use kiln::remote::scripted::{Call, ScriptedRemote};
use kiln::remote::{
    CommandOutput, FileMetadata, FileRead, FileWrite, Remote, RemoteCommand, RemoteError,
};
use support::{args, component, kiln, Fixture};

/// The validator that follows each hostile one; it must never run.
const LATER: &str = "later-marker";
const LIMITS: &str = "{milliseconds: 2000, memory_mib: 16, log_kib: 64}";

/// One hostile type declared under `name` from the built component
/// `kiln_hostile_<name>.wasm`, followed by a `package` validator.
struct Case {
    name: &'static str,
    grants: &'static str,
    extra: &'static str,
    limits: &'static str,
    spec: String,
}

impl Case {
    fn new(name: &'static str) -> Case {
        Case {
            name,
            grants: "[]",
            extra: "",
            limits: LIMITS,
            spec: "~".into(),
        }
    }

    fn grants(mut self, grants: &'static str) -> Case {
        self.grants = grants;
        self
    }

    fn extra(mut self, extra: &'static str) -> Case {
        self.extra = extra;
        self
    }

    fn limits(mut self, limits: &'static str) -> Case {
        self.limits = limits;
        self
    }

    fn spec(mut self, spec: impl Into<String>) -> Case {
        self.spec = spec.into();
        self
    }

    fn yaml(&self) -> String {
        let wasm = component(&format!("kiln_hostile_{}", self.name));
        format!(
            "validator_types:\n  {name}:\n    wasm: {wasm}\n    grants: {grants}\n{extra}    limits: {limits}\nvalidators:\n  - {name}: {spec}\n  - package: {LATER}\n",
            name = self.name,
            wasm = wasm.display(),
            grants = self.grants,
            extra = self.extra,
            limits = self.limits,
            spec = self.spec,
        )
    }
}

/// How one hostile run went.
struct Ran {
    summary: RunSummary,
    elapsed: Duration,
    fixture: Fixture,
    files_before: BTreeSet<String>,
}

impl Ran {
    /// The failure, which must be the hostile node's and not an internal one.
    fn failure(&self, case: &Case) -> &ValidationError {
        let error = match &self.summary.outcome {
            Err(RunError::Validation(error)) => error,
            other => panic!(
                "{}: the run must fail on the hostile node: {other:?}",
                case.name
            ),
        };
        assert_eq!(error.type_name, case.name);
        assert_eq!(error.path, format!("validators[0].{}", case.name));
        // Shown with --nocapture: the suite doubles as a catalogue of messages.
        eprintln!("{}: {}", case.name, error.message);
        error
    }

    /// The run ended at the hostile node: the next validator never ran and
    /// nothing appeared or vanished beside the manifest.
    fn assert_ended_cleanly(&self, remote: &ScriptedRemote) {
        assert!(
            !remote.commands().iter().any(|c| c.contains(LATER)),
            "the validator after the hostile one must not run: {:?}",
            remote.commands()
        );
        assert!(
            self.summary
                .records
                .iter()
                .all(|r| !r.path.starts_with("validators[1]")),
            "{:?}",
            self.summary.records
        );
        assert_eq!(
            list_dir(self.fixture.dir.path()),
            self.files_before,
            "the host's files beside the manifest changed"
        );
    }
}

fn list_dir(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn run_case<R: Remote + 'static>(case: &Case, remote: R, files: &[(&str, &str)]) -> Ran {
    let fixture = Fixture::new(&case.yaml(), files);
    let files_before = list_dir(fixture.dir.path());
    let manifest = fixture.manifest();
    let started = Instant::now();
    let (summary, _) = kiln().run(&manifest, remote, &args(&[]), false, Box::new(Quiet));
    Ran {
        summary,
        elapsed: started.elapsed(),
        fixture,
        files_before,
    }
}

/// Runs a case against a fresh scripted remote and checks what every
/// hostile run must: the named outcome, a clean end, no forbidden call.
fn stopped(case: Case, expected: &[&str]) -> (Ran, ScriptedRemote) {
    let remote = ScriptedRemote::new("debian");
    let ran = run_case(&case, remote.clone(), &[]);
    let message = ran.failure(&case).message.clone();
    for fragment in expected {
        assert!(
            message.contains(fragment),
            "{}: expected `{fragment}` in: {message}",
            case.name
        );
    }
    assert!(
        !message.contains("internal error"),
        "{}: {message}",
        case.name
    );
    ran.assert_ended_cleanly(&remote);
    assert!(
        !remote
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Write { .. })),
        "{}: no write may reach the target: {:?}",
        case.name,
        remote.calls()
    );
    (ran, remote)
}

//! The hostile-validator suite: components in `validators-wasm/hostile/`
//! that loop, hoard memory, recurse, panic, flood the log, reach for the
//! host's files, network and environment, act without grants or lie about
//! their spec. Each is declared in a manifest with small limits and run
//! against the scripted remote (or a test remote that blocks); each test
//! checks the named outcome, that the run ended cleanly before the next
//! validator, that the target received no forbidden call, and that nothing
//! beside the manifest changed on the host.

mod support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln::interpreter::{Quiet, RunError, RunSummary, ValidationError};
use kiln::remote::{CommandOutput, Remote, RemoteCommand, RemoteError};
use kiln::scripted::{Call, ScriptedRemote};
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

// ---- limits ----

#[test]
fn endless_loop_is_stopped_at_its_wall_clock_limit() {
    let case =
        Case::new("endless_loop").limits("{milliseconds: 1000, memory_mib: 16, log_kib: 64}");
    let (ran, remote) = stopped(
        case,
        &["validator type `endless_loop` was stopped at its wall-clock limit of 1 s"],
    );
    assert!(remote.calls().is_empty());
    assert!(
        ran.elapsed >= Duration::from_millis(1000) && ran.elapsed < Duration::from_millis(2500),
        "stopped after {:?}",
        ran.elapsed
    );
}

#[test]
fn endless_loop_in_check_fails_the_load_at_its_wall_clock_limit() {
    let case = Case::new("check_loop").limits("{milliseconds: 500}");
    let fixture = Fixture::new(&case.yaml(), &[]);
    let started = Instant::now();
    let error = fixture.load().expect_err("the manifest must not load");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let message = error.to_string();
    let location = format!("{}:7:5: validators[0].check_loop", fixture.path.display());
    assert!(message.starts_with(&location), "{message}");
    assert!(
        message.contains("checking the spec failed: validator type `check_loop` was stopped at its wall-clock limit of 500 ms"),
        "{message}"
    );
}

#[test]
fn memory_bomb_is_stopped_at_its_memory_limit() {
    let (_, remote) = stopped(
        Case::new("memory_bomb"),
        &["validator type `memory_bomb` was stopped at its memory limit of 16 MiB"],
    );
    assert!(remote.calls().is_empty());
}

#[test]
fn deep_recursion_crashes_on_its_stack() {
    let (ran, remote) = stopped(
        Case::new("deep_recursion"),
        &["validator type `deep_recursion` crashed: it exhausted its stack"],
    );
    assert!(remote.calls().is_empty());
    assert!(ran.elapsed < Duration::from_secs(2), "{:?}", ran.elapsed);
}

#[test]
fn guest_panic_is_a_named_crash_with_its_message() {
    let (_, remote) = stopped(
        Case::new("guest_panic"),
        &[
            "validator type `guest_panic` crashed",
            "hostile validator gave up on purpose",
        ],
    );
    assert!(remote.calls().is_empty());
}

#[test]
fn log_spam_is_stopped_at_its_log_limit() {
    let (_, remote) = stopped(
        Case::new("log_spam"),
        &["validator type `log_spam` was stopped at its log limit of 64 KiB"],
    );
    assert!(remote.calls().is_empty());
}

#[test]
fn stdout_spam_is_stopped_at_its_log_limit() {
    let (ran, remote) = stopped(
        Case::new("print_spam"),
        &["validator type `print_spam` was stopped at its log limit of 64 KiB"],
    );
    assert!(remote.calls().is_empty());
    assert!(ran.elapsed < Duration::from_secs(2), "{:?}", ran.elapsed);
}

// ---- the host's own resources ----

#[test]
fn host_files_are_out_of_reach() {
    let canary_dir = tempfile::tempdir().unwrap();
    let canary = canary_dir.path().join("canary");
    let case = Case::new("host_files").spec(format!("{{canary: {}}}", canary.display()));
    let (ran, _) = stopped(
        case,
        &[
            "read /etc/passwd: refused",
            "list /: refused",
            "write canary: refused",
        ],
    );
    let message = &ran.summary.outcome.as_ref().unwrap_err().to_string();
    assert!(!message.contains("LEAKED"), "{message}");
    assert!(!message.contains("root:"), "{message}");
    assert!(!canary.exists(), "the component wrote on the host");
    assert!(list_dir(canary_dir.path()).is_empty());
}

#[test]
fn network_is_out_of_reach() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let case = Case::new("network").spec(format!("{{port: '{port}'}}"));
    let (ran, _) = stopped(case, &["connect: refused", "resolve localhost: refused"]);
    let message = ran.summary.outcome.as_ref().unwrap_err().to_string();
    assert!(!message.contains("LEAKED"), "{message}");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the listener saw a connection from {peer}"),
        Err(e) => panic!("accept failed: {e}"),
    }
}

#[test]
fn host_environment_is_out_of_reach() {
    // Cargo sets these in every test process; setting a variable of our own
    // would race the other test threads reading the environment.
    let canary = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    assert!(std::env::var_os("PATH").is_some());
    let (ran, _) = stopped(Case::new("environment"), &["vars=0 []", "args=0 []"]);
    let message = ran.summary.outcome.as_ref().unwrap_err().to_string();
    assert!(!message.contains(&canary), "{message}");
    assert!(!message.contains("PATH="), "{message}");
}

// ---- grants ----

#[test]
fn command_without_the_exec_grant_is_refused_and_fails_the_node() {
    let (_, remote) = stopped(
        Case::new("exec_without_grant").grants("[read-file]"),
        &["validator type `exec_without_grant` was denied running `useradd -o -u 0 backdoor`: it lacks the `exec` grant"],
    );
    assert!(remote.calls().is_empty(), "{:?}", remote.calls());
}

#[test]
fn a_flood_of_command_output_is_stopped_at_the_output_limit() {
    // An honest command whose output floods the component: kiln stops the
    // type instead of handing it 2 MiB it was not allowed to receive.
    let case = Case::new("command_outside_pattern")
        .grants("[exec]")
        .limits("{milliseconds: 2000, memory_mib: 16, log_kib: 64, output_mib: 1}");
    let flood = CommandOutput::success(vec![b'x'; 2 << 20]);
    let remote = ScriptedRemote::new("debian").on("systemctl", [flood]);
    let ran = run_case(&case, remote.clone(), &[]);
    let message = &ran.failure(&case).message;
    assert!(
        message
            .contains("was stopped: one command's output (2 MiB so far) passed the limit of 1 MiB"),
        "{message}"
    );
    ran.assert_ended_cleanly(&remote);
    assert_eq!(
        remote.commands(),
        ["systemctl is-enabled sshd"],
        "stopped at the first command"
    );
}

#[test]
fn commands_outside_the_patterns_are_refused_and_fail_the_node() {
    let case = Case::new("command_outside_pattern")
        .grants("[exec]")
        .extra("    commands: ['systemctl *']\n");
    let (_, remote) = stopped(
        case,
        &["validator type `command_outside_pattern` was denied running `rm -rf /var/lib/important`: it is outside the type's allowed command patterns"],
    );
    // The smuggled `systemctl …; rm …` never reached the target either.
    assert_eq!(remote.commands(), ["systemctl is-enabled sshd"]);
}

#[test]
fn write_without_the_grant_is_refused_and_fails_the_node() {
    let (_, remote) = stopped(
        Case::new("write_without_grant").grants("[read-file, exec]"),
        &["validator type `write_without_grant` was denied writing /etc/sudoers.d/hostile: it lacks the `write-file` grant"],
    );
    assert!(remote.calls().is_empty(), "{:?}", remote.calls());
    assert_eq!(remote.file("/etc/sudoers.d/hostile"), None);
}

// ---- components that lie about their spec ----

#[test]
fn undeclared_nested_block_is_refused_and_fails_the_node() {
    let (_, remote) = stopped(
        Case::new("undeclared_nested").grants("[nested]"),
        &["validator type `undeclared_nested` asked to run nested block 0, but its spec declared 0"],
    );
    assert!(remote.calls().is_empty());
}

#[test]
fn declared_resource_outside_the_roots_fails_the_load() {
    let case = Case::new("resource_escape")
        .grants("[read-resource]")
        .spec("{declare: ../../etc/shadow}");
    let fixture = Fixture::new(&case.yaml(), &[]);
    let message = fixture.load().expect_err("must not load").to_string();
    let location = format!(
        "{}:7:23: validators[0].resource_escape",
        fixture.path.display()
    );
    assert!(message.starts_with(&location), "{message}");
    assert!(
        message.contains("resource `../../etc/shadow` leaves the resource roots"),
        "{message}"
    );
}

#[test]
fn undeclared_resource_outside_the_roots_is_refused_and_fails_the_node() {
    let case = Case::new("resource_escape")
        .grants("[read-resource]")
        .spec("{declare: ok.sh, read: ../../../../../etc/passwd}");
    let remote = ScriptedRemote::new("debian");
    let ran = run_case(&case, remote.clone(), &[("ok.sh", "true\n")]);
    let message = ran.failure(&case).message.clone();
    assert!(
        message.contains("validator type `resource_escape` was denied reading resource `../../../../../etc/passwd`: it is outside the resource roots"),
        "{message}"
    );
    assert!(!message.contains("LEAKED"), "{message}");
    ran.assert_ended_cleanly(&remote);
    assert!(remote.calls().is_empty());
}

// ---- a guest blocked inside a host call ----

/// A target whose commands never finish on their own: `run` sleeps until the
/// command's timeout and then reports it, as a real target would.
#[derive(Clone, Default)]
struct SleepyRemote {
    seen: Arc<Mutex<Vec<RemoteCommand>>>,
}

impl Remote for SleepyRemote {
    fn name(&self) -> String {
        "sleepy test remote".into()
    }

    fn distro(&mut self) -> Result<String, RemoteError> {
        Ok("debian".into())
    }

    fn run(&mut self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError> {
        self.seen.lock().unwrap().push(command.clone());
        // Without a timeout, sleep long enough for the test to notice.
        let wait = command
            .timeout
            .unwrap_or(Duration::from_secs(30))
            .min(Duration::from_secs(30));
        std::thread::sleep(wait);
        Err(RemoteError::Timeout {
            target: self.name(),
            command: command.script.clone(),
            seconds: wait.as_secs_f64(),
        })
    }

    fn write_file(&mut self, path: &str, _: &[u8], _: u32) -> Result<(), RemoteError> {
        Err(RemoteError::Failed {
            target: self.name(),
            message: format!("no writes expected ({path})"),
        })
    }

    fn read_file(&mut self, _path: &str) -> Result<Option<Vec<u8>>, RemoteError> {
        Ok(None)
    }
}

#[test]
fn wall_clock_limit_holds_while_blocked_in_a_host_call() {
    let case = Case::new("blocked_in_host")
        .grants("[exec]")
        .limits("{milliseconds: 800}");
    let remote = SleepyRemote::default();
    let ran = run_case(&case, remote.clone(), &[]);
    let message = ran.failure(&case).message.clone();
    assert!(
        message.contains(
            "validator type `blocked_in_host` was stopped at its wall-clock limit of 800 ms"
        ),
        "{message}"
    );
    assert!(
        ran.elapsed >= Duration::from_millis(800) && ran.elapsed < Duration::from_millis(2000),
        "stopped after {:?}",
        ran.elapsed
    );
    let seen = remote.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one command, then stopped: {seen:?}");
    assert_eq!(seen[0].script, "sleep 3600");
    let timeout = seen[0]
        .timeout
        .expect("the command gets the remaining time");
    assert!(timeout <= Duration::from_millis(800), "{timeout:?}");
    assert!(
        !seen.iter().any(|c| c.script.contains(LATER)),
        "the later validator must not run"
    );
}

// ---- the host survives ----

#[test]
fn kiln_keeps_working_after_hostile_runs() {
    for name in ["guest_panic", "deep_recursion", "memory_bomb"] {
        let remote = ScriptedRemote::new("debian");
        let ran = run_case(&Case::new(name), remote, &[]);
        assert!(!ran.summary.passed(), "{name}");
    }
    let remote = ScriptedRemote::new("debian");
    let summary = support::run(
        &format!("validators:\n  - package: {LATER}\n"),
        &[],
        &remote,
        &[],
        true,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.commands(), [format!("dpkg -s {LATER}")]);
}

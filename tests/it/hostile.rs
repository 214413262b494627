//! The hostile-validator suite: components in `validators-wasm/hostile/`
//! that loop, hoard memory, recurse, panic, flood the log, reach for the
//! host's files, network and environment, act without grants or lie about
//! their spec. Each is declared in a manifest with small limits and run
//! against the scripted remote (or a test remote that blocks); each test
//! checks the named outcome, that the run ended cleanly before the next
//! validator, that the target received no forbidden call, and that nothing
//! beside the manifest changed on the host.

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
        message.contains("was stopped: the command's output passed its output limit of 1 MiB"),
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
        .extra("    commands: ['systemctl **']\n");
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

    fn write_file(&mut self, write: &FileWrite<'_>) -> Result<(), RemoteError> {
        Err(RemoteError::Failed {
            target: self.name(),
            message: format!("no writes expected ({})", write.path),
        })
    }

    fn read_file(&mut self, _: &FileRead<'_>) -> Result<Option<Vec<u8>>, RemoteError> {
        Ok(None)
    }

    fn metadata(&mut self, _: &FileRead<'_>) -> Result<Option<FileMetadata>, RemoteError> {
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

// ---- the sandbox keeps its word (one spec-driven component, `attacks`) ----

/// A manifest declaring the `attacks` type with `declaration` (grants and
/// narrowing keys, indented four spaces), then `validators`.
fn attacks_manifest(declaration: &str, validators: &str) -> String {
    let wasm = component("kiln_hostile_attacks");
    format!(
        "validator_types:\n  attacks:\n    wasm: {}\n{declaration}    limits: {LIMITS}\nvalidators:\n{validators}  - package: {LATER}\n",
        wasm.display()
    )
}

/// Runs one attack (a flow-style spec map) and returns the summary.
fn attack(declaration: &str, spec: &str, remote: &ScriptedRemote, test_only: bool) -> RunSummary {
    support::run(
        &attacks_manifest(declaration, &format!("  - attacks: {spec}\n")),
        &[],
        remote,
        &[],
        test_only,
    )
}

/// The failure of the attacks node, printed for --nocapture.
fn attack_failure(summary: &RunSummary) -> String {
    match &summary.outcome {
        Err(RunError::Validation(error)) => {
            assert!(error.path.starts_with("validators[0].attacks"), "{error:?}");
            eprintln!("attacks: {}", error.message);
            error.message.clone()
        }
        other => panic!("the attack must fail the run: {other:?}"),
    }
}

/// Runs an attack kiln must refuse before anything reaches the target:
/// the run fails with `expected` in its message, and the target received
/// no call at all. Returns the message.
fn refused_before_the_target(
    declaration: &str,
    spec: &str,
    remote: &ScriptedRemote,
    test_only: bool,
    expected: &str,
) -> String {
    let message = attack_failure(&attack(declaration, spec, remote, test_only));
    assert!(message.contains(expected), "{spec}: {message}");
    assert!(remote.calls().is_empty(), "{spec}: {:?}", remote.calls());
    message
}

/// What the attack noted as changes when it passed.
fn attack_notes(summary: &RunSummary) -> Vec<String> {
    assert!(summary.passed(), "{:?}", summary.outcome);
    summary
        .records
        .iter()
        .find(|r| r.path == "validators[0].attacks")
        .map(|r| match &r.status {
            kiln::interpreter::Status::Changed(notes) => notes.clone(),
            _ => Vec::new(),
        })
        .unwrap_or_default()
}

const EXEC_TRUE: &str = "    grants: [exec]\n    commands: ['true']\n";

#[test]
fn env_option_name_cannot_turn_an_allowed_command_into_a_shell() {
    // `env --split-string='sh -c ...' true` would run the shell as root.
    refused_before_the_target(
        EXEC_TRUE,
        r#"{attack: command, command: 'true', env: {"--split-string": "sh -c 'touch /tmp/pwned' --"}}"#,
        &ScriptedRemote::new("debian"),
        false,
        "was denied the environment entry `--split-string`: a name must be letters, digits and `_`",
    );
}

#[test]
fn env_names_that_change_program_lookup_need_the_declaration() {
    for name in [
        "PATH",
        "LD_PRELOAD",
        "BASH_ENV",
        "ENV",
        "IFS",
        "LD_LIBRARY_PATH",
    ] {
        refused_before_the_target(
            EXEC_TRUE,
            &format!("{{attack: command, command: 'true', env: {{{name}: /tmp/evil}}}}"),
            &ScriptedRemote::new("debian"),
            false,
            &format!("was denied the environment entry `{name}`: it changes which program runs or what it loads; the declaration must allow it by name (`env: [{name}]`)"),
        );
    }
    // Allowed by name: it reaches the target, after `env --`.
    let remote = ScriptedRemote::new("debian");
    let summary = attack(
        "    grants: [exec]\n    commands: ['true']\n    env: [PATH]\n",
        "{attack: command, command: 'true', env: {PATH: /opt/app/bin}}",
        &remote,
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    let Call::Run(command) = &remote.calls()[0] else {
        panic!("{:?}", remote.calls())
    };
    assert_eq!(
        command.env,
        [("PATH".to_string(), "/opt/app/bin".to_string())]
    );
    assert!(command
        .to_shell_line()
        .starts_with("env -- PATH=/opt/app/bin /bin/sh -c"));
}

#[test]
fn patterns_grant_no_more_than_they_say() {
    let cases = [
        // `*` is one word: no extra arguments, no -exec.
        ("find *", "find / -exec perl -e 'system(\"id\")' {} +"),
        // `#` would comment out the tail the pattern checked.
        ("chmod * /srv/app", "chmod u+s /x # /srv/app"),
        ("chmod ** /srv/app", "chmod u+s /x # /srv/app"),
        // Globs, braces and tildes would expand to other paths.
        ("chmod 0644 *", "chmod 0644 /etc/*"),
        ("cat /srv/app/*", "cat /srv/app/{x,../../etc/shadow}"),
        ("chmod * /srv/app", "chmod 777 /etc/shadow /srv/app"),
    ];
    for (pattern, command) in cases {
        refused_before_the_target(
            &format!("    grants: [exec]\n    commands: ['{pattern}']\n"),
            &format!(
                "{{attack: command, command: \"{}\"}}",
                command.replace('"', "\\\"")
            ),
            &ScriptedRemote::new("debian"),
            false,
            "it is outside the type's allowed command patterns",
        );
    }
}

#[test]
fn programs_run_without_a_shell_and_match_their_words() {
    let remote = ScriptedRemote::new("debian");
    let summary = attack(
        "    grants: [exec]\n    commands: ['chmod * /srv/app']\n",
        "{attack: program, argv: [chmod, 'u+s;id', /srv/app]}",
        &remote,
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.commands()[0], "exec chmod 'u+s;id' /srv/app");
    refused_before_the_target(
        "    grants: [exec]\n    commands: ['chmod * /srv/app']\n",
        "{attack: program, argv: [chmod, 777, /etc/shadow, /srv/app]}",
        &ScriptedRemote::new("debian"),
        false,
        "outside the type's allowed command patterns",
    );
}

#[test]
fn test_only_is_enforced_on_nested_blocks() {
    // The type asks for reconcile inside a test-only run: its block runs
    // test-only (the package is only checked, never installed) and the
    // request fails the node.
    let remote =
        ScriptedRemote::new("debian").on("dpkg -s", [CommandOutput::failure(1, "not installed")]);
    let summary = attack(
        "    grants: [nested]\n",
        "{attack: escalate, block: [{package: nfs-common}]}",
        &remote,
        true,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("asked to run nested block 0 in reconcile mode inside a test-only run; it ran test-only"),
        "{message}"
    );
    assert_eq!(remote.commands(), ["dpkg -s nfs-common"]);
    let nested = summary
        .records
        .iter()
        .find(|r| r.path.contains("package"))
        .expect("the nested package ran");
    assert!(nested.test_only);

    // The same type in a reconciling run may reconcile.
    let remote = ScriptedRemote::new("debian").on(
        "dpkg -s",
        [
            CommandOutput::failure(1, "not installed"),
            CommandOutput::success(""),
        ],
    );
    let summary = attack(
        "    grants: [nested]\n",
        "{attack: escalate, block: [{package: nfs-common}]}",
        &remote,
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert!(
        remote.commands().iter().any(|c| c.contains("apt-get")),
        "{:?}",
        remote.commands()
    );
}

#[test]
fn test_only_writes_only_scratch_space() {
    let write = "    grants: [write-file]\n";
    let remote = ScriptedRemote::new("debian").with_file("/etc/motd", b"original");
    refused_before_the_target(
        write,
        "{attack: write, path: /etc/motd, contents: owned, mode: '644'}",
        &remote,
        true,
        "was denied writing `/etc/motd` in a test-only run: a test-only run writes only to scratch space (/tmp/)",
    );
    assert_eq!(remote.file("/etc/motd").unwrap(), b"original");

    // Scratch space is fine; a path that climbs out of it is not.
    let remote = ScriptedRemote::new("debian");
    let summary = attack(
        write,
        "{attack: write, path: /tmp/kiln-probe, contents: ok, mode: '600'}",
        &remote,
        true,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.file("/tmp/kiln-probe").unwrap(), b"ok");
    refused_before_the_target(
        write,
        "{attack: write, path: /tmp/../etc/motd, contents: x, mode: '644'}",
        &ScriptedRemote::new("debian"),
        true,
        "in a test-only run",
    );

    // A symlink in scratch space pointing elsewhere is refused by the target.
    let remote = ScriptedRemote::new("debian").with_symlink("/tmp/link", "/etc");
    let summary = attack(
        write,
        "{attack: write, path: /tmp/link/motd, contents: x, mode: '644'}",
        &remote,
        true,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("it is reached through a symlink (/tmp/link -> /etc)"),
        "{message}"
    );
    assert_eq!(remote.file("/tmp/link/motd"), None);
}

#[test]
fn path_patterns_narrow_reads_and_writes() {
    let declaration = "    grants: [read-file, write-file]\n    paths: {read: ['/srv/app/**'], write: ['/srv/app/*.conf']}\n";
    let ok = ScriptedRemote::new("debian");
    let summary = attack(
        declaration,
        "{attack: write, path: /srv/app/site.conf, contents: x, mode: '640'}",
        &ok,
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(ok.file("/srv/app/site.conf").unwrap(), b"x");

    for (spec, expected) in [
        ("{attack: write, path: /etc/sudoers.d/app, contents: x, mode: '440'}", "was denied writing `/etc/sudoers.d/app`: it is outside the type's allowed path patterns"),
        ("{attack: write, path: /srv/app/../../etc/cron.d/x.conf, contents: x, mode: '644'}", "a path must be absolute without `.`, `..` or empty parts"),
        ("{attack: write, path: /srv/app/sub/x.conf, contents: x, mode: '644'}", "outside the type's allowed path patterns"),
        ("{attack: read, path: /etc/shadow}", "was denied reading `/etc/shadow`: it is outside the type's allowed path patterns"),
        ("{attack: metadata, path: /root/.ssh/id_rsa}", "was denied inspecting `/root/.ssh/id_rsa`"),
    ] {
        let remote = ScriptedRemote::new("debian").with_file("/etc/shadow", b"root:secret");
        let message = refused_before_the_target(declaration, spec, &remote, false, expected);
        assert!(!message.contains("secret"), "{message}");
    }

    // Inside the patterns but through a symlink to elsewhere: refused.
    let remote = ScriptedRemote::new("debian")
        .with_symlink("/srv/app", "/etc")
        .with_file("/etc/shadow", b"root:secret");
    let summary = attack(
        declaration,
        "{attack: read, path: /srv/app/shadow}",
        &remote,
        false,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("reached through a symlink (/srv/app -> /etc)"),
        "{message}"
    );
    let summary = attack(
        declaration,
        "{attack: write, path: /srv/app/x.conf, contents: x, mode: '644'}",
        &remote,
        false,
    );
    assert!(attack_failure(&summary).contains("reached through a symlink"));
}

#[test]
fn write_file_with_keeps_owner_and_mode_and_metadata_reads_them() {
    let declaration = "    grants: [read-file, write-file]\n";
    let remote =
        ScriptedRemote::new("debian").with_file_owned("/srv/app/site.conf", b"old", 0o640, 33, 33);
    let summary = attack(
        declaration,
        "{attack: write, path: /srv/app/site.conf, contents: new}",
        &remote,
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(remote.file("/srv/app/site.conf").unwrap(), b"new");
    assert_eq!(
        remote.file_owner_and_mode("/srv/app/site.conf"),
        Some((0o640, 33, 33))
    );

    let summary = attack(
        declaration,
        "{attack: write, path: /srv/app/site.conf, contents: newer, uid: '0'}",
        &remote,
        false,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(
        remote.file_owner_and_mode("/srv/app/site.conf"),
        Some((0o640, 0, 33))
    );

    let summary = attack(
        declaration,
        "{attack: metadata, path: /srv/app/site.conf}",
        &remote,
        false,
    );
    assert_eq!(
        attack_notes(&summary),
        ["metadata FileKind::Regular size 5 mode 640 owner 0:33"]
    );
    let summary = attack(
        declaration,
        "{attack: metadata, path: /srv/app/none}",
        &remote,
        false,
    );
    assert_eq!(attack_notes(&summary), ["metadata: nothing there"]);
}

#[test]
fn a_file_larger_than_the_output_limit_is_not_handed_over() {
    let remote = ScriptedRemote::new("debian").with_file("/var/log/huge", &vec![b'x'; 2 << 20]);
    let summary = support::run(
        &attacks_manifest(
            "    grants: [read-file]\n",
            "  - attacks: {attack: read, path: /var/log/huge}\n",
        )
        .replace("log_kib: 64}", "log_kib: 64, output_mib: 1}"),
        &[],
        &remote,
        &[],
        false,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("was stopped: /var/log/huge passed its output limit of 1 MiB"),
        "{message}"
    );
    assert!(!remote.commands().iter().any(|c| c.contains(LATER)));
}

#[test]
fn argument_bytes_are_capped() {
    // 1000 values of 40 MiB once reached 3 GB; the first one passes the cap.
    let remote = ScriptedRemote::new("debian");
    let started = Instant::now();
    let summary = support::run(
        &attacks_manifest(
            "    grants: [set-argument]\n",
            "  - attacks: {attack: set_arguments, times: '1000', bytes: '41943040'}\n",
        )
        .replace(
            "memory_mib: 16, log_kib: 64}",
            "memory_mib: 128, log_kib: 64, argument_kib: 64}",
        ),
        &[],
        &remote,
        &[],
        false,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("was stopped: the arguments it set passed its limit of 64 KiB"),
        "{message}"
    );
    assert!(
        !summary.arguments.keys().any(|k| k.starts_with("flood_")),
        "{:?}",
        summary.arguments.keys()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_plan_cannot_multiply_the_tree() {
    // 250 bytes that would plan 64^3 nodes: refused at once.
    let inner = "{attack: plan_bomb, copies: '64', block: [{package: x}]}";
    let middle = format!("{{attack: plan_bomb, copies: '64', block: [{{attacks: {inner}}}]}}");
    let outer = format!("{{attack: plan_bomb, copies: '64', block: [{{attacks: {middle}}}]}}");
    let fixture = Fixture::new(
        &attacks_manifest("    grants: [nested]\n", &format!("  - attacks: {outer}\n")),
        &[],
    );
    let started = Instant::now();
    let message = fixture.load().expect_err("must not load").to_string();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        message.contains(
            "validator type `attacks` declared nested blocks `/block` and `/block`, which overlap"
        ),
        "{message}"
    );
    assert!(
        message.starts_with(&format!("{}:", fixture.path.display())),
        "{message}"
    );
}

#[test]
fn a_tree_past_the_node_cap_is_a_clear_load_error() {
    let count = kiln::manifest::MAX_TREE_NODES + 1;
    let mut yaml = String::from("validators:\n");
    for i in 0..count {
        yaml.push_str(&format!("  - package: p{i}\n"));
    }
    let fixture = Fixture::new(&yaml, &[]);
    let message = fixture.load().expect_err("must not load").to_string();
    assert!(
        message.contains(&format!(
            "the validator tree grows past {} nodes here",
            kiln::manifest::MAX_TREE_NODES
        )),
        "{message}"
    );
}

#[test]
fn re_running_a_nested_block_in_a_loop_is_stopped() {
    let remote = ScriptedRemote::new("debian");
    let started = Instant::now();
    let summary = attack(
        "    grants: [nested]\n",
        "{attack: nested_loop, block: [{package: x}]}",
        &remote,
        true,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("was stopped: it ran nested block 0 more than 4 times in one run"),
        "{message}"
    );
    assert_eq!(remote.commands().len(), 4, "{:?}", remote.commands());
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Keeps every log line a run emits.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<String>>>);

impl kiln::interpreter::Observer for Logs {
    fn event(&mut self, event: kiln::interpreter::Event<'_>) {
        if let kiln::interpreter::Event::Log { message, .. } = event {
            self.0.lock().unwrap().push(message.to_string());
        }
    }
}

#[test]
fn text_from_a_component_is_data_not_terminal_control() {
    let fixture = Fixture::new(
        &attacks_manifest("    grants: []\n", "  - attacks: {attack: escapes}\n"),
        &[],
    );
    let manifest = fixture.manifest();
    let node = &manifest.root.blocks[0];
    let kiln::manifest::Block::Single(node) = node else {
        panic!()
    };
    assert_eq!(
        node.summary,
        "\\e]0;owned\\u{7}\\e[2K\\r\\e[32mall passed\\e[0m"
    );
    let logs = Logs::default();
    let (summary, _) = kiln().run(
        &manifest,
        ScriptedRemote::new("debian"),
        &args(&[]),
        false,
        Box::new(logs.clone()),
    );
    let message = attack_failure(&summary);
    assert_eq!(
        message,
        "\\e[2K\\r\\e[32m✔ all validators passed\\e[0m\\nreally"
    );
    let logs = logs.0.lock().unwrap().clone();
    assert_eq!(logs, ["\\e[1A\\e[2K\\e[32mPASSED\\e[0m everything"]);
    let shown = format!("{:?}", summary.outcome) + &logs.concat();
    assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}'));
}

#[test]
fn re_runs_that_multiply_through_nesting_stop_at_the_run_cap() {
    // Each level runs its block 300 times, within its own limit; two levels
    // would run 90 300 validators. The run stops at kiln's cap instead.
    let remote = ScriptedRemote::new("debian");
    let inner = "{attacks: {attack: repeat, times: '300', block: [{package: x}]}}";
    let summary = support::run(
        &attacks_manifest(
            "    grants: [nested]\n",
            &format!("  - attacks: {{attack: repeat, times: '300', block: [{inner}]}}\n"),
        )
        .replace("log_kib: 64}", "log_kib: 64, nested_reruns: 300}"),
        &[],
        &remote,
        &[],
        true,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains(&format!(
            "the run has started {} validators and stops here",
            kiln::interpreter::MAX_NODE_RUNS
        )),
        "{message}"
    );
    assert!(summary.records.len() <= kiln::interpreter::MAX_NODE_RUNS);
    assert!(!remote.commands().iter().any(|c| c.contains(LATER)));
}

#[test]
fn a_component_path_naming_a_fifo_or_device_is_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("validator.wasm");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for wasm in [fifo.display().to_string(), "/dev/zero".to_string()] {
        let fixture = Fixture::new(
            &format!("validator_types:\n  odd:\n    wasm: {wasm}\n    grants: []\nvalidators:\n  - odd: ~\n"),
            &[],
        );
        let started = Instant::now();
        let message = fixture.load().expect_err("must not load").to_string();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(message.contains("it is not a regular file"), "{message}");
    }
}

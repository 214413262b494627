//! One hostile component per misbehaviour: loops, memory and stack
//! bombs, panics and floods stopped at their limits; the host's files,
//! network and environment out of reach; calls without grants refused;
//! a component that lies about its spec; a guest blocked inside a host
//! call; and the host still working after all of them.

use super::*;

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

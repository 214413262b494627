//! The one long-lived session per host (`runtime/src/remote/ssh/session.rs`)
//! against a real sshd: one loop on the host serves every call, and a
//! flood, a timeout or a killed session leave the next call working.

use super::*;

/// The pids of the session loops running inside host `index`'s root (the
/// hosts are chroots, so this tells them apart from other tests' hosts).
fn loops_on(fleet: &Fleet, index: usize) -> Vec<u32> {
    let root = fleet.host(index).root().to_path_buf();
    processes_mentioning("kiln-loop")
        .into_iter()
        .filter(|(pid, cmdline)| {
            cmdline.starts_with("/bin/sh -c ")
                && std::fs::read_link(format!("/proc/{pid}/root"))
                    .ok()
                    .as_ref()
                    == Some(&root)
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// The one loop on host `index`, waiting a moment for a new one to start.
fn the_loop_on(fleet: &Fleet, index: usize) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let loops = loops_on(fleet, index);
        if loops.len() == 1 {
            return loops[0];
        }
        assert!(
            Instant::now() < deadline,
            "expected one session loop on the host, found {loops:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn many_calls_share_one_session_on_the_host() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let session = the_loop_on(&fleet, 0);
    for n in 0..30 {
        assert_eq!(run(&mut target, &format!("echo {n}")).1, format!("{n}\n"));
        target
            .write_file(&FileWrite::new("/root/f", format!("{n}").as_bytes(), 0o600))
            .unwrap();
        let read = target.read_file(&FileRead::new("/root/f")).unwrap();
        assert_eq!(read, Some(format!("{n}").into_bytes()));
        // The same process answered: no session, and no login, per call.
        assert_eq!(loops_on(&fleet, 0), vec![session]);
    }
    // The commands run under the loop, not beside it.
    let parent = run(&mut target, "cut -d' ' -f4 /proc/$PPID/stat").1;
    let ancestors = run(
        &mut target,
        "p=$$; while [ \"$p\" -gt 1 ]; do p=$(cut -d' ' -f4 /proc/$p/stat); echo $p; done",
    )
    .1;
    assert!(!parent.is_empty());
    assert!(
        ancestors.lines().any(|pid| pid == session.to_string()),
        "{session} is not among {ancestors}"
    );
    assert_eq!(fleet.host(0).accepted_logins(), 1);
    drop(target);
    // Closing the target ends the loop, which removes its directory.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !loops_on(&fleet, 0).is_empty() {
        assert!(Instant::now() < deadline, "the loop outlived its target");
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<_> = std::fs::read_dir(fleet.host(0).root().join("tmp"))
        .unwrap()
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("kiln-loop.")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The host spawns as little as it can per call: a plain command's shell
/// is the loop's own child (the loop's subshell `exec`s it: no `sh -c`,
/// `env` or wrapper between them), also with env values; a bounded one
/// sits under the two `head`s' subshell; the loop's directory holds no
/// stored stdin once a call is done.
#[test]
fn a_command_is_one_process_under_the_loop() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let session = the_loop_on(&fleet, 0).to_string();
    assert_eq!(run(&mut target, "echo $PPID").1.trim(), session);
    let mut with_env = RemoteCommand::new("echo $PPID $greeting");
    with_env.env.push(("greeting".into(), "it's $(id)".into()));
    let output = target.run(&with_env).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{session} it's $(id)\n")
    );
    let mut bounded = RemoteCommand::new("cut -d' ' -f4 /proc/$PPID/stat");
    bounded.output_limit = Some(1000);
    let output = target.run(&bounded).unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), session);
    target
        .write_file(&FileWrite::new("/root/f", b"contents", 0o600))
        .unwrap();
    let stored = run(&mut target, "ls -l /tmp/kiln-loop.*/i | cut -d' ' -f5").1;
    assert_eq!(stored.trim(), "0");
}

#[test]
fn an_upload_and_its_run_are_one_call_and_a_refused_upload_runs_nothing() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let path = "/tmp/kiln-script-00000000000000aa";
    let script = format!("/bin/sh {path}; status=$?; rm -f {path}; exit $status");
    let output = target
        .write_and_run(
            &FileWrite::new(path, b"echo ran as $(id -u); exit 4\n", 0o755),
            &RemoteCommand::new(script.as_str()),
        )
        .unwrap();
    assert_eq!(
        (output.exit_code, output.stdout),
        (4, b"ran as 0\n".to_vec())
    );
    assert!(!fleet.host(0).root().join(&path[1..]).exists());
    // A write the host refuses is the call's error, and nothing runs.
    std::os::unix::fs::symlink("/etc", fleet.host(0).root().join("root/link")).unwrap();
    let write = FileWrite {
        exact_path: true,
        ..FileWrite::new("/root/link/kiln-x", b"x", 0o644)
    };
    let error = target
        .write_and_run(&write, &RemoteCommand::new("touch /root/must-not-exist"))
        .unwrap_err();
    assert!(matches!(error, RemoteError::Symlink { .. }), "{error}");
    assert!(!fleet.host(0).root().join("root/must-not-exist").exists());
    assert!(!fleet.host(0).root().join("etc/kiln-x").exists());
}

#[test]
fn a_flood_and_a_timeout_leave_the_session_serving() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let session = the_loop_on(&fleet, 0);
    let mut flood = RemoteCommand::new("yes");
    flood.output_limit = Some(100_000);
    flood.timeout = Some(Duration::from_secs(30));
    let error = target.run(&flood).unwrap_err();
    assert!(matches!(error, RemoteError::TooLarge { .. }), "{error}");
    assert_eq!(
        run(&mut target, "echo after the flood").1,
        "after the flood\n"
    );
    assert_eq!(
        loops_on(&fleet, 0),
        vec![session],
        "the flood cost the session"
    );

    let mut slow = RemoteCommand::new("sleep 31338");
    slow.timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let error = target.run(&slow).unwrap_err();
    assert!(matches!(error, RemoteError::Timeout { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        run(&mut target, "echo after the timeout").1,
        "after the timeout\n"
    );
    assert!(processes_mentioning("sleep 31338").is_empty());
}

#[test]
fn a_session_killed_mid_command_fails_that_command_and_the_next_gets_a_new_one() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let session = the_loop_on(&fleet, 0);
    let in_flight = std::thread::spawn(move || {
        let started = Instant::now();
        // The host's `timeout` reaps the sleep once its session is gone.
        let mut sleep = RemoteCommand::new("sleep 31339");
        sleep.timeout = Some(Duration::from_secs(20));
        let result = target.run(&sleep);
        (result, started.elapsed(), target)
    });
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) of the loop this test's target started.
    unsafe { libc::kill(session as i32, libc::SIGKILL) };
    let (result, elapsed, mut target) = in_flight.join().unwrap();
    let error = result.unwrap_err();
    eprintln!("{error} after {elapsed:?}");
    assert!(
        error
            .to_string()
            .contains(&fleet.host(0).address.to_string()),
        "{error}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(run(&mut target, "echo again").1, "again\n");
    let replacement = the_loop_on(&fleet, 0);
    assert_ne!(replacement, session);
    // Still one login: the connection survived, only the session was new.
    assert_eq!(fleet.host(0).accepted_logins(), 1);
}

#[test]
fn a_script_validator_is_one_call_over_ssh_and_two_elsewhere() {
    let yaml = "validators:\n  - script:\n      first:\n        inline: echo one > /root/kiln-first\n  - script:\n      second:\n        inline: cat /root/kiln-first\n        output: seen\n";
    let fixture = support::Fixture::new(yaml, &[]);
    let fleet = Fleet::start(1);
    let (summary, _target) = support::kiln().run(
        &fixture.manifest(),
        connect(&fleet, 0),
        &support::args(&[]),
        false,
        Box::new(Quiet),
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(
        summary.arguments.get("seen").map(String::as_str),
        Some("one")
    );
    // Each script's upload travelled with its run.
    assert_eq!(summary.commands, 2, "calls that reached the host");
    // A target that cannot join them gets the upload as a call of its own.
    let (summary, _remote) = support::kiln().run(
        &fixture.manifest(),
        kiln::remote::scripted::ScriptedRemote::new("debian"),
        &support::args(&[]),
        false,
        Box::new(Quiet),
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(
        summary.commands, 4,
        "calls that reached the scripted remote"
    );
}

//! The SSH target keeps the sandbox's bounds on a real host: output and
//! file reads stop at their limits on both ends, exact-path calls refuse
//! symlinks, writes keep or set owner and mode, and file calls end at their
//! timeouts; a hostile component's floods stop at the same limits.

use super::*;

const MIB: usize = 1 << 20;

/// A read with the limits the component host passes.
fn bounded_read(path: &str, max_bytes: usize, timeout: Duration) -> FileRead<'_> {
    FileRead {
        path,
        max_bytes: Some(max_bytes),
        exact_path: false,
        timeout: Some(timeout),
    }
}

/// A write that keeps whatever it is not told (`mode`/`uid`/`gid` `None`).
fn keeping_write<'a>(path: &'a str, contents: &'a [u8]) -> FileWrite<'a> {
    FileWrite {
        path,
        contents,
        mode: None,
        uid: None,
        gid: None,
        exact_path: false,
        timeout: None,
    }
}

/// How many processes on the host run exactly `yes MARKER`, asked through
/// another command: the chroot's /proc is the host's.
fn remote_yes_count(target: &mut SshRemote, marker: &str) -> usize {
    let script = format!(
        r#"n=0
for f in /proc/[0-9]*/cmdline; do
  [ "$(tr '\0' ' ' < "$f" 2>/dev/null)" = "yes {marker} " ] && n=$((n + 1))
done
echo $n"#
    );
    run(target, &script).1.trim().parse().unwrap()
}

/// Waits (up to a generous 10 s) for no `yes MARKER` to be left on the host.
fn assert_no_yes_left(target: &mut SshRemote, marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = remote_yes_count(target, marker);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} `yes {marker}` still running on the host"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(processes_mentioning(&format!("yes {marker}")).is_empty());
}

#[test]
fn an_output_flood_is_stopped_at_the_limit_here_and_on_the_host() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let marker = format!("kiln-flood-{}", std::process::id());
    let mut flood = RemoteCommand::new(format!("yes {marker}"));
    flood.output_limit = Some(MIB);
    flood.timeout = Some(Duration::from_secs(30));
    let started = Instant::now();
    let error = target.run(&flood).unwrap_err();
    let elapsed = started.elapsed();
    eprintln!("{error} after {elapsed:?}");
    assert!(
        matches!(&error, RemoteError::TooLarge { what, limit, .. }
            if what == "the command's output" && *limit == MIB),
        "{error}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_no_yes_left(&mut target, &marker);

    // stderr floods count too, and both streams share one count.
    for script in [
        format!("yes {marker} >&2"),
        "head -c 600000 /dev/zero; head -c 600000 /dev/zero >&2".to_string(),
    ] {
        let mut command = RemoteCommand::new(script.as_str());
        command.output_limit = Some(MIB);
        command.timeout = Some(Duration::from_secs(30));
        let error = target.run(&command).unwrap_err();
        assert!(
            matches!(error, RemoteError::TooLarge { .. }),
            "{script}: {error}"
        );
    }
    assert_no_yes_left(&mut target, &marker);

    // Under the limit everything comes back, exit status included.
    let mut command =
        RemoteCommand::new("head -c 500000 /dev/zero; head -c 500000 /dev/zero >&2; exit 3");
    command.output_limit = Some(MIB);
    let output = target.run(&command).unwrap();
    assert_eq!(
        (output.exit_code, output.stdout.len(), output.stderr.len()),
        (3, 500_000, 500_000)
    );
    assert_eq!(run(&mut target, "echo still here").1, "still here\n");
}

#[test]
fn devices_fifos_and_directories_are_refused_at_once() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    run(
        &mut target,
        "mkfifo /tmp/kiln-fifo && ln -s /dev/zero /tmp/zero-link",
    );
    for (path, kind) in [
        ("/dev/zero", "a character device"),
        ("/tmp/kiln-fifo", "a FIFO"),
        ("/tmp/zero-link", "a character device"),
        ("/etc", "a directory"),
    ] {
        let started = Instant::now();
        // On the old code /dev/zero streamed until this timeout, the FIFO
        // blocked until it.
        let result = target.read_file(&bounded_read(path, MIB, Duration::from_secs(3)));
        let elapsed = started.elapsed();
        let error = result.expect_err(path);
        eprintln!("{error} ({elapsed:?})");
        assert!(matches!(error, RemoteError::Failed { .. }), "{error}");
        assert!(
            error.to_string().contains(&format!(
                "cannot read {path}: it is {kind}, not a regular file"
            )),
            "{error}"
        );
        assert!(elapsed < Duration::from_secs(10), "{path} took {elapsed:?}");
    }
}

#[test]
fn a_file_past_max_bytes_is_too_large_and_never_fully_read() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    run(&mut target, "head -c 3145728 /dev/urandom > /root/big");
    let error = target
        .read_file(&bounded_read("/root/big", MIB, Duration::from_secs(30)))
        .unwrap_err();
    assert!(
        matches!(&error, RemoteError::TooLarge { what, limit, .. }
            if what == "/root/big" && *limit == MIB),
        "{error}"
    );
    // The boundary is exact: a limit of the file's size reads it whole.
    let whole = target
        .read_file(&bounded_read("/root/big", 3 * MIB, Duration::from_secs(30)))
        .unwrap()
        .unwrap();
    assert_eq!(
        whole,
        std::fs::read(fleet.host(0).root().join("root/big")).unwrap()
    );
    assert!(matches!(
        target.read_file(&bounded_read(
            "/root/big",
            3 * MIB - 1,
            Duration::from_secs(30)
        )),
        Err(RemoteError::TooLarge { .. })
    ));
    assert_eq!(
        target
            .read_file(&bounded_read("/root/none", MIB, Duration::from_secs(30)))
            .unwrap(),
        None
    );
}

/// Checks that an exact-path call was refused naming `path` and the link.
fn refusal<T>(result: Result<T, RemoteError>, path: &str, detail: &str) {
    match result {
        Err(RemoteError::Symlink {
            path: refused,
            detail: said,
            ..
        }) => assert_eq!((refused.as_str(), said.as_str()), (path, detail)),
        Err(other) => panic!("{path}: expected a symlink refusal, got {other}"),
        Ok(_) => panic!("{path}: expected a symlink refusal"),
    }
}

#[test]
fn exact_path_calls_refuse_symlinks_on_the_way() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    run(
        &mut target,
        "mkdir -p /srv && ln -s /etc /srv/app && ln -s /etc/hostname /etc/kiln-link \
         && ln -s /etc /tmp/dirlink",
    );
    let root = fleet.host(0).root().to_path_buf();
    let exact = |path| FileRead {
        exact_path: true,
        ..FileRead::new(path)
    };
    // Reads: any component, the file itself included.
    refusal(
        target.read_file(&exact("/srv/app/hostname")),
        "/srv/app/hostname",
        "/srv/app -> /etc",
    );
    refusal(
        target.read_file(&exact("/etc/kiln-link")),
        "/etc/kiln-link",
        "/etc/kiln-link -> /etc/hostname",
    );
    // Without exact_path the links are followed, as before.
    assert!(target
        .read_file(&FileRead::new("/srv/app/hostname"))
        .unwrap()
        .is_some());

    // Writes: a parent directory reached through a link is refused...
    let write = FileWrite {
        exact_path: true,
        ..FileWrite::new("/srv/app/x.conf", b"x", 0o644)
    };
    refusal(
        target.write_file(&write),
        "/srv/app/x.conf",
        "/srv/app -> /etc",
    );
    assert!(!root.join("etc/x.conf").exists());
    // ...while a final component that is a link (here to a directory) is
    // replaced by the write, never followed.
    let write = FileWrite {
        exact_path: true,
        ..FileWrite::new("/tmp/dirlink", b"replaced", 0o644)
    };
    target.write_file(&write).unwrap();
    let link = std::fs::symlink_metadata(root.join("tmp/dirlink")).unwrap();
    assert!(link.file_type().is_file());
    assert_eq!(
        std::fs::read(root.join("tmp/dirlink")).unwrap(),
        b"replaced"
    );
    assert!(!root.join("etc/dirlink").exists());

    // Metadata: parents only; the link itself is reported, not followed.
    refusal(
        target.metadata(&exact("/srv/app/hostname")),
        "/srv/app/hostname",
        "/srv/app -> /etc",
    );
    let meta = target.metadata(&exact("/srv/app")).unwrap().unwrap();
    assert_eq!(meta.kind, FileKind::Symlink);
}

#[test]
fn writes_keep_or_set_owner_and_mode() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let owner_and_mode =
        |target: &mut SshRemote| run(target, "stat -c '%a %u %g' /etc/kiln-owned").1;
    // A new file: 0644, root.
    target
        .write_file(&keeping_write("/etc/kiln-owned", b"one"))
        .unwrap();
    assert_eq!(owner_and_mode(&mut target), "644 0 0\n");
    run(
        &mut target,
        "chown 1000:1001 /etc/kiln-owned && chmod 640 /etc/kiln-owned",
    );
    // An existing file keeps its owner and mode.
    target
        .write_file(&keeping_write("/etc/kiln-owned", b"two"))
        .unwrap();
    assert_eq!(owner_and_mode(&mut target), "640 1000 1001\n");
    assert_eq!(
        std::fs::read(fleet.host(0).root().join("etc/kiln-owned")).unwrap(),
        b"two"
    );
    // What is given is set; what is not is kept.
    let write = FileWrite {
        mode: Some(0o600),
        uid: Some(0),
        ..keeping_write("/etc/kiln-owned", b"three")
    };
    target.write_file(&write).unwrap();
    assert_eq!(owner_and_mode(&mut target), "600 0 1001\n");
    // chown runs before chmod, so setuid survives a change of owner.
    let write = FileWrite {
        mode: Some(0o4755),
        uid: Some(1000),
        ..keeping_write("/etc/kiln-owned", b"four")
    };
    target.write_file(&write).unwrap();
    assert_eq!(owner_and_mode(&mut target), "4755 1000 1001\n");
}

#[test]
fn metadata_describes_the_path_itself() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    target
        .write_file(&FileWrite {
            uid: Some(33),
            gid: Some(34),
            ..FileWrite::new("/etc/kiln-meta", b"hello", 0o640)
        })
        .unwrap();
    run(
        &mut target,
        "ln -s /etc/kiln-meta /etc/kiln-meta-link && ln -s /nowhere /etc/kiln-dangling",
    );
    let meta = |target: &mut SshRemote, path: &str| {
        target
            .metadata(&FileRead::new(path))
            .unwrap_or_else(|error| panic!("{path}: {error}"))
    };
    assert_eq!(
        meta(&mut target, "/etc/kiln-meta"),
        Some(FileMetadata {
            kind: FileKind::Regular,
            size: 5,
            mode: 0o640,
            uid: 33,
            gid: 34
        })
    );
    let dir = meta(&mut target, "/etc").unwrap();
    assert_eq!(
        (dir.kind, dir.mode, dir.uid),
        (FileKind::Directory, 0o755, 0)
    );
    let link = meta(&mut target, "/etc/kiln-meta-link").unwrap();
    assert_eq!(
        (link.kind, link.size),
        (FileKind::Symlink, "/etc/kiln-meta".len() as u64)
    );
    assert_eq!(
        meta(&mut target, "/etc/kiln-dangling").map(|m| m.kind),
        Some(FileKind::Symlink)
    );
    assert_eq!(
        meta(&mut target, "/dev/null").map(|m| m.kind),
        Some(FileKind::Other)
    );
    assert_eq!(meta(&mut target, "/etc/no-such-file"), None);
    assert_eq!(meta(&mut target, "/no/such/dir/file"), None);
}

#[test]
fn file_calls_end_at_their_timeout() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    run(&mut target, "head -c 3145728 /dev/zero > /root/big");
    let tiny = Duration::from_millis(1);
    let started = Instant::now();
    let error = target
        .read_file(&bounded_read("/root/big", 8 * MIB, tiny))
        .unwrap_err();
    assert!(matches!(error, RemoteError::Timeout { .. }), "{error}");
    let contents = vec![b'x'; 3 * MIB];
    let error = target
        .write_file(&FileWrite {
            timeout: Some(tiny),
            ..FileWrite::new("/root/written", &contents, 0o644)
        })
        .unwrap_err();
    assert!(matches!(error, RemoteError::Timeout { .. }), "{error}");
    let error = target
        .metadata(&FileRead {
            timeout: Some(tiny),
            ..FileRead::new("/root/big")
        })
        .unwrap_err();
    assert!(matches!(error, RemoteError::Timeout { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // The connection survives, and a write given the time completes.
    target
        .write_file(&FileWrite {
            timeout: Some(Duration::from_secs(60)),
            ..FileWrite::new("/root/written", &contents, 0o644)
        })
        .unwrap();
    assert_eq!(
        std::fs::read(fleet.host(0).root().join("root/written"))
            .unwrap()
            .len(),
        3 * MIB
    );
}

// ---- end to end: a hostile component against a real host ----

/// The `attacks` test component declared with `grants` and a 1 MiB output
/// limit, then one attack.
fn attacks_manifest(grants: &str, spec: &str) -> String {
    format!(
        "validator_types:\n  attacks:\n    wasm: {}\n    grants: {grants}\n    limits: \
         {{milliseconds: 30000, memory_mib: 16, log_kib: 64, output_mib: 1}}\nvalidators:\n  - attacks: {spec}\n",
        support::component("kiln_hostile_attacks").display()
    )
}

/// Runs the manifest against `target`; returns the failure's message and the target.
fn hostile_run(target: SshRemote, yaml: &str) -> (String, SshRemote) {
    let fixture = support::Fixture::new(yaml, &[]);
    let manifest = fixture.manifest();
    let started = Instant::now();
    let (summary, target) = support::kiln().run(
        &manifest,
        target,
        &support::args(&[]),
        false,
        Box::new(Quiet),
    );
    let message = match summary.outcome {
        Err(RunError::Validation(error)) => error.message,
        other => panic!("the attack must fail the run: {other:?}"),
    };
    eprintln!("attacks: {message} ({:?})", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(!message.contains("internal error"), "{message}");
    (message, target)
}

#[test]
fn hostile_floods_through_the_component_host_stop_at_the_limit() {
    let fleet = Fleet::start(1);
    let target = connect(&fleet, 0);
    let (message, target) = hostile_run(
        target,
        &attacks_manifest("[read-file]", "{attack: read, path: /dev/zero}"),
    );
    assert!(
        message.contains("cannot read /dev/zero: it is a character device, not a regular file"),
        "{message}"
    );
    let marker = format!("kiln-hostile-{}", std::process::id());
    let (message, mut target) = hostile_run(
        target,
        &attacks_manifest(
            "[exec]",
            &format!("{{attack: command, command: 'yes {marker}'}}"),
        ),
    );
    assert!(
        message.contains("was stopped: the command's output passed its output limit of 1 MiB"),
        "{message}"
    );
    assert_no_yes_left(&mut target, &marker);
}

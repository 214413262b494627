//! The image target keeps the sandbox's bounds in a real guest: output
//! floods, file sizes and kinds, exact-path calls through symlinks, and a
//! hostile component's attacks, all in as few appliance launches as we can.

use super::*;

fn read_with(path: &str, max_bytes: Option<usize>, exact_path: bool) -> FileRead<'_> {
    FileRead {
        max_bytes,
        exact_path,
        ..FileRead::new(path)
    }
}

/// A write that keeps whatever mode and owner it is not given.
fn write_keeping<'a>(path: &'a str, contents: &'a [u8], exact_path: bool) -> FileWrite<'a> {
    FileWrite {
        mode: None,
        uid: None,
        gid: None,
        exact_path,
        ..FileWrite::new(path, contents, 0)
    }
}

fn expect_symlink<T: std::fmt::Debug>(result: Result<T, RemoteError>, want_detail: &str) {
    match result {
        Err(RemoteError::Symlink { detail, path, .. }) => {
            eprintln!("refused {path}: {detail}");
            assert_eq!(detail, want_detail)
        }
        other => panic!("expected a symlink refusal ({want_detail}), got {other:?}"),
    }
}

fn expect_not_read(result: Result<Option<Vec<u8>>, RemoteError>, kind: &str) {
    match result {
        Err(RemoteError::Failed { message, target }) => {
            eprintln!("{target}: {message}");
            assert!(message.contains(kind), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
        other => panic!("expected a refusal naming {kind}, got {other:?}"),
    }
}

/// Runs a manifest of one `attacks` validator (the hostile suite's
/// spec-driven component) against `session` and hands the session back.
fn attack(
    session: ImageRemote,
    declaration: &str,
    spec: &str,
    test_only: bool,
) -> (RunSummary, ImageRemote) {
    let yaml = format!(
        "validator_types:\n  attacks:\n    wasm: {}\n{declaration}    limits: {{milliseconds: 300000, memory_mib: 16, log_kib: 64, output_mib: 1}}\nvalidators:\n  - attacks: {spec}\n",
        support::component("kiln_hostile_attacks").display()
    );
    let fixture = support::Fixture::new(&yaml, &[]);
    let started = Instant::now();
    let ran = support::kiln().run(
        &fixture.manifest(),
        session,
        &support::args(&[]),
        test_only,
        Box::new(Quiet),
    );
    eprintln!("attack {spec} took {:?}", started.elapsed());
    ran
}

fn attack_failure(summary: &RunSummary) -> String {
    match &summary.outcome {
        Err(RunError::Validation(error)) => error.message.clone(),
        other => panic!("the attack must fail the run: {other:?}"),
    }
}

/// Every bound the sandbox asks of a target, on the real image, in one
/// test-only session (libguestfs adds the drive read-only and keeps the
/// session's writes in a throwaway overlay, so scratch writes work and the
/// image stays as it was).
#[test]
fn the_image_target_keeps_the_sandbox_bounds() {
    const MIB: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let image = copy_of_demo(dir.path());
    let before = sha256(&image);
    let mut session = open(&options(&image, true));

    assert_eq!(
        run(
            &mut session,
            "set -e; mkdir -p /srv/real; ln -s /etc /srv/app; ln -s /srv/real /srv/link; \
             head -c 3145728 /dev/zero > /srv/real/big; mkfifo /srv/real/fifo; \
             printf old > /srv/real/owned; chown 1234:2345 /srv/real/owned; chmod 4751 /srv/real/owned; \
             ln -s owned /srv/real/alias; touch /tmp/kiln-mark"
        ),
        (0, String::new(), String::new())
    );

    // A flood of output stops at the limit, promptly, and ends the command.
    let started = Instant::now();
    match session.run(&flood(MIB)) {
        Err(RemoteError::TooLarge { what, limit, .. }) => {
            assert_eq!((what.as_str(), limit), ("the command's output", MIB))
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let flood_took = started.elapsed();
    eprintln!("flood stopped after {flood_took:?}");
    assert!(flood_took < Duration::from_secs(120), "{flood_took:?}");
    assert_eq!(
        run(
            &mut session,
            "find /tmp -size +64k | wc -l; for f in /proc/[0-9]*/comm; do cat $f; done 2>/dev/null | grep -cx yes"
        ),
        (1, "0\n0\n".into(), String::new()),
        "no large capture in the guest's /tmp, no `yes` left running"
    );
    // Exactly the limit is fine, byte for byte.
    let at_limit = RemoteCommand {
        output_limit: Some(MIB),
        ..RemoteCommand::new("head -c 1048576 /dev/urandom | tee /tmp/kiln-random")
    };
    let output = session.run(&at_limit).unwrap();
    assert_eq!(output.stdout.len(), MIB);
    assert_eq!(
        session
            .read_file(&read_with("/tmp/kiln-random", Some(MIB), true))
            .unwrap(),
        Some(output.stdout)
    );
    // A background child does not hold the reply.
    let started = Instant::now();
    let background = RemoteCommand {
        output_limit: Some(MIB),
        timeout: Some(Duration::from_secs(300)),
        ..RemoteCommand::new("sleep 200 & echo started")
    };
    assert_eq!(session.run(&background).unwrap().stdout, b"started\n");
    assert!(started.elapsed() < Duration::from_secs(120));

    // Only regular files are read, and never a byte past the limit.
    let started = Instant::now();
    expect_not_read(
        session.read_file(&read_with("/dev/zero", Some(MIB), false)),
        "/dev/zero is a character device",
    );
    expect_not_read(
        session.read_file(&read_with("/srv/real/fifo", Some(MIB), false)),
        "/srv/real/fifo is a FIFO",
    );
    expect_not_read(
        session.read_file(&read_with("/etc", Some(MIB), false)),
        "/etc is a directory",
    );
    assert!(started.elapsed() < Duration::from_secs(120));
    match session.read_file(&read_with("/srv/real/big", Some(MIB), false)) {
        Err(RemoteError::TooLarge { what, limit, .. }) => {
            assert_eq!((what.as_str(), limit), ("/srv/real/big", MIB))
        }
        other => panic!(
            "expected TooLarge, got {:?}",
            other.map(|b| b.map(|b| b.len()))
        ),
    }
    let big = session
        .read_file(&read_with("/srv/real/big", Some(4 * MIB), false))
        .unwrap()
        .unwrap();
    assert_eq!(big.len(), 3 * MIB);
    assert_eq!(
        session
            .read_file(&read_with("/srv/link/owned", Some(MIB), false))
            .unwrap()
            .as_deref(),
        Some(&b"old"[..]),
        "without exact_path a read follows links"
    );
    assert_eq!(
        session
            .read_file(&read_with("/srv/nothing", Some(MIB), true))
            .unwrap(),
        None
    );

    // exact_path: no symlink on the way (for a read, the file included).
    expect_symlink(
        session.read_file(&read_with("/srv/app/passwd", Some(MIB), true)),
        "/srv/app -> /etc",
    );
    expect_symlink(
        session.read_file(&read_with("/srv/real/alias", Some(MIB), true)),
        "/srv/real/alias -> owned",
    );
    expect_symlink(
        session.write_file(&FileWrite {
            exact_path: true,
            ..FileWrite::new("/srv/app/kiln-escaped", b"x", 0o644)
        }),
        "/srv/app -> /etc",
    );
    expect_symlink(
        session.metadata(&read_with("/srv/link/owned", None, true)),
        "/srv/link -> /srv/real",
    );
    assert_eq!(
        session
            .metadata(&read_with("/etc/kiln-escaped", None, false))
            .unwrap(),
        None,
        "the refused write wrote nothing"
    );

    // metadata is lstat: kind, mode with the special bits, owner, size.
    let owned = FileMetadata {
        kind: FileKind::Regular,
        size: 3,
        mode: 0o4751,
        uid: 1234,
        gid: 2345,
    };
    let metadata = |session: &mut ImageRemote, path: &str| {
        session.metadata(&read_with(path, None, true)).unwrap()
    };
    assert_eq!(metadata(&mut session, "/srv/real/owned"), Some(owned));
    assert_eq!(
        metadata(&mut session, "/srv/real").map(|m| (m.kind, m.uid)),
        Some((FileKind::Directory, 0))
    );
    assert_eq!(
        metadata(&mut session, "/srv/app").map(|m| m.kind),
        Some(FileKind::Symlink)
    );
    assert_eq!(
        metadata(&mut session, "/srv/real/alias").map(|m| m.kind),
        Some(FileKind::Symlink),
        "the final component may be a link; it is reported, not followed"
    );
    assert_eq!(
        metadata(&mut session, "/dev/zero").map(|m| m.kind),
        Some(FileKind::Other)
    );
    assert_eq!(metadata(&mut session, "/srv/nothing"), None);
    assert_eq!(metadata(&mut session, "/no/such/dir/file"), None);

    // A write without mode or owner keeps the file's; a given one wins.
    session
        .write_file(&write_keeping("/srv/real/owned", b"new", true))
        .unwrap();
    assert_eq!(metadata(&mut session, "/srv/real/owned"), Some(owned));
    assert_eq!(
        run(
            &mut session,
            "stat -c '%a %u %g' /srv/real/owned; cat /srv/real/owned"
        )
        .1,
        "4751 1234 2345\nnew"
    );
    session
        .write_file(&FileWrite {
            mode: Some(0o600),
            ..write_keeping("/srv/real/owned", b"newer", true)
        })
        .unwrap();
    assert_eq!(
        metadata(&mut session, "/srv/real/owned"),
        Some(FileMetadata {
            mode: 0o600,
            size: 5,
            ..owned
        })
    );
    // A new file is 0644 and root's.
    session
        .write_file(&write_keeping("/srv/real/fresh", b"f", true))
        .unwrap();
    assert_eq!(
        metadata(&mut session, "/srv/real/fresh"),
        Some(FileMetadata {
            kind: FileKind::Regular,
            size: 1,
            mode: 0o644,
            uid: 0,
            gid: 0
        })
    );
    // A link as the final component is replaced, never followed.
    session
        .write_file(&write_keeping("/srv/real/alias", b"replaced", true))
        .unwrap();
    assert_eq!(
        metadata(&mut session, "/srv/real/alias").map(|m| (m.kind, m.size, m.mode)),
        Some((FileKind::Regular, 8, 0o644))
    );
    assert_eq!(
        run(&mut session, "cat /srv/real/owned").1,
        "newer",
        "the link's target is untouched"
    );

    // Through the component host: the hostile `attacks` validator's flood
    // is stopped at its output limit on the real image.
    let (summary, session) = attack(
        session,
        "    grants: [exec]\n",
        "{attack: command, command: 'yes'}",
        false,
    );
    let message = attack_failure(&summary);
    eprintln!("attacks: {message}");
    assert!(
        message.contains("stopped: the command's output passed its output limit of 1 MiB"),
        "{message}"
    );
    // A test-only run writes to scratch space in the guest, and a link out
    // of it is refused by the target.
    let (summary, mut session) = attack(
        session,
        "    grants: [write-file]\n",
        "{attack: write, path: /tmp/kiln-probe, contents: ok, mode: '600'}",
        true,
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(
        run(
            &mut session,
            "stat -c %a /tmp/kiln-probe; cat /tmp/kiln-probe"
        )
        .1,
        "600\nok"
    );
    run(&mut session, "ln -s /etc /tmp/link");
    let motd = session.read_file(&FileRead::new("/etc/motd")).unwrap();
    let (summary, mut session) = attack(
        session,
        "    grants: [write-file]\n",
        "{attack: write, path: /tmp/link/motd, contents: x, mode: '644'}",
        true,
    );
    let message = attack_failure(&summary);
    assert!(
        message.contains("it is reached through a symlink (/tmp/link -> /etc)"),
        "{message}"
    );
    assert_eq!(
        session.read_file(&FileRead::new("/etc/motd")).unwrap(),
        motd
    );

    // Scratch writes in a test-only session, and none of it reaches the image.
    session
        .write_file(&FileWrite::new("/tmp/kiln-scratch", b"scratch", 0o600))
        .unwrap();
    assert_eq!(
        session
            .read_file(&read_with("/tmp/kiln-scratch", Some(MIB), true))
            .unwrap()
            .as_deref(),
        Some(&b"scratch"[..])
    );
    assert!(!session.is_reconciling());
    assert_eq!(session.commit().unwrap().written, None);
    assert_eq!(
        sha256(&image),
        before,
        "the image is byte for byte unchanged"
    );
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

//! The disk-image target against real libguestfs and the demo Debian 12
//! image from `scripts/build-demo-image.sh` (each test works on its own copy).
//! Nothing here skips: without libguestfs, qemu-img or debootstrap the tests
//! fail. Every appliance launch costs 13–20 s under software emulation, so
//! each test groups many assertions into few sessions.
//!
//! `KILN_TEST_ACCEL=auto|kvm|tcg` picks the acceleration for all sessions
//! but the first one of `test_only_session_serves_remote_calls`, which
//! always uses `Auto` (default: tcg, since hardware acceleration is broken
//! on this project's CI hosts).

use crate::support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln::interpreter::{Event, Observer, Quiet, RunError, RunSummary};
use kiln::remote::image::{
    Accel, CommandChannel, ImageError, ImageOptions, ImageRemote, Inspector,
};
use kiln::remote::{
    FileKind, FileMetadata, FileRead, FileWrite, Remote, RemoteCommand, RemoteError,
};
use sha2::{Digest, Sha256};
use support::demo_image;

/// A private copy of the demo image in a fresh temp dir.
fn copy_of_demo(dir: &Path) -> PathBuf {
    let copy = dir.join("debian12.qcow2");
    fs::copy(demo_image(), &copy).expect("copying the demo image");
    copy
}

fn sha256(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!("{:x}", Sha256::digest(bytes))
}

fn test_accel() -> Accel {
    match std::env::var("KILN_TEST_ACCEL").as_deref() {
        Ok("auto") => Accel::Auto,
        Ok("kvm") => Accel::Kvm,
        _ => Accel::Tcg,
    }
}

fn options(image: &Path, test_only: bool) -> ImageOptions {
    ImageOptions {
        test_only,
        accel: test_accel(),
        ..ImageOptions::new(image)
    }
}

fn open(options: &ImageOptions) -> ImageRemote {
    let started = Instant::now();
    let mut notes = Vec::new();
    let session = ImageRemote::open(options, &mut |note| notes.push(note.to_string()))
        .unwrap_or_else(|error| panic!("open {}: {error}", options.image.display()));
    eprintln!(
        "open ({:?}) took {:?}; notes: {notes:?}",
        options.accel,
        started.elapsed()
    );
    session
}

fn open_error(options: &ImageOptions) -> ImageError {
    match ImageRemote::open(options, &mut |_| {}) {
        Ok(_) => panic!("{} opened", options.image.display()),
        Err(error) => error,
    }
}

fn run(session: &mut ImageRemote, script: &str) -> (i32, String, String) {
    let output = session
        .run(&RemoteCommand::new(script))
        .unwrap_or_else(|error| panic!("{script}: {error}"));
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.exit_code, text(&output.stdout), text(&output.stderr))
}

/// Files kiln left beside the image (overlays, staged commits).
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".kiln-"))
        .collect()
}

#[test]
fn test_only_session_serves_remote_calls() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_of_demo(dir.path());
    let before = sha256(&image);

    // Auto: hardware acceleration when it works, otherwise one line of
    // progress and software emulation.
    let started = Instant::now();
    let mut notes = Vec::new();
    let auto = ImageOptions {
        test_only: true,
        accel: Accel::Auto,
        ..ImageOptions::new(&image)
    };
    let mut session =
        ImageRemote::open(&auto, &mut |note| notes.push(note.to_string())).expect("open (auto)");
    eprintln!("open (auto) took {:?}; notes: {notes:?}", started.elapsed());
    assert!(notes.iter().all(|n| !n.contains('\n')), "{notes:?}");

    assert_eq!(session.distro().unwrap(), "debian");
    assert_eq!(session.inspector(), Inspector::Quick);
    assert_eq!(session.name(), "image debian12.qcow2");
    assert!(!session.is_reconciling());

    // Exit codes and the two streams come back separately.
    assert_eq!(
        run(&mut session, "echo out; echo err >&2; exit 3"),
        (3, "out\n".into(), "err\n".into())
    );
    assert_eq!(
        run(&mut session, "id -u; . /etc/os-release; echo $ID"),
        (0, "0\ndebian\n".into(), String::new())
    );
    // Commands see /dev, /proc and /sys as under libguestfs's `sh`, and none
    // of the appliance's variables.
    assert_eq!(
        run(
            &mut session,
            "test -r /proc/self/status && test -c /dev/null && test -d /sys/class && echo \"[$root][$sd][$HOME]\""
        ),
        (0, "[][][/root]\n".into(), String::new())
    );
    assert_eq!(
        session.command_channel(),
        Some(CommandChannel::SessionChroot)
    );

    // Environment values never pass through a shell.
    let hostile = r#"it's "quoted" $(touch /pwned) `touch /pwned2` $HOME; \ end"#;
    let mut command =
        RemoteCommand::new(r#"printf '%s' "$VALUE"; test ! -e /pwned && test ! -e /pwned2"#);
    command.env.push(("VALUE".into(), hostile.into()));
    let output = session.run(&command).unwrap();
    assert_eq!(
        (
            output.exit_code,
            String::from_utf8_lossy(&output.stdout).as_ref()
        ),
        (0, hostile)
    );

    // A timeout is an error of its own, not an exit code.
    let mut sleeper = RemoteCommand::new("sleep 60");
    sleeper.timeout = Some(Duration::from_secs(2));
    let started = Instant::now();
    match session.run(&sleeper) {
        Err(RemoteError::Timeout { seconds, .. }) => assert_eq!(seconds, 2.0),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    // Files round-trip byte for byte, with their mode.
    let contents = b"line one\n\0binary\xff tail".to_vec();
    session
        .write_file(&FileWrite::new("/etc/kiln-roundtrip", &contents, 0o640))
        .unwrap();
    assert_eq!(
        session
            .read_file(&FileRead::new("/etc/kiln-roundtrip"))
            .unwrap(),
        Some(contents)
    );
    assert_eq!(
        run(&mut session, "stat -c %a /etc/kiln-roundtrip").1,
        "640\n"
    );
    assert_eq!(
        session
            .read_file(&FileRead::new("/etc/no-such-file"))
            .unwrap(),
        None
    );
    assert!(session.read_file(&FileRead::new("/etc")).is_err());
    assert!(session
        .write_file(&FileWrite::new("relative/path", b"x", 0o644))
        .is_err());
    assert!(session
        .write_file(&FileWrite::new("/no/such/dir/file", b"x", 0o644))
        .is_err());

    // Large output survives (more than one libguestfs message).
    let (code, big, _) = run(&mut session, "head -c 6000000 /dev/zero | tr '\\0' a");
    assert_eq!((code, big.len()), (0, 6_000_000));

    // Writes in a test-only session never reach the image.
    assert_eq!(
        run(
            &mut session,
            "echo changed > /etc/kiln-test-only && cat /etc/kiln-test-only"
        )
        .1,
        "changed\n"
    );
    let summary = session.commit().unwrap();
    assert_eq!(summary.written, None);
    assert_eq!(sha256(&image), before);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn discard_and_output_leave_the_input_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_of_demo(dir.path());
    let before = sha256(&image);

    let mut session = open(&options(&image, false));
    assert!(session.is_reconciling());
    session
        .write_file(&FileWrite::new("/etc/kiln-discarded", b"gone", 0o644))
        .unwrap();
    assert_eq!(
        leftovers(dir.path()).len(),
        1,
        "the overlay sits beside the image"
    );
    session.discard();
    assert_eq!(sha256(&image), before);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());

    let output = dir.path().join("out.qcow2");
    let mut session = open(&ImageOptions {
        output: Some(output.clone()),
        ..options(&image, false)
    });
    // While commands run they see the appliance's resolver; the file calls
    // and the written image see the guest's own.
    let own_resolver = b"nameserver 192.0.2.53\n";
    session
        .write_file(&FileWrite::new("/etc/resolv.conf", own_resolver, 0o644))
        .unwrap();
    assert_eq!(run(&mut session, "echo kept > /etc/kiln-output").0, 0);
    let (_, lent, _) = run(&mut session, "cat /etc/resolv.conf");
    assert!(
        lent.contains("nameserver") && !lent.contains("192.0.2.53"),
        "{lent}"
    );
    assert_eq!(
        session
            .read_file(&FileRead::new("/etc/resolv.conf"))
            .unwrap()
            .as_deref(),
        Some(&own_resolver[..])
    );
    let summary = session.commit().unwrap();
    eprintln!("commit to output took {:?}", summary.elapsed);
    assert_eq!(summary.written.as_deref(), Some(output.as_path()));
    assert_eq!(summary.format, "qcow2");
    assert_eq!(sha256(&image), before);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());

    // libguestfs's own inspection finds the same system, and its `sh`
    // serves the same calls (kiln falls back to both where its quicker
    // ways do not apply).
    let mut check = open(&ImageOptions {
        command_channel: CommandChannel::DaemonSh,
        full_inspection: true,
        ..options(&output, true)
    });
    assert_eq!(check.inspector(), Inspector::Libguestfs);
    assert_eq!(check.distro().unwrap(), "debian");
    assert_eq!(
        check
            .read_file(&FileRead::new("/etc/kiln-output"))
            .unwrap()
            .as_deref(),
        Some(&b"kept\n"[..])
    );
    assert_eq!(
        check
            .read_file(&FileRead::new("/etc/kiln-discarded"))
            .unwrap(),
        None
    );
    assert_eq!(
        check
            .read_file(&FileRead::new("/etc/resolv.conf"))
            .unwrap()
            .as_deref(),
        Some(&own_resolver[..]),
        "the guest's resolver went back before the commit"
    );
    assert_eq!(
        run(&mut check, "cat /etc/kiln-output; echo err >&2; exit 3"),
        (3, "kept\n".into(), "err\n".into())
    );
    let (_, lent, _) = run(&mut check, "cat /etc/resolv.conf");
    assert!(!lent.contains("192.0.2.53"), "{lent}");
    assert_eq!(check.command_channel(), Some(CommandChannel::DaemonSh));
    // Under `sh` the capture sits in the guest's /tmp: a flood stops at the
    // limit there too, and leaves nothing behind.
    let started = Instant::now();
    match check.run(&flood(1 << 20)) {
        Err(RemoteError::TooLarge { what, limit, .. }) => {
            assert_eq!((what.as_str(), limit), ("the command's output", 1 << 20))
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    eprintln!("flood under sh stopped after {:?}", started.elapsed());
    assert_eq!(
        run(&mut check, "find /tmp -size +64k | wc -l; for f in /proc/[0-9]*/comm; do cat $f; done 2>/dev/null | grep -cx yes"),
        (1, "0\n0\n".into(), String::new()),
        "no capture left in the guest, no `yes` left running"
    );
    check.discard();
}

#[test]
fn commit_persists_package_installs_and_blocks_a_second_session() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_of_demo(dir.path());
    let before = sha256(&image);

    let mut session = open(&options(&image, false));

    // A second reconciling session is refused at once, before it touches anything.
    let refused = open_error(&options(&image, false));
    assert!(
        matches!(refused, ImageError::HeldByKiln { .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("another kiln session"),
        "{refused}"
    );

    // apt reaches the Debian mirror through the appliance's network and
    // resolver; the lists from debootstrap may be stale, so update on failure.
    let mut install = RemoteCommand::new(
        "apt-get -y install --no-install-recommends less || { apt-get update && apt-get -y install --no-install-recommends less; }",
    );
    install
        .env
        .push(("DEBIAN_FRONTEND".into(), "noninteractive".into()));
    install.timeout = Some(Duration::from_secs(900));
    let started = Instant::now();
    let output = session.run(&install).unwrap();
    eprintln!("apt-get install less took {:?}", started.elapsed());
    assert_eq!(
        output.exit_code,
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    session
        .write_file(&FileWrite::new("/etc/kiln-committed", b"yes\n", 0o600))
        .unwrap();
    let summary = session.commit().unwrap();
    eprintln!("commit in place took {:?}", summary.elapsed);
    assert_eq!(summary.written.as_deref(), Some(image.as_path()));
    assert_ne!(sha256(&image), before);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());

    let mut check = open(&options(&image, true));
    assert_eq!(
        check
            .read_file(&FileRead::new("/etc/kiln-committed"))
            .unwrap()
            .as_deref(),
        Some(&b"yes\n"[..])
    );
    assert_eq!(
        run(
            &mut check,
            "stat -c %a /etc/kiln-committed; less --version | head -1 | cut -d' ' -f1"
        )
        .1,
        "600\nless\n"
    );
    // The resolver libguestfs lent each command was taken back: the image
    // had no resolv.conf and still has none.
    assert_eq!(
        check.read_file(&FileRead::new("/etc/resolv.conf")).unwrap(),
        None
    );
    check.discard();
}

#[test]
fn bad_images_get_one_line_errors_and_stay_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let one_line = |error: ImageError| {
        let text = error.to_string();
        assert!(!text.contains('\n'), "{text}");
        eprintln!("{text}");
        text
    };

    let missing = dir.path().join("missing.qcow2");
    assert!(one_line(open_error(&options(&missing, true))).ends_with("missing.qcow2: no such file"));
    assert!(one_line(open_error(&options(dir.path(), false))).contains("is a directory"));

    let garbage = dir.path().join("garbage.img");
    fs::write(&garbage, b"this is not a disk image\n".repeat(100)).unwrap();
    assert!(one_line(open_error(&options(&garbage, false))).contains("damaged or not a disk image"));
    assert_eq!(
        fs::read(&garbage).unwrap(),
        b"this is not a disk image\n".repeat(100)
    );

    let truncated = dir.path().join("truncated.qcow2");
    let demo = fs::read(demo_image()).unwrap();
    fs::write(&truncated, &demo[..demo.len() / 4]).unwrap();
    let before = sha256(&truncated);
    let error = one_line(open_error(&options(&truncated, false)));
    assert!(
        error.contains("damaged or not a disk image") && error.contains("truncated"),
        "{error}"
    );
    assert_eq!(sha256(&truncated), before);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());

    // An image another process (here qemu-io) holds open for writing.
    let held = copy_of_demo(dir.path());
    let mut holder = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", "sleep 60000"])
        .arg(&held)
        .stdout(Stdio::null())
        .spawn()
        .expect("qemu-io");
    std::thread::sleep(Duration::from_secs(1));
    let error = one_line(open_error(&options(&held, true)));
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(
        error.contains("in use by another process") && error.contains("lock"),
        "{error}"
    );

    // A blank disk boots the appliance but holds no operating system.
    let blank = dir.path().join("blank.raw");
    fs::File::create(&blank).unwrap().set_len(64 << 20).unwrap();
    let error = one_line(open_error(&options(&blank, false)));
    assert!(error.starts_with("no operating system found in"), "{error}");
    assert_eq!(fs::metadata(&blank).unwrap().len(), 64 << 20);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

/// Set in the child process `sigterm_removes_the_overlay` starts.
const SIGNAL_CHILD: &str = "KILN_IMAGE_TEST_SIGNAL_CHILD";

/// A program holding a session that never looks at `kiln::interrupt`: the
/// first SIGTERM only asks (it kills the appliance, so the session's calls
/// fail, and the process goes on); the second ends the process at once,
/// removing the overlay, with 143.
#[test]
fn sigterm_removes_the_overlay() {
    if let Ok(image) = std::env::var(SIGNAL_CHILD) {
        // Child: hold a reconciling session with a change in it until killed.
        let mut session = open(&options(Path::new(&image), false));
        session
            .write_file(&FileWrite::new("/etc/kiln-interrupted", b"x", 0o644))
            .unwrap();
        // libtest may have printed "test NAME ... " without a newline.
        println!("\nKILN-READY");
        std::thread::sleep(Duration::from_secs(600));
        unreachable!("the parent sends SIGTERM twice");
    }
    let dir = tempfile::tempdir().unwrap();
    let image = copy_of_demo(dir.path());
    let before = sha256(&image);
    // The test's full name in the `it` binary: its module path without the
    // crate (`image_target::sigterm_removes_the_overlay`).
    let (_, module) = module_path!().split_once("::").unwrap();
    let this_test = format!("{module}::sigterm_removes_the_overlay");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &this_test, "--nocapture", "--test-threads=1"])
        .env(SIGNAL_CHILD, &image)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let ready = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line.trim() == "KILN-READY");
    assert!(ready, "the child never opened the image");
    assert_eq!(
        leftovers(dir.path()).len(),
        1,
        "the overlay exists while the session is open"
    );
    let qemu_of_test = || !qemu_pids_under(dir.path()).is_empty();
    assert!(qemu_of_test(), "the appliance runs");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    // The appliance is killed at once; 10 s only absorbs a loaded machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while qemu_of_test() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!qemu_of_test(), "the first SIGTERM kills the appliance");
    assert_eq!(
        child.try_wait().unwrap(),
        None,
        "the first SIGTERM only asks"
    );
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    assert_eq!(sha256(&image), before);
}

/// The qemu processes whose command line names a file under `dir` (a
/// reconciling session's overlay lives beside its image).
fn qemu_pids_under(dir: &Path) -> Vec<libc::pid_t> {
    let needle = dir.to_string_lossy().into_owned();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: libc::pid_t = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains("qemu") && cmdline.contains(&needle)).then_some(pid)
        })
        .collect()
}

/// Tells the test when a command starts, and keeps the name of every
/// validator that started one.
struct CommandWatch {
    started: std::sync::mpsc::Sender<()>,
    commands_of: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Observer for CommandWatch {
    fn event(&mut self, event: Event<'_>) {
        if let Event::CommandStarted { node, .. } = event {
            self.commands_of.lock().unwrap().push(node.path.clone());
            let _ = self.started.send(());
        }
    }
}

/// An appliance that dies mid-run (its qemu killed while a validator's
/// command runs) makes the target unreachable: the run stops at once and
/// says so, no later validator reaches the dead appliance, and the image
/// is as it was.
#[test]
fn a_dead_appliance_makes_the_run_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_of_demo(dir.path());
    let before = sha256(&image);
    let session = open(&options(&image, false));
    // `any` tries every child after a failure, so a failed (rather than
    // unreachable) sleep would send each later child to the dead appliance.
    let yaml = "validators:\n  - any:\n    - script:\n        long_step:\n          inline: |\n            echo changed > /etc/kiln-dead\n            sleep 600\n    - script:\n        second:\n          inline: echo changed > /etc/kiln-dead\n    - script:\n        third:\n          inline: 'true'\n    - package: nano\n";
    let fixture = support::Fixture::new(yaml, &[]);
    let (started, sleeping) = std::sync::mpsc::channel();
    let commands_of = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let watch = CommandWatch {
        started,
        commands_of: commands_of.clone(),
    };
    let killer_dir = dir.path().to_path_buf();
    let killer = std::thread::spawn(move || {
        // The run's first command is the long step's.
        sleeping.recv().expect("the long step starts");
        // Let the command reach the guest before its appliance goes.
        std::thread::sleep(Duration::from_secs(3));
        let pids = qemu_pids_under(&killer_dir);
        for &pid in &pids {
            // SAFETY: signalling the test's own appliance.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        pids.len()
    });
    let (summary, session) = support::kiln().run(
        &fixture.manifest(),
        session,
        &support::args(&[]),
        false,
        Box::new(watch),
    );
    assert_eq!(killer.join().unwrap(), 1, "one appliance was killed");
    match &summary.outcome {
        Err(RunError::Unreachable { validator, message }) => {
            eprintln!("unreachable during {validator}: {message}");
            assert!(!message.contains('\n'), "{message}");
        }
        other => panic!("the run must be reported unreachable: {other:?}"),
    }
    // The long step's upload and command reached the appliance; every later
    // call failed at once, before reaching it (a dead appliance that only
    // failed each call would have been sent every alternative, twice).
    assert_eq!(summary.commands, 2, "calls that reached the target");
    let commands_of = commands_of.lock().unwrap();
    assert!(commands_of[0].contains("any[0]"), "{commands_of:?}");
    session.discard();
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    assert_eq!(sha256(&image), before);
}

/// `yes` with an output limit (and a generous timeout it must not need).
fn flood(limit: usize) -> RemoteCommand {
    RemoteCommand {
        output_limit: Some(limit),
        timeout: Some(Duration::from_secs(300)),
        ..RemoteCommand::new("yes")
    }
}

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

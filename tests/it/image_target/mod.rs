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

mod appliance;
mod bounds;

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
    support::processes_mentioning(&dir.to_string_lossy())
        .into_iter()
        .filter(|(_, command)| command.contains("qemu"))
        .map(|(pid, _)| pid as libc::pid_t)
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

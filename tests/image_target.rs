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

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kiln::remote::{FileRead, FileWrite, Remote, RemoteCommand, RemoteError};
use kiln::target::image::{
    Accel, CommandChannel, ImageError, ImageOptions, ImageSession, Inspector,
};
use sha2::{Digest, Sha256};

fn demo_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-demo-image.sh");
        let output = Command::new(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("running build-demo-image.sh");
        assert!(output.status.success(), "build-demo-image.sh failed");
        PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
    })
}

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

fn open(options: &ImageOptions) -> ImageSession {
    let started = Instant::now();
    let mut notes = Vec::new();
    let session = ImageSession::open(options, &mut |note| notes.push(note.to_string()))
        .unwrap_or_else(|error| panic!("open {}: {error}", options.image.display()));
    eprintln!(
        "open ({:?}) took {:?}; notes: {notes:?}",
        options.accel,
        started.elapsed()
    );
    session
}

fn open_error(options: &ImageOptions) -> ImageError {
    match ImageSession::open(options, &mut |_| {}) {
        Ok(_) => panic!("{} opened", options.image.display()),
        Err(error) => error,
    }
}

fn run(session: &mut ImageSession, script: &str) -> (i32, String, String) {
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
        ImageSession::open(&auto, &mut |note| notes.push(note.to_string())).expect("open (auto)");
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
        unreachable!("the parent sends SIGTERM");
    }
    let dir = tempfile::tempdir().unwrap();
    let image = copy_of_demo(dir.path());
    let before = sha256(&image);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigterm_removes_the_overlay",
            "--nocapture",
            "--test-threads=1",
        ])
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
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    assert_eq!(sha256(&image), before);
}

//! `kiln pack` stopped from outside: SIGINT and SIGTERM at every phase and
//! `--timeout` leave the image byte-identical, with no qemu, overlay or
//! temporary file behind, and the exit codes the docs promise.

use super::*;

/// A `kiln pack` run in progress: its stdout and stderr lines arrive on
/// one channel, so a test can act at the step it waits for.
struct Interruptible {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: String,
}

impl Interruptible {
    /// `kiln pack -v --image IMAGE --accel ACCEL ARGS...` with its own
    /// process group (so the test can signal the group as a terminal's
    /// Ctrl-C does) and `TMPDIR` set to `tmp`, which must be empty after.
    fn start(image: &Path, tmp: &Path, pause_at: Option<&str>, args: &[&str]) -> Interruptible {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command
            .args(["pack", "-v", "--image", image.to_str().unwrap()])
            .args(["--accel", &accel()])
            .args(args)
            .current_dir(repo_root())
            .env("TMPDIR", tmp)
            // libguestfs keeps its appliance cache under TMPDIR by default;
            // keep using the shared one instead of building a new one.
            .env("LIBGUESTFS_CACHEDIR", "/var/tmp")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        match pause_at {
            Some(point) => command.env("KILN_TEST_PAUSE_AT", point),
            None => command.env_remove("KILN_TEST_PAUSE_AT"),
        };
        let mut child = command.spawn().expect("kiln starts");
        let (sender, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let stdout_sender = sender.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = stdout_sender.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Interruptible {
            child,
            lines,
            seen: String::new(),
        }
    }

    /// Waits (at most `limit`) for a line satisfying `wanted`, or for
    /// `ready` to hold, checked between lines.
    fn wait_until(&mut self, limit: std::time::Duration, mut ready: impl FnMut(&str) -> bool) {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            match self
                .lines
                .recv_timeout(std::time::Duration::from_millis(100))
            {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if ready(&line) {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if ready("") {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("kiln ended before the awaited step:\n{}", self.seen)
                }
            }
        }
        let _ = self.child.kill();
        panic!("the awaited step never came:\n{}", self.seen);
    }

    /// Sends `signal` to kiln alone, or to its whole process group.
    fn signal(&self, signal: i32, group: bool) {
        let pid = self.child.id() as i32;
        // SAFETY: sending a signal to a process (group) this test started.
        let sent = unsafe {
            if group {
                libc::killpg(pid, signal)
            } else {
                libc::kill(pid, signal)
            }
        };
        assert_eq!(sent, 0, "sending signal {signal}");
    }

    /// Waits for kiln to exit (three minutes at most, a sanity bound) and
    /// returns its exit code and everything it printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            match self
                .lines
                .recv_timeout(std::time::Duration::from_millis(200))
            {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if std::time::Instant::now() > deadline {
                        let _ = self.child.kill();
                        panic!("kiln did not stop after the signal:\n{}", self.seen);
                    }
                }
            }
        }
        let status = self.child.wait().unwrap();
        eprintln!("--- kiln exited with {status}:\n{}", self.seen);
        (status.code(), self.seen)
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// What every interrupted pack must leave: the exit status, the message,
/// the image byte for byte, no qemu, and no overlay, staged or temporary
/// file beside the image or in the temp directory.
fn assert_interrupted_cleanly(
    phase: &str,
    result: (Option<i32>, String),
    expected_code: i32,
    dir: &Path,
    tmp: &Path,
    image: &Path,
    clean: &str,
) {
    assert_stopped_cleanly(
        phase,
        result,
        (expected_code, "interrupted"),
        dir,
        tmp,
        image,
        clean,
    )
}

/// [`assert_interrupted_cleanly`] for any stop: `stop` is the exit status
/// and how kiln's message names the stop (`interrupted`, `timed out after 90s`).
fn assert_stopped_cleanly(
    phase: &str,
    (code, text): (Option<i32>, String),
    (expected_code, stop): (i32, &str),
    dir: &Path,
    tmp: &Path,
    image: &Path,
    clean: &str,
) {
    assert_eq!(code, Some(expected_code), "{phase}: exit status\n{text}");
    assert!(
        text.contains(&format!("kiln: {stop}; {} unchanged", image.display())),
        "{phase}: the message\n{text}"
    );
    for bad in [
        "double free",
        "panicked",
        "libguestfs: error",
        "call launch before",
    ] {
        assert!(!text.contains(bad), "{phase}: `{bad}` in\n{text}");
    }
    assert_eq!(sha256_file(image), clean, "{phase}: the image changed");
    // qemu is killed and reaped before kiln exits; the bound only absorbs
    // a loaded machine's scheduling.
    let needle = dir.to_string_lossy().into_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !support::processes_mentioning(&needle).is_empty() && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        support::processes_mentioning(&needle),
        Vec::<(u32, String)>::new(),
        "{phase}: a process still uses the test's files"
    );
    assert_eq!(
        names_in(dir),
        ["demo.qcow2", "manifest", "tmp"],
        "{phase}: files left beside the image"
    );
    assert_eq!(
        names_in(tmp),
        Vec::<String>::new(),
        "{phase}: files left in TMPDIR"
    );
}

/// A copy of the demo image with a temp dir for kiln's files, the image's
/// sha256 before anything ran, and a manifest whose one script writes
/// `marker` in the guest and then sleeps, so a stop always lands in it.
struct StopScene {
    dir: tempfile::TempDir,
    image: std::path::PathBuf,
    tmp: std::path::PathBuf,
    clean: String,
    manifest_dir: std::path::PathBuf,
    slow: std::path::PathBuf,
}

impl StopScene {
    fn new(marker: &str) -> StopScene {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("demo.qcow2");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        std::fs::copy(demo_image(), &image).unwrap();
        let clean = sha256_file(&image);
        let manifest_dir = dir.path().join("manifest");
        std::fs::create_dir(&manifest_dir).unwrap();
        let slow = manifest_dir.join("slow.yaml");
        std::fs::write(
            &slow,
            format!("validators:\n  - script:\n      long_step:\n        inline: |\n          echo changed > {marker}\n          sleep 600\n"),
        )
        .unwrap();
        StopScene {
            dir,
            image,
            tmp,
            clean,
            manifest_dir,
            slow,
        }
    }
}

/// SIGINT and SIGTERM at each phase of a pack: before the appliance
/// launches, while it boots, during a validator's command, and in the
/// middle of the commit (after the result is written to a staging file,
/// before the rename). Each leaves the image as it was, no process and no
/// file behind, and exits 130 (SIGINT) or 143 (SIGTERM). A signal just
/// after the rename reports the image written. The pauses come
/// from the test-only hook `KILN_TEST_PAUSE_AT`, which does nothing unless
/// set; the boot and the validator are caught from kiln's own output.
#[test]
fn interrupts_leave_the_image_unchanged_at_every_phase() {
    use std::time::Duration;
    let StopScene {
        dir,
        image,
        tmp,
        clean,
        manifest_dir,
        slow,
    } = StopScene::new("/etc/kiln-interrupted");
    let quick = manifest_dir.join("quick.yaml");
    std::fs::write(
        &quick,
        "validators:\n  - script:\n      quick_step:\n        inline: echo changed > /etc/kiln-interrupted\n",
    )
    .unwrap();
    let check = |phase: &str, result, code| {
        assert_interrupted_cleanly(phase, result, code, dir.path(), &tmp, &image, &clean)
    };

    // 1. Before launch: the overlay exists, no appliance yet. SIGINT to kiln alone.
    let mut run = Interruptible::start(&image, &tmp, Some("launch"), &["demo", "1.0"]);
    run.wait_until(Duration::from_secs(120), |line| {
        line.contains("test pause at launch")
    });
    assert!(
        names_in(dir.path())
            .iter()
            .any(|n| n.contains("kiln-overlay")),
        "the overlay exists before the launch"
    );
    run.signal(libc::SIGINT, false);
    check("before launch", run.finish(), 130);

    // 2. During the boot: SIGTERM as soon as the appliance's qemu runs.
    let mut run = Interruptible::start(&image, &tmp, None, &["demo", "1.0"]);
    let needle = dir.path().to_string_lossy().into_owned();
    run.wait_until(Duration::from_secs(300), |_| {
        support::processes_mentioning(&needle)
            .iter()
            .any(|(_, command)| command.contains("qemu"))
    });
    run.signal(libc::SIGTERM, false);
    let (code, text) = run.finish();
    assert!(
        !text.contains("image ready"),
        "the boot had finished:\n{text}"
    );
    check("during the boot", (code, text), 143);

    // 3. During a validator's command: Ctrl-C to the whole process group,
    //    as a terminal sends it, while the guest sleeps.
    let slow_path = slow.to_str().unwrap();
    let mut run = Interruptible::start(&image, &tmp, None, &["--manifest", slow_path]);
    run.wait_until(Duration::from_secs(300), |line| {
        line.contains("validators[0].script: apply run long_step")
    });
    std::thread::sleep(Duration::from_secs(2));
    run.signal(libc::SIGINT, true);
    let (code, text) = run.finish();
    assert!(
        text.contains("validators[0].script: FAILED: image demo.qcow2: interrupted"),
        "{text}"
    );
    assert!(!text.contains("committing"), "{text}");
    check("during a validator", (code, text), 130);

    // 4. During the commit: the changed image is in a staging file beside
    //    the original, not yet renamed over it.
    let quick_path = quick.to_str().unwrap();
    let mut run = Interruptible::start(&image, &tmp, Some("commit"), &["--manifest", quick_path]);
    run.wait_until(Duration::from_secs(300), |line| {
        line.contains("test pause at commit")
    });
    assert!(
        names_in(dir.path())
            .iter()
            .any(|n| n.contains("kiln-commit")),
        "the staging file exists during the commit: {:?}",
        names_in(dir.path())
    );
    run.signal(libc::SIGINT, false);
    let (code, text) = run.finish();
    assert!(text.contains("committing the changes"), "{text}");
    check("during the commit", (code, text), 130);

    // 5. Just after the commit's rename: the new image stands, and kiln
    //    says so instead of claiming it unchanged.
    let mut run =
        Interruptible::start(&image, &tmp, Some("committed"), &["--manifest", quick_path]);
    run.wait_until(Duration::from_secs(300), |line| {
        line.contains("test pause at committed")
    });
    run.signal(libc::SIGTERM, false);
    let (code, text) = run.finish();
    assert_eq!(code, Some(143), "{text}");
    assert!(
        text.contains(&format!(
            "kiln: interrupted after the commit; {} was written",
            image.display()
        )),
        "{text}"
    );
    assert_ne!(sha256_file(&image), clean, "the commit completed");
    assert_eq!(names_in(dir.path()), ["demo.qcow2", "manifest", "tmp"]);
    assert_eq!(names_in(&tmp), Vec::<String>::new());
}

/// `--timeout` passing while the guest runs a slow script stops the pack
/// as Ctrl-C does: nothing is committed, so the image keeps its bytes, and
/// no qemu, overlay or temporary file is left; kiln exits 124 and its
/// closing line says the run timed out. (Whether the deadline lands in the
/// boot or in the script, the outcome asserted is the same.)
#[test]
fn a_timed_out_pack_leaves_the_image_byte_identical() {
    use std::time::Duration;
    let StopScene {
        dir,
        image,
        tmp,
        clean,
        slow,
        ..
    } = StopScene::new("/etc/kiln-timed-out");
    let mut run = Interruptible::start(
        &image,
        &tmp,
        None,
        &["--timeout", "90s", "--manifest", slow.to_str().unwrap()],
    );
    run.wait_until(Duration::from_secs(300), |line| {
        line.contains("TIMED OUT after 90s")
    });
    let (code, text) = run.finish();
    assert!(!text.contains("committing"), "{text}");
    assert_stopped_cleanly(
        "timed out",
        (code, text),
        (124, "timed out after 90s"),
        dir.path(),
        &tmp,
        &image,
        &clean,
    );
}

/// Ctrl-C (SIGINT to the process group) while the second image of a batch
/// runs its script: the first image's run had passed, but a batch commits
/// only after its last image, so both images keep every byte; no qemu,
/// overlay or temporary file stays, and kiln exits 130 saying every image
/// is unchanged.
#[test]
fn an_interrupted_batch_leaves_every_image_unchanged() {
    use std::time::Duration;
    let StopScene {
        dir,
        image,
        tmp,
        clean,
        manifest_dir,
        ..
    } = StopScene::new("/etc/kiln-batch");
    let second = dir.path().join("second.qcow2");
    std::fs::copy(demo_image(), &second).unwrap();
    let second_clean = sha256_file(&second);
    let manifest = manifest_dir.join("batch.yaml");
    std::fs::write(
        &manifest,
        "validators:\n  - script:\n      step:\n        inline: |\n          echo changed > /etc/kiln-batch\n          sleep 20\n",
    )
    .unwrap();
    let mut run = Interruptible::start(
        &image,
        &tmp,
        None,
        &[
            "--image",
            second.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
    );
    let mut second_started = false;
    run.wait_until(Duration::from_secs(600), |line| {
        second_started |= line.contains("image 2/2: ");
        second_started && line.contains("validators[0].script: apply")
    });
    run.signal(libc::SIGINT, true);
    let (code, text) = run.finish();
    assert_eq!(code, Some(130), "{text}");
    assert!(
        text.contains("kiln: interrupted; every image unchanged ("),
        "{text}"
    );
    assert!(!text.contains("committing"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert_eq!(sha256_file(&image), clean, "the first image changed");
    assert_eq!(
        sha256_file(&second),
        second_clean,
        "the second image changed"
    );
    let needle = dir.path().to_string_lossy().into_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !support::processes_mentioning(&needle).is_empty() && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        support::processes_mentioning(&needle),
        Vec::<(u32, String)>::new()
    );
    assert_eq!(
        names_in(dir.path()),
        ["demo.qcow2", "manifest", "second.qcow2", "tmp"]
    );
    assert_eq!(names_in(&tmp), Vec::<String>::new());
}

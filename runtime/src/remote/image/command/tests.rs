//! Unit tests of the command channel: the scripts it sends, the replies it
//! parses, and the wrapper run locally under `sh` where a test needs it.

use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn capture_script_quotes_the_command_and_applies_the_timeout() {
    let mut command = RemoteCommand::new("echo \"$v\"");
    command.env.push(("v".into(), "$(touch /pwned)".into()));
    command.timeout = Some(Duration::from_millis(1500));
    let script = capture_script(&command, "/tmp/.kiln-run-1");
    assert!(script.contains("kiln_run='timeout -k 10 2'"), "{script}");
    assert!(
        script.contains(r#"$kiln_run env -- 'v=$(touch /pwned)' /bin/sh -c 'echo "$v"'"#),
        "{script}"
    );
    assert!(script.contains("echo \"kiln-run $kiln_status inline\""));
}

/// Runs the wrapper with the local /bin/sh, as guestfsd would in the
/// guest, and parses its reply.
fn run_wrapper_locally(script: &str) -> (Reply, bool) {
    run_command_locally(&RemoteCommand::new(script))
}

fn run_command_locally(command: &RemoteCommand) -> (Reply, bool) {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("capture");
    let capture = capture.to_str().unwrap();
    let wrapper = capture_script(command, capture);
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(&wrapper)
        .output()
        .unwrap();
    assert!(output.status.success(), "the wrapper always succeeds");
    let reply = String::from_utf8(output.stdout).expect("the reply is text");
    (parse_reply(&reply), Path::new(capture).exists())
}

#[test]
fn one_reply_carries_status_and_exact_streams() {
    let (reply, left) = run_wrapper_locally("printf 'a\\0b\\377'; printf 'no newline' >&2; exit 3");
    assert_eq!(
        reply,
        Reply::Inline(CommandOutput {
            exit_code: 3,
            stdout: b"a\0b\xff".to_vec(),
            stderr: b"no newline".to_vec(),
        })
    );
    assert!(!left, "the inline path removes the capture");
    let (reply, _) = run_wrapper_locally("true");
    assert_eq!(reply, Reply::Inline(CommandOutput::default()));
}

#[test]
fn large_output_is_left_in_files() {
    let (reply, left) = run_wrapper_locally("head -c 3000000 /dev/zero; exit 7");
    assert_eq!(reply, Reply::Files(7));
    assert!(left, "the files wait to be downloaded");
}

fn limited(script: &str, limit: usize) -> RemoteCommand {
    RemoteCommand {
        output_limit: Some(limit),
        timeout: Some(Duration::from_secs(60)),
        ..RemoteCommand::new(script)
    }
}

#[test]
fn output_up_to_the_limit_comes_back_exactly() {
    let (reply, left) = run_command_locally(&limited(
        "head -c 600 /dev/zero; head -c 400 /dev/zero >&2; exit 4",
        1000,
    ));
    assert_eq!(
        reply,
        Reply::Inline(CommandOutput {
            exit_code: 4,
            stdout: vec![0; 600],
            stderr: vec![0; 400],
        })
    );
    assert!(!left);
}

#[test]
fn output_past_the_limit_is_neither_sent_nor_kept() {
    // One byte over, split across the streams.
    let (reply, left) = run_command_locally(&limited(
        "head -c 600 /dev/zero; head -c 401 /dev/zero >&2",
        1000,
    ));
    assert_eq!(reply, Reply::TooLarge);
    assert!(!left, "the capture is removed");
    // A flood ends at the cap (by SIGPIPE), long before its timeout.
    let started = std::time::Instant::now();
    let (reply, left) = run_command_locally(&limited("yes", 1 << 20));
    assert_eq!(reply, Reply::TooLarge);
    assert!(!left);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_flood_that_ignores_sigpipe_is_killed_at_the_cap() {
    let started = std::time::Instant::now();
    let script = "trap '' PIPE; while :; do echo flood; done";
    let (reply, _) = run_command_locally(&limited(script, 4096));
    assert_eq!(reply, Reply::TooLarge);
    assert!(started.elapsed() < Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run_appliance_locally(&limited(script, 4096), dir.path()),
        Reply::TooLarge
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_background_child_holding_a_stream_does_not_hold_the_reply() {
    let started = std::time::Instant::now();
    let (reply, _) = run_command_locally(&limited("sleep 40 & echo done", 1000));
    assert_eq!(reply, Reply::Inline(CommandOutput::success("done\n")));
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run_appliance_locally(&limited("sleep 40 & echo done", 1000), dir.path()),
        Reply::Inline(CommandOutput::success("done\n"))
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn cut_short_or_foreign_replies_are_not_trusted() {
    assert_eq!(parse_reply("kiln-run 0 inline\nYQ==\n"), Reply::Files(0));
    assert_eq!(parse_reply("kiln-run x inline\n.\n.\n"), Reply::Garbled);
    assert_eq!(parse_reply("hello\n"), Reply::Garbled);
    assert_eq!(
        parse_reply("kiln-run 1 inline\nYQ==\n.\n\n.\n"),
        Reply::Inline(CommandOutput {
            exit_code: 1,
            stdout: b"a".to_vec(),
            stderr: Vec::new()
        })
    );
    assert_eq!(
        decode_base64("aGVsbG8h\nd29y\r\nbGQ="),
        Some(b"hello!world".to_vec())
    );
    assert_eq!(decode_base64("a.b"), None);
}

#[test]
fn only_a_slow_124_is_a_timeout() {
    let limit = Duration::from_secs(5);
    assert!(timed_out(124, Duration::from_secs(6), limit));
    assert!(!timed_out(124, Duration::from_secs(1), limit));
    assert!(!timed_out(0, Duration::from_secs(6), limit));
}

/// Runs a set-up or teardown script under the local /bin/sh with
/// `$root` pointing at `root`, as guestfsd's `debug sh` would.
fn run_in_appliance_shell(script: &str, root: &Path) -> String {
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .env("root", root)
        .output()
        .unwrap();
    assert!(output.status.success(), "the scripts always succeed");
    String::from_utf8(output.stdout).unwrap()
}

/// A guest tree with an /etc (and the given resolv.conf, if any) and an
/// appliance resolver to lend, both in `dir`.
fn guest_and_appliance(dir: &Path, guest_resolver: Option<&str>) -> (PathBuf, PathBuf) {
    let root = dir.join("sysroot");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    if let Some(text) = guest_resolver {
        std::fs::write(root.join("etc/resolv.conf"), text).unwrap();
    }
    let lent = dir.join("appliance-resolv.conf");
    std::fs::write(&lent, "nameserver 169.254.2.3\n").unwrap();
    (root, lent)
}

const BACKUP: &str = "/etc/.kiln-resolv.conf-test";

fn set_up(root: &Path, lent: &Path) -> ChrootSetup {
    let script = setup_script_lending(true, BACKUP, lent.to_str().unwrap());
    let reply = run_in_appliance_shell(&script, root);
    ChrootSetup::from_reply(&reply, BACKUP).expect("a guest is mounted")
}

fn tear_down(setup: &ChrootSetup, root: &Path) {
    let reply = run_in_appliance_shell(&setup.teardown_script(), root);
    assert!(ChrootSetup::restored(&reply), "{reply}");
}

#[test]
fn the_guest_resolver_is_lent_over_and_given_back() {
    let dir = tempfile::tempdir().unwrap();
    let (root, lent) = guest_and_appliance(dir.path(), Some("nameserver 10.0.0.1\n"));
    let setup = set_up(&root, &lent);
    assert_eq!(setup.bound, Vec::<String>::new(), "no /dev to bind here");
    assert!(setup.lent_resolver);
    let conf = root.join("etc/resolv.conf");
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "nameserver 169.254.2.3\n"
    );
    // File calls see (and change) what the image will hold.
    assert_eq!(setup.file_path("/etc/resolv.conf"), BACKUP);
    assert_eq!(setup.file_path("/etc/hosts"), "/etc/hosts");
    let backup = root.join(BACKUP.trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(&backup).unwrap(),
        "nameserver 10.0.0.1\n"
    );
    tear_down(&setup, &root);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "nameserver 10.0.0.1\n"
    );
    assert!(!backup.exists());
}

#[test]
fn a_guest_without_a_resolver_gets_none_back_unless_one_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let (root, lent) = guest_and_appliance(dir.path(), None);
    let conf = root.join("etc/resolv.conf");
    let setup = set_up(&root, &lent);
    assert!(conf.exists(), "commands get a resolver");
    tear_down(&setup, &root);
    assert!(!conf.exists());

    let setup = set_up(&root, &lent);
    let written = root.join(setup.file_path("/etc/resolv.conf").trim_start_matches('/'));
    std::fs::write(written, "nameserver 10.9.9.9\n").unwrap();
    tear_down(&setup, &root);
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "nameserver 10.9.9.9\n"
    );
}

#[test]
fn a_dangling_resolver_link_survives() {
    let dir = tempfile::tempdir().unwrap();
    let (root, lent) = guest_and_appliance(dir.path(), None);
    let conf = root.join("etc/resolv.conf");
    std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", &conf).unwrap();
    let setup = set_up(&root, &lent);
    assert!(!conf.is_symlink(), "the lent file replaces the link");
    tear_down(&setup, &root);
    assert_eq!(
        std::fs::read_link(&conf).unwrap(),
        Path::new("../run/systemd/resolve/stub-resolv.conf")
    );
}

#[test]
fn without_network_nothing_is_lent_and_without_a_guest_nothing_is_set_up() {
    let dir = tempfile::tempdir().unwrap();
    let (root, _) = guest_and_appliance(dir.path(), Some("mine\n"));
    let reply = run_in_appliance_shell(&setup_script(false, BACKUP), &root);
    let setup = ChrootSetup::from_reply(&reply, BACKUP).unwrap();
    assert_eq!(setup, ChrootSetup::default());
    assert_eq!(setup.file_path("/etc/resolv.conf"), "/etc/resolv.conf");
    let reply = run_in_appliance_shell(&setup_script(true, BACKUP), Path::new(""));
    assert_eq!(ChrootSetup::from_reply(&reply, BACKUP), None);
}

#[test]
fn a_resolver_that_cannot_be_restored_fails_the_teardown() {
    let setup = ChrootSetup {
        bound: vec!["/dev".into(), "/proc".into()],
        resolver_backup: Some(BACKUP.into()),
        lent_resolver: true,
    };
    let script = setup.teardown_script();
    let proc_at = script.find("umount \"$r\"/proc").unwrap();
    let dev_at = script.find("umount \"$r\"/dev").unwrap();
    assert!(proc_at < dev_at, "innermost first: {script}");
    assert!(!ChrootSetup::restored(
        "kiln-restore-failed\nkiln-restored\n"
    ));
    assert!(!ChrootSetup::restored("mv: cannot move\n"));
    assert!(ChrootSetup::restored("kiln-restored\n"));
}

/// Runs the appliance-side wrapper with the local /bin/sh, entering no
/// chroot, with `$root` (and `$sd`) set as guestfsd's `debug sh` sets
/// them; returns the parsed reply.
fn run_appliance_locally(command: &RemoteCommand, dir: &Path) -> Reply {
    let scratch = dir.join("capture");
    let side = ApplianceSide {
        scratch: scratch.to_str().unwrap(),
        enter: "",
    };
    let script = appliance_script(command, "/spill", &side);
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .env("root", dir)
        .env("sd", "sd")
        .output()
        .unwrap();
    assert!(output.status.success(), "the wrapper always succeeds");
    parse_reply(&String::from_utf8(output.stdout).expect("the reply is text"))
}

#[test]
fn the_appliance_wrapper_replies_with_exact_streams_and_hides_its_variables() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = RemoteCommand::new(
        "printf 'a\\0b\\377'; printf '[%s][%s][%s][%s]' \"$root\" \"$sd\" \"$HOME\" \"$v\" >&2; exit 3",
    );
    command.env.push(("v".into(), "it's $(x)".into()));
    assert_eq!(
        run_appliance_locally(&command, dir.path()),
        Reply::Inline(CommandOutput {
            exit_code: 3,
            stdout: b"a\0b\xff".to_vec(),
            stderr: b"[][][/root][it's $(x)]".to_vec(),
        })
    );
    assert_eq!(
        run_appliance_locally(&RemoteCommand::new("true"), dir.path()),
        Reply::Inline(CommandOutput::default())
    );
    assert!(!dir.path().join("spill").exists(), "nothing spilled");
}

#[test]
fn the_appliance_wrapper_spills_large_output_into_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let command = RemoteCommand::new("head -c 3000000 /dev/zero; echo e >&2; exit 7");
    assert_eq!(run_appliance_locally(&command, dir.path()), Reply::Files(7));
    let spill = dir.path().join("spill");
    assert_eq!(
        std::fs::metadata(spill.join("stdout")).unwrap().len(),
        3_000_000
    );
    assert_eq!(std::fs::read(spill.join("stderr")).unwrap(), b"e\n");
}

#[test]
fn the_appliance_wrapper_caps_a_flood_and_spills_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let command = limited("yes; echo never", 1 << 20);
    assert_eq!(run_appliance_locally(&command, dir.path()), Reply::TooLarge);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!dir.path().join("spill").exists(), "nothing spilled");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "no capture kept: {left:?}");
    // Within a limit above the inline size, the output is spilled whole.
    let command = limited("head -c 3000000 /dev/zero; echo e >&2; exit 7", 3_000_002);
    assert_eq!(run_appliance_locally(&command, dir.path()), Reply::Files(7));
    let spill = dir.path().join("spill");
    assert_eq!(
        std::fs::metadata(spill.join("stdout")).unwrap().len(),
        3_000_000
    );
}

#[test]
fn the_appliance_wrapper_applies_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = RemoteCommand::new("sleep 30");
    command.timeout = Some(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let reply = run_appliance_locally(&command, dir.path());
    assert_eq!(
        reply,
        Reply::Inline(CommandOutput {
            exit_code: 124,
            ..Default::default()
        })
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

//! The SSH target against real sshds on loopback, each serving its own
//! Debian 12 root filesystem (see `support/sshd_fleet.rs`). Nothing here
//! skips: without sshd, debootstrap or root the tests fail.

use crate::support;
use crate::support::sshd_fleet;

use std::time::{Duration, Instant};

use kiln::interpreter::{Quiet, RunError};
use kiln::remote::distro::{family_of, OsRelease};
use kiln::remote::ssh::{HostSpec, SshError, SshOptions, SshRemote};
use kiln::remote::{
    FileKind, FileMetadata, FileRead, FileWrite, Remote, RemoteCommand, RemoteError,
};
use sshd_fleet::{Fleet, UNPRIVILEGED_USER};
use support::processes_mentioning;

mod bounds;
mod session;

fn connect(fleet: &Fleet, index: usize) -> SshRemote {
    let started = Instant::now();
    let target = SshRemote::connect(&fleet.host(index).spec(), &fleet.options())
        .unwrap_or_else(|error| panic!("connect: {error}\nsshd log:\n{}", fleet.host(index).log()));
    eprintln!("connect (login + probe) took {:?}", started.elapsed());
    target
}

fn run(target: &mut SshRemote, script: &str) -> (i32, String, String) {
    let output = target
        .run(&RemoteCommand::new(script))
        .unwrap_or_else(|error| panic!("{script}: {error}"));
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.exit_code, text(&output.stdout), text(&output.stderr))
}

#[test]
fn distro_is_debian() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    assert_eq!(target.distro().unwrap(), "debian");
    assert!(target.name().contains(&fleet.host(0).address.to_string()));
}

/// The Debian host's real os-release, read over SSH and from its root file
/// system, parses to what the probe reported, and the distro's family
/// reaches the validators: `os_case` runs the `debian` block and `package`
/// checks with dpkg, for real.
#[test]
fn distro_and_family_come_from_the_hosts_real_os_release() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let (status, text, _) = run(&mut target, "cat /etc/os-release");
    assert_eq!(status, 0);
    let on_disk = std::fs::read_to_string(fleet.host(0).root().join("etc/os-release")).unwrap();
    assert_eq!(OsRelease::parse(&text), OsRelease::parse(&on_disk));
    let os_release = OsRelease::parse(&text);
    assert_eq!(os_release.id().as_deref(), Some("debian"));
    assert_eq!(os_release.get("VERSION_ID"), Some("12"));
    assert_eq!(
        os_release.get("PRETTY_NAME"),
        Some("Debian GNU/Linux 12 (bookworm)"),
        "quotes are removed: {text}"
    );
    assert_eq!(os_release.distro().as_deref(), Some("debian"));
    let distro = target.distro().unwrap();
    assert_eq!(distro, "debian");
    assert_eq!(family_of(&distro), Some("debian"));

    let yaml = "validators:\n  - os_case:\n    - redhat:\n      - package: no-such-package\n    - debian:\n      - package: [dpkg, bash]\n      - script:\n          seen:\n            inline: echo \"$distro\"\n            output: seen_distro\n";
    let fixture = support::Fixture::new(yaml, &[]);
    let (summary, _target) = support::kiln().run(
        &fixture.manifest(),
        target,
        &support::args(&[]),
        true,
        Box::new(Quiet),
    );
    assert!(summary.passed(), "{:?}", summary.outcome);
    assert_eq!(
        summary.arguments.get("seen_distro").map(String::as_str),
        Some("debian")
    );
}

#[test]
fn run_returns_exit_code_stdout_and_stderr() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    assert_eq!(
        run(&mut target, "echo out; echo err >&2; exit 3"),
        (3, "out\n".into(), "err\n".into())
    );
    assert_eq!(run(&mut target, "id -u").1, "0\n");
    // 255 is ssh's own failure status too; a live connection means the command chose it.
    assert_eq!(run(&mut target, "exit 255").0, 255);
    // The command really runs inside this host's chroot.
    std::fs::write(fleet.host(0).root().join("etc/kiln-marker"), "host0").unwrap();
    assert_eq!(run(&mut target, "cat /etc/kiln-marker").1, "host0");
}

#[test]
fn env_values_stay_literal() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let hostile = r#"it's "quoted" $(touch /pwned) `touch /pwned2` $HOME; rm -rf /nothing \ end"#;
    let mut command = RemoteCommand::new(r#"printf '%s' "$VALUE""#);
    command.env.push(("VALUE".into(), hostile.into()));
    let output = target.run(&command).unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), hostile);
    assert!(!fleet.host(0).root().join("pwned").exists());
    assert!(!fleet.host(0).root().join("pwned2").exists());
}

#[test]
fn files_round_trip() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let contents: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    target
        .write_file(&FileWrite::new("/etc/kiln test.bin", &contents, 0o640))
        .unwrap();
    assert_eq!(
        target
            .read_file(&FileRead::new("/etc/kiln test.bin"))
            .unwrap(),
        Some(contents.clone())
    );
    assert_eq!(
        run(&mut target, "stat -c %a '/etc/kiln test.bin'").1,
        "640\n"
    );
    target
        .write_file(&FileWrite::new("/etc/kiln test.bin", b"short\n", 0o600))
        .unwrap();
    assert_eq!(
        target
            .read_file(&FileRead::new("/etc/kiln test.bin"))
            .unwrap()
            .as_deref(),
        Some(&b"short\n"[..])
    );
    assert_eq!(
        run(&mut target, "ls -a /etc | grep -c kiln-write || true").1,
        "0\n",
        "temp files left behind"
    );
    assert_eq!(
        target
            .read_file(&FileRead::new("/etc/no-such-file"))
            .unwrap(),
        None
    );
    target
        .write_file(&FileWrite::new("/etc/empty", b"", 0o644))
        .unwrap();
    assert_eq!(
        target.read_file(&FileRead::new("/etc/empty")).unwrap(),
        Some(Vec::new())
    );
    let error = target
        .write_file(&FileWrite::new("/no/such/dir/file", b"x", 0o644))
        .unwrap_err();
    assert!(matches!(error, RemoteError::Failed { .. }), "{error}");
    let error = target.read_file(&FileRead::new("/etc")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("cannot read /etc: it is a directory, not a regular file"),
        "{error}"
    );
}

#[test]
fn one_connection_serves_the_whole_run() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let started = Instant::now();
    for n in 0..20 {
        assert_eq!(run(&mut target, &format!("echo {n}")).1, format!("{n}\n"));
    }
    eprintln!(
        "20 commands over the shared connection: {:?} each",
        started.elapsed() / 20
    );
    assert_eq!(
        fleet.host(0).accepted_logins(),
        1,
        "sshd log:\n{}",
        fleet.host(0).log()
    );
    drop(target);
    // Drop closed the master: sshd sees the session end.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !fleet.host(0).log().contains("Disconnected from user root") {
        assert!(
            Instant::now() < deadline,
            "the master stayed connected:\n{}",
            fleet.host(0).log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ssh_config_aliases_are_honoured() {
    let fleet = Fleet::start(1);
    let mut target = SshRemote::connect(
        &HostSpec::new(fleet.host(0).alias.clone()),
        &fleet.options(),
    )
    .unwrap();
    assert_eq!(run(&mut target, "echo via alias").1, "via alias\n");
    assert_eq!(target.name(), format!("host {}", fleet.host(0).alias));
}

#[test]
fn unknown_host_key_is_refused_with_a_how_to() {
    let fleet = Fleet::start(1);
    fleet.write_known_hosts("");
    let error = match SshRemote::connect(&fleet.host(0).spec(), &fleet.options()) {
        Err(error) => error,
        Ok(_) => panic!("connected to a host with an unknown key"),
    };
    let message = error.to_string();
    eprintln!("{message}");
    assert!(
        matches!(error, SshError::UnknownHostKey { .. }),
        "{message}"
    );
    let host = fleet.host(0);
    assert!(
        message.contains(&format!(
            "ssh-keyscan -p {} {} >> {}",
            host.port,
            host.address,
            fleet.known_hosts().display()
        )),
        "{message}"
    );
    assert!(message.contains("--accept-new-host-keys"), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert_eq!(host.accepted_logins(), 0);
}

#[test]
fn changed_host_key_is_refused() {
    let fleet = Fleet::start(1);
    let host = fleet.host(0);
    fleet.write_known_hosts(&format!(
        "[{}]:{} {}",
        host.address,
        host.port,
        fleet.unrelated_public_key()
    ));
    let options = SshOptions {
        accept_new_host_keys: true,
        ..fleet.options()
    };
    let error = match SshRemote::connect(&host.spec(), &options) {
        Err(error) => error,
        Ok(_) => panic!("connected to a host whose key changed"),
    };
    let message = error.to_string();
    eprintln!("{message}");
    assert!(
        matches!(error, SshError::HostKeyChanged { .. }),
        "{message}"
    );
    assert!(
        message.contains(&format!("-R [{}]:{}", host.address, host.port)),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn accept_new_host_keys_records_the_key() {
    let fleet = Fleet::start(1);
    fleet.write_known_hosts("");
    let options = SshOptions {
        accept_new_host_keys: true,
        ..fleet.options()
    };
    let mut target = SshRemote::connect(&fleet.host(0).spec(), &options).unwrap();
    assert_eq!(run(&mut target, "echo hi").1, "hi\n");
    let known = std::fs::read_to_string(fleet.known_hosts()).unwrap();
    assert!(
        known.contains(&format!(
            "[{}]:{}",
            fleet.host(0).address,
            fleet.host(0).port
        )),
        "{known}"
    );
    drop(target);
    // The key is now known, so strict checking accepts the host.
    SshRemote::connect(&fleet.host(0).spec(), &fleet.options()).unwrap();
}

#[test]
fn a_host_that_dies_mid_run_is_unreachable_not_a_hang() {
    let mut fleet = Fleet::start(2);
    let mut doomed = connect(&fleet, 0);
    let mut survivor = connect(&fleet, 1);
    let in_flight = std::thread::spawn(move || {
        let started = Instant::now();
        let result = doomed.run(&RemoteCommand::new("sleep 60"));
        (result, started.elapsed(), doomed)
    });
    std::thread::sleep(Duration::from_millis(500));
    fleet.kill_host(0);
    let (result, elapsed, mut doomed) = in_flight.join().unwrap();
    assert!(
        matches!(result, Err(RemoteError::Unreachable { .. })),
        "{result:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    // Later commands fail fast too: the reconnect attempt is refused.
    let started = Instant::now();
    let error = doomed.run(&RemoteCommand::new("true")).unwrap_err();
    eprintln!("after the crash: {error} ({:?})", started.elapsed());
    assert!(matches!(error, RemoteError::Unreachable { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        doomed.read_file(&FileRead::new("/etc/hostname")),
        Err(RemoteError::Unreachable { .. })
    ));
    // The other host is untouched.
    assert_eq!(run(&mut survivor, "echo alive").1, "alive\n");
}

#[test]
fn a_host_that_hangs_is_unreachable_once_keepalives_fail() {
    let fleet = Fleet::start(1);
    // The keepalive interval follows the connect timeout: 3 missed answers.
    let options = SshOptions {
        connect_timeout: Duration::from_secs(1),
        ..fleet.options()
    };
    let mut target = SshRemote::connect(&fleet.host(0).spec(), &options).unwrap();
    let in_flight = std::thread::spawn(move || {
        let started = Instant::now();
        let result = target.run(&RemoteCommand::new("sleep 60"));
        (result, started.elapsed(), target)
    });
    std::thread::sleep(Duration::from_millis(500));
    fleet.freeze_host(0);
    let (result, elapsed, mut target) = in_flight.join().unwrap();
    eprintln!("hung host: {result:?} after {elapsed:?}");
    assert!(
        matches!(result, Err(RemoteError::Unreachable { .. })),
        "{result:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    // Reconnecting reaches the frozen listener's backlog, then times out.
    let started = Instant::now();
    let error = target.run(&RemoteCommand::new("true")).unwrap_err();
    eprintln!(
        "reconnect to a hung host: {error} ({:?})",
        started.elapsed()
    );
    assert!(matches!(error, RemoteError::Unreachable { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn a_dropped_connection_is_reopened_once() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    assert_eq!(run(&mut target, "echo one").1, "one\n");
    // Kill only the session processes (as an idle-timeout firewall would drop
    // the connection); sshd keeps listening, so kiln logs in again.
    let sshd_log_before = fleet.host(0).accepted_logins();
    fleet.drop_connections(0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(run(&mut target, "echo two").1, "two\n");
    assert!(fleet.host(0).accepted_logins() > sshd_log_before);
}

#[test]
fn command_timeout_kills_the_command() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let mut command = RemoteCommand::new("sleep 31337");
    command.timeout = Some(Duration::from_secs(1));
    let started = Instant::now();
    let error = target.run(&command).unwrap_err();
    assert!(matches!(error, RemoteError::Timeout { .. }), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    eprintln!("{error}");
    // The connection is still good.
    assert_eq!(run(&mut target, "echo still here").1, "still here\n");
    // The default from the options applies when the command has none.
    let options = SshOptions {
        command_timeout: Some(Duration::from_secs(1)),
        ..fleet.options()
    };
    let mut limited = SshRemote::connect(&fleet.host(0).spec(), &options).unwrap();
    let error = limited.run(&RemoteCommand::new("sleep 31337")).unwrap_err();
    assert!(matches!(error, RemoteError::Timeout { .. }), "{error}");
    // The remote `timeout` reaps the orphaned sleep shortly after kiln gave up.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !processes_mentioning("sleep 31337").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the timed-out command is still running"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn apt_get_install_works_over_ssh() {
    let fleet = Fleet::start(1);
    let mut target = connect(&fleet, 0);
    let mut install = RemoteCommand::new(
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends hello",
    );
    install
        .env
        .push(("DEBIAN_FRONTEND".into(), "noninteractive".into()));
    install.timeout = Some(Duration::from_secs(240));
    let started = Instant::now();
    let output = target.run(&install).unwrap();
    eprintln!("apt-get update + install hello: {:?}", started.elapsed());
    assert_eq!(
        output.exit_code,
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(run(&mut target, "hello").1, "Hello, world!\n");
    assert!(fleet.host(0).root().join("usr/bin/hello").exists());
}

#[test]
fn each_host_has_its_own_filesystem() {
    let fleet = Fleet::start(2);
    let mut first = connect(&fleet, 0);
    let mut second = connect(&fleet, 1);
    first
        .write_file(&FileWrite::new("/etc/whoami", b"first", 0o644))
        .unwrap();
    second
        .write_file(&FileWrite::new("/etc/whoami", b"second", 0o644))
        .unwrap();
    assert_eq!(
        first
            .read_file(&FileRead::new("/etc/whoami"))
            .unwrap()
            .as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(
        second
            .read_file(&FileRead::new("/etc/whoami"))
            .unwrap()
            .as_deref(),
        Some(&b"second"[..])
    );
}

#[test]
fn a_non_root_login_runs_root_commands_through_sudo() {
    let fleet = Fleet::start(1);
    let mut root = connect(&fleet, 0);
    let mut install = RemoteCommand::new(
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends sudo",
    );
    install
        .env
        .push(("DEBIAN_FRONTEND".into(), "noninteractive".into()));
    install.timeout = Some(Duration::from_secs(240));
    let output = root.run(&install).unwrap();
    assert_eq!(
        output.exit_code,
        0,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (passwd, group, shadow) = fleet.unprivileged_user();
    let mut add_user = RemoteCommand::new(
        r#"printf %s "$P" >> /etc/passwd; printf %s "$G" >> /etc/group; printf %s "$S" >> /etc/shadow"#,
    );
    add_user.env = vec![
        ("P".into(), passwd),
        ("G".into(), group),
        ("S".into(), shadow),
    ];
    assert_eq!(root.run(&add_user).unwrap().exit_code, 0);

    let spec = HostSpec {
        user: Some(UNPRIVILEGED_USER.into()),
        ..fleet.host(0).spec()
    };
    let error = match SshRemote::connect(&spec, &fleet.options()) {
        Err(error) => error,
        Ok(_) => panic!("connected although sudo needs a password"),
    };
    eprintln!("{error}");
    assert!(matches!(error, SshError::SudoUnavailable { .. }), "{error}");

    let grant = format!("{UNPRIVILEGED_USER} ALL=(ALL) NOPASSWD: ALL\n");
    root.write_file(&FileWrite::new(
        "/etc/sudoers.d/kiln-fleet",
        grant.as_bytes(),
        0o440,
    ))
    .unwrap();
    let mut target = SshRemote::connect(&spec, &fleet.options()).unwrap();
    let (code, stdout, stderr) = run(&mut target, "id -u; echo \"$SUDO_USER\"");
    assert_eq!(
        (code, stdout, stderr),
        (0, format!("0\n{UNPRIVILEGED_USER}\n"), String::new())
    );
    let mut command = RemoteCommand::new(r#"printf '%s' "$V""#);
    command.env.push(("V".into(), "it's $(id -u)".into()));
    command.timeout = Some(Duration::from_secs(30));
    assert_eq!(target.run(&command).unwrap().stdout, b"it's $(id -u)");
    target
        .write_file(&FileWrite::new("/etc/kiln-owned", b"root's", 0o600))
        .unwrap();
    assert_eq!(
        run(&mut root, "stat -c '%U %a' /etc/kiln-owned").1,
        "root 600\n"
    );
    assert!(target
        .read_file(&FileRead::new("/etc/shadow"))
        .unwrap()
        .is_some());
}

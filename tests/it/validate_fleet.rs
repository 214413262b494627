//! `kiln validate` end to end: the real `kiln` binary against fleets of real
//! sshds on loopback, each host its own Debian chroot (see
//! `support/sshd_fleet.rs`). One test walks a site manifest through
//! test-only, reconcile and test-only again across three hosts (with one
//! host made to differ, and host lists from Ansible INI and YAML
//! inventories), reading what the manifest wrote straight out of each
//! chroot; the others kill a host mid-run, present unknown and wrong host
//! keys, and feed escape sequences through a file name, a component and its
//! commands to check that the terminal and the report get them escaped.
//! Every kiln run has a deadline, so a hang fails instead of blocking, and
//! nothing skips: without sshd, debootstrap or root the tests fail.

use crate::support::sshd_fleet;

use crate::support::reports;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use sshd_fleet::Fleet;

/// Longer than any run here needs (apt included), short enough that a hang
/// shows up as a failure well within CI's patience.
const RUN_DEADLINE: Duration = Duration::from_secs(240);

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/fleet")
        .join(path)
}

/// `root@127.0.0.x:port`, as kiln prints the host.
fn host_name(fleet: &Fleet, index: usize) -> String {
    fleet.host(index).spec().to_string()
}

/// A finished kiln run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    /// The closing table's cells for `host`: HOST DISTRO RESULT FAILING TIME.
    fn row(&self, host: &str) -> Vec<String> {
        let table = self
            .stdout
            .split_once("\nHOST ")
            .map(|(_, table)| table)
            .unwrap_or_else(|| panic!("no closing table:\n{self}"));
        table
            .lines()
            .find(|line| line.split_whitespace().next() == Some(host))
            .unwrap_or_else(|| panic!("no table row for {host}:\n{self}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// Asserts the table says `result` for `host`, with `failing` (or `-`).
    fn assert_row(&self, host: &str, result: &str, failing: &str) {
        let row = self.row(host);
        assert_eq!(
            (row[2].as_str(), row[3].as_str()),
            (result, failing),
            "row for {host}:\n{self}"
        );
    }

    /// The progress and failure lines kiln printed for `host`.
    fn lines_for(&self, host: &str) -> Vec<&str> {
        let table_start = self.stdout.find("\nHOST ").unwrap_or(self.stdout.len());
        self.stdout[..table_start]
            .lines()
            .filter(|line| line.contains(&format!("] {host} ")))
            .collect()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} after {:.1} s\n--- stdout\n{}--- stderr\n{}",
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// A kiln run in progress, its stdout arriving line by line so a test can
/// act at a given point of the run.
struct Running {
    child: Child,
    lines: Receiver<String>,
    stdout: String,
    stderr: Receiver<String>,
    started: Instant,
}

impl Running {
    /// Waits for a stdout line satisfying `wanted` and returns it.
    fn wait_for_line(&mut self, wanted: impl Fn(&str) -> bool, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push_str(&line);
                    self.stdout.push('\n');
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "the awaited line never came; stdout so far:\n{}",
                        self.stdout
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("kiln ended before the awaited line:\n{}", self.stdout)
                }
            }
        }
    }

    /// Waits for kiln to exit (killing it at the deadline, which fails).
    fn finish(mut self) -> Run {
        let deadline = self.started + RUN_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push_str(&line);
                    self.stdout.push('\n');
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "kiln did not finish within {RUN_DEADLINE:?}; stdout:\n{}",
                        self.stdout
                    );
                }
            }
        }
        let status = self.child.wait().expect("waiting for kiln");
        Run {
            code: status.code().expect("kiln was killed by a signal"),
            stdout: self.stdout,
            stderr: self.stderr.recv().unwrap_or_default(),
            elapsed: self.started.elapsed(),
        }
    }
}

/// Starts `kiln validate -F <fleet's ssh_config> ARGS`.
fn spawn_validate(fleet: &Fleet, args: &[String]) -> Running {
    spawn_validate_with(fleet, args, &[])
}

/// `spawn_validate` with extra environment entries for kiln.
fn spawn_validate_with(fleet: &Fleet, args: &[String], env: &[(&str, &str)]) -> Running {
    let ssh_config = fleet.options().ssh_config.expect("fleet ssh_config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .envs(env.iter().copied())
        .arg("validate")
        .arg("-F")
        .arg(ssh_config)
        .args(["--connect-timeout", "5"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting kiln");
    let (line_sender, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("kiln stdout");
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line_sender.send(line).is_err() {
                break;
            }
        }
    });
    let (stderr_sender, stderr) = mpsc::channel();
    let mut pipe = child.stderr.take().expect("kiln stderr");
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = stderr_sender.send(text);
    });
    Running {
        child,
        lines,
        stdout: String::new(),
        stderr,
        started: Instant::now(),
    }
}

fn validate(fleet: &Fleet, args: &[String]) -> Run {
    let run = spawn_validate(fleet, args).finish();
    eprintln!(
        "kiln validate {}: exit {} in {:.1} s",
        args.join(" "),
        run.code,
        run.elapsed.as_secs_f64()
    );
    run
}

/// `--host NAME` for each of `indices`.
fn host_args(fleet: &Fleet, indices: &[usize]) -> Vec<String> {
    indices
        .iter()
        .flat_map(|&i| ["--host".to_string(), host_name(fleet, i)])
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The `--report` file, checked against docs/report.schema.json.
fn read_report(path: &Path) -> Value {
    reports::valid_json_report(path)
}

/// A target's entry for the validator at `path`.
fn validator<'a>(target: &'a Value, path: &str) -> &'a Value {
    target["validators"]
        .as_array()
        .expect("validators array")
        .iter()
        .find(|v| v["path"] == path)
        .unwrap_or_else(|| panic!("no {path} in {target:#}"))
}

/// The report's entry for `host`, which must appear exactly once.
fn report_target<'a>(report: &'a Value, host: &str) -> &'a Value {
    let matching: Vec<&Value> = report["targets"]
        .as_array()
        .expect("targets array")
        .iter()
        .filter(|t| t["target"] == host)
        .collect();
    assert_eq!(matching.len(), 1, "{host} in {report:#}");
    matching[0]
}

/// Runs a command inside host `index`'s chroot and returns its stdout.
fn in_chroot(fleet: &Fleet, index: usize, command: &[&str]) -> String {
    let output = Command::new("chroot")
        .arg(fleet.host(index).root())
        .args(command)
        .output()
        .expect("running chroot");
    assert!(output.status.success(), "{command:?} in host {index}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn greeting_file(fleet: &Fleet, index: usize) -> PathBuf {
    fleet.host(index).root().join("etc/kiln-fleet/greeting")
}

/// Keeps apt from installing `file` on a host, as a site's pinning would.
const PIN_OUT_FILE: &str = "Package: file\nPin: release *\nPin-Priority: -1\n";

#[test]
fn the_site_manifest_checks_reconciles_and_rechecks_a_fleet() {
    let fleet = Fleet::start(3);
    let hosts: Vec<String> = (0..3).map(|i| host_name(&fleet, i)).collect();
    let manifest = fixture("site/image.yaml");
    let pin = fleet
        .host(2)
        .root()
        .join("etc/apt/preferences.d/kiln-no-file");
    std::fs::write(&pin, PIN_OUT_FILE).unwrap();
    let site_args = |extra: &[&str]| {
        let mut args = strings(&["--manifest", manifest.to_str().unwrap()]);
        args.extend(strings(&["--arg", "greeting=ahoy", "--forks", "3"]));
        args.extend(strings(extra));
        args
    };

    // (a) Clean hosts lack the packages: every host fails, named, at the package validator.
    let mut args = host_args(&fleet, &[0, 1, 2]);
    args.extend(site_args(&[]));
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 1, "{run}");
    for host in &hosts {
        run.assert_row(host, "failed", "validators[1].package");
        assert!(
            run.lines_for(host)
                .iter()
                .any(|l| l.contains("FAILED: validators[1].package") && l.contains("less")),
            "no failure line for {host}:\n{run}"
        );
        assert_eq!(run.row(host)[1], "debian", "{run}");
    }
    assert!(run.stdout.contains("0 of 3 hosts passed"), "{run}");
    assert!(!greeting_file(&fleet, 0).exists(), "test-only wrote a file");

    // (i) Reconciling: host 2 cannot install `file`; hosts 0 and 1 finish all the same.
    let first_report = fleet.scratch("reconcile-1.json");
    let mut args = host_args(&fleet, &[0, 1, 2]);
    args.extend(site_args(&[
        "--reconcile",
        "--report",
        first_report.to_str().unwrap(),
    ]));
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 1, "{run}");
    run.assert_row(&hosts[0], "passed", "-");
    run.assert_row(&hosts[1], "passed", "-");
    run.assert_row(&hosts[2], "failed", "validators[1].package");
    assert!(greeting_file(&fleet, 0).exists() && greeting_file(&fleet, 1).exists());
    assert!(
        !greeting_file(&fleet, 2).exists(),
        "host 2 went on past its failure"
    );
    // (h) One report entry per host, with passed/error/validators.
    let report = read_report(&first_report);
    assert_eq!(report["targets"].as_array().unwrap().len(), 3, "{report:#}");
    assert_eq!(report["passed"], false);
    assert_eq!(report["test_only"], false);
    for host in &hosts[..2] {
        let target = report_target(&report, host);
        assert_eq!(target["passed"], true, "{target:#}");
        assert!(target["error"].is_null(), "{target:#}");
        assert_eq!(
            validator(target, "validators[1].package")["status"],
            "changed",
            "{target:#}"
        );
    }
    let failed = report_target(&report, &hosts[2]);
    assert_eq!(failed["passed"], false, "{failed:#}");
    assert_eq!(failed["result"], "failed", "{failed:#}");
    assert_eq!(failed["error"]["validator"], "validators[1].package");
    let message = failed["error"]["message"].as_str().unwrap();
    assert!(message.contains("no installation candidate"), "{message}");

    // (b) With the pin gone, reconciling fixes host 2 and leaves the others as they are.
    std::fs::remove_file(&pin).unwrap();
    let second_report = fleet.scratch("reconcile-2.json");
    let mut args = host_args(&fleet, &[0, 1, 2]);
    args.extend(site_args(&[
        "--reconcile",
        "--report",
        second_report.to_str().unwrap(),
    ]));
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 0, "{run}");
    for host in &hosts {
        run.assert_row(host, "passed", "-");
    }
    let report = read_report(&second_report);
    assert_eq!(report["passed"], true);
    let package_status = |host: &str| {
        validator(report_target(&report, host), "validators[1].package")["status"].clone()
    };
    assert_eq!(package_status(&hosts[0]), "passed", "{report:#}");
    assert_eq!(package_status(&hosts[2]), "changed", "{report:#}");

    // (c, g) Test-only now passes everywhere, hosts named by an Ansible INI inventory.
    let ini = fleet.scratch("hosts.ini");
    std::fs::write(&ini, ini_inventory(&fleet)).unwrap();
    let run = validate(&fleet, &site_args(&["--inventory", ini.to_str().unwrap()]));
    assert_eq!(run.code, 0, "{run}");
    for host in &hosts {
        run.assert_row(host, "passed", "-");
    }
    assert!(run.stdout.contains("3 of 3 hosts passed"), "{run}");
    // What the manifest wrote is really on each host.
    let copied = std::fs::read(fixture("site/motd-check.sh")).unwrap();
    for index in 0..3 {
        let version = in_chroot(
            &fleet,
            index,
            &["dpkg-query", "-W", "-f", "${Version}", "less"],
        );
        assert!(!version.is_empty());
        let greeting = std::fs::read_to_string(greeting_file(&fleet, index)).unwrap();
        assert_eq!(
            greeting,
            format!("ahoy from less {version}\n"),
            "host {index}"
        );
        let root = fleet.host(index).root();
        assert_eq!(
            std::fs::read(root.join("tmp/motd-check.sh")).unwrap(),
            copied
        );
        assert!(root.join("usr/bin/file").exists() && root.join("usr/bin/less").exists());
    }

    // (i, g, h) Someone edits host 1's file: only host 1 fails (YAML inventory this time).
    std::fs::write(greeting_file(&fleet, 1), "hand-edited\n").unwrap();
    let yaml = fleet.scratch("hosts.yaml");
    std::fs::write(&yaml, yaml_inventory(&fleet)).unwrap();
    let last_report = fleet.scratch("recheck.json");
    let run = validate(
        &fleet,
        &site_args(&[
            "--inventory",
            yaml.to_str().unwrap(),
            "--report",
            last_report.to_str().unwrap(),
        ]),
    );
    assert_eq!(run.code, 1, "{run}");
    run.assert_row(&hosts[0], "passed", "-");
    run.assert_row(&hosts[1], "failed", "validators[3].script");
    run.assert_row(&hosts[2], "passed", "-");
    assert!(run.stdout.contains("2 of 3 hosts passed"), "{run}");
    let report = read_report(&last_report);
    assert_eq!(report["test_only"], true);
    assert_eq!(report["targets"].as_array().unwrap().len(), 3, "{report:#}");
    let edited = report_target(&report, &hosts[1]);
    assert_eq!(edited["passed"], false);
    assert_eq!(edited["error"]["validator"], "validators[3].script");
    let message = edited["error"]["message"].as_str().unwrap();
    assert!(message.contains("holds 'hand-edited'"), "{message}");
    // Test-only left the edit alone.
    assert_eq!(
        std::fs::read_to_string(greeting_file(&fleet, 1)).unwrap(),
        "hand-edited\n"
    );
}

/// The fleet as an Ansible INI inventory: a group with per-host addresses
/// and ports, and the user from the group's vars.
fn ini_inventory(fleet: &Fleet) -> String {
    let mut text = String::from("# fleet test inventory\n[site]\n");
    for (index, host) in fleet.hosts.iter().enumerate() {
        text.push_str(&format!(
            "node{index} ansible_host={} ansible_port={}\n",
            host.address, host.port
        ));
    }
    text.push_str("\n[site:vars]\nansible_user=root\n");
    text
}

/// The fleet as an Ansible YAML inventory, hosts under a child group.
fn yaml_inventory(fleet: &Fleet) -> String {
    let mut text = String::from(
        "all:\n  vars:\n    ansible_user: root\n  children:\n    site:\n      hosts:\n",
    );
    for (index, host) in fleet.hosts.iter().enumerate() {
        text.push_str(&format!(
            "        node{index}:\n          ansible_host: {}\n          ansible_port: {}\n",
            host.address, host.port
        ));
    }
    text
}

#[test]
fn a_host_killed_mid_run_is_unreachable_while_the_others_pass() {
    let mut fleet = Fleet::start(3);
    let hosts: Vec<String> = (0..3).map(|i| host_name(&fleet, i)).collect();
    // Host 0 sleeps in validators[1] until the test kills it.
    std::fs::write(fleet.host(0).root().join("etc/kiln-stall"), "").unwrap();
    let report = fleet.scratch("report.json");
    let mut args = host_args(&fleet, &[0, 1, 2]);
    args.extend(strings(&[
        "--forks",
        "3",
        // A safety net: a kill that went unnoticed fails as a timeout, not a hang.
        "--command-timeout",
        "60",
        "--report",
        report.to_str().unwrap(),
        "--manifest",
        fixture("probe/image.yaml").to_str().unwrap(),
    ]));
    let mut running = spawn_validate(&fleet, &args);
    // Host names are padded to the longest one, so match the two parts.
    let stalled = |line: &str| {
        line.contains(&format!("] {} ", hosts[0])) && line.contains(" validators[1].script: check")
    };
    running.wait_for_line(stalled, Duration::from_secs(60));
    // Give the script a moment to be running remotely, then crash the host.
    thread::sleep(Duration::from_millis(500));
    let killed_at = running.started.elapsed();
    fleet.kill_host(0);
    let run = running.finish();
    eprintln!("killed at {killed_at:?}:\n{run}");
    assert_eq!(run.code, 1, "{run}");
    run.assert_row(&hosts[0], "unreachable", "validators[1].script");
    run.assert_row(&hosts[1], "passed", "-");
    run.assert_row(&hosts[2], "passed", "-");
    assert!(
        run.elapsed < killed_at + Duration::from_secs(20),
        "kiln waited on the dead host:\n{run}"
    );
    let report = read_report(&report);
    assert_eq!(report["targets"].as_array().unwrap().len(), 3, "{report:#}");
    let dead = report_target(&report, &hosts[0]);
    assert_eq!(dead["passed"], false, "{dead:#}");
    assert_eq!(dead["result"], "unreachable", "{dead:#}");
    assert_eq!(dead["error"]["validator"], "validators[1].script");
    let message = dead["error"]["message"].as_str().unwrap();
    assert!(message.contains("unreachable"), "{message}");
    for host in &hosts[1..] {
        let target = report_target(&report, host);
        assert_eq!(target["passed"], true, "{target:#}");
        assert_eq!(target["result"], "passed", "{target:#}");
        assert_eq!(target["validators"].as_array().unwrap().len(), 4);
    }
}

#[test]
fn unknown_and_wrong_host_keys_are_refused() {
    let fleet = Fleet::start(2);
    let (unknown, changed) = (fleet.host(0), fleet.host(1));
    let hosts = [host_name(&fleet, 0), host_name(&fleet, 1)];
    // Host 0 is not in known_hosts at all; host 1 is, with another key.
    let wrong_line = format!(
        "[{}]:{} {}",
        changed.address,
        changed.port,
        fleet.unrelated_public_key()
    );
    fleet.write_known_hosts(&wrong_line);
    let mut args = host_args(&fleet, &[0, 1]);
    args.extend(strings(&[
        "--manifest",
        fixture("probe/image.yaml").to_str().unwrap(),
    ]));
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 1, "{run}");
    run.assert_row(&hosts[0], "unreachable", "-");
    run.assert_row(&hosts[1], "unreachable", "-");
    let known_hosts = fleet.known_hosts().display().to_string();
    let said = |host: &str, text: &str| run.lines_for(host).iter().any(|l| l.contains(text));
    let keyscan = format!(
        "ssh-keyscan -p {} {} >> {known_hosts}",
        unknown.port, unknown.address
    );
    assert!(said(&hosts[0], &keyscan), "{run}");
    assert!(said(&hosts[0], "--accept-new-host-keys"), "{run}");
    assert!(said(&hosts[1], "DIFFERS"), "{run}");
    let remove = format!("-R [{}]:{}", changed.address, changed.port);
    assert!(said(&hosts[1], &remove), "{run}");
    assert_eq!(unknown.accepted_logins() + changed.accepted_logins(), 0);

    // Accepting new keys admits host 0 and records its key; a changed key stays refused.
    args.push("--accept-new-host-keys".into());
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 1, "{run}");
    run.assert_row(&hosts[0], "passed", "-");
    run.assert_row(&hosts[1], "unreachable", "-");
    assert!(
        run.lines_for(&hosts[1])
            .iter()
            .any(|l| l.contains("DIFFERS")),
        "{run}"
    );
    assert_eq!(changed.accepted_logins(), 0);
    let recorded = std::fs::read_to_string(fleet.known_hosts()).unwrap();
    // Type and base64 only: ssh records the key without the comment.
    let real_key = unknown.known_hosts_line();
    let real_key: Vec<&str> = real_key.split_whitespace().skip(1).take(2).collect();
    let recorded_line = format!(
        "[{}]:{} {}",
        unknown.address,
        unknown.port,
        real_key.join(" ")
    );
    assert!(recorded.contains(&recorded_line), "{recorded}");
    assert!(
        recorded.contains(&wrong_line),
        "the wrong entry was replaced:\n{recorded}"
    );

    // The recorded key is trusted from now on, without the flag.
    let mut args = host_args(&fleet, &[0]);
    args.extend(strings(&[
        "--manifest",
        fixture("probe/image.yaml").to_str().unwrap(),
    ]));
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 0, "{run}");
    run.assert_row(&hosts[0], "passed", "-");
}

#[test]
fn a_script_that_says_unreachable_is_a_failure_not_an_unreachable_host() {
    let fleet = Fleet::start(1);
    let host = host_name(&fleet, 0);
    std::fs::write(fleet.host(0).root().join("etc/kiln-no-network"), "").unwrap();
    let report = fleet.scratch("report.json");
    let mut args = host_args(&fleet, &[0]);
    args.extend(strings(&[
        "--report",
        report.to_str().unwrap(),
        "--manifest",
        fixture("probe/image.yaml").to_str().unwrap(),
    ]));
    let run = validate(&fleet, &args);
    assert_eq!(run.code, 1, "{run}");
    // The host answered every command; only the script's own words mention unreachability.
    run.assert_row(&host, "failed", "validators[3].script");
    let report = read_report(&report);
    assert_eq!(
        report_target(&report, &host)["result"],
        "failed",
        "{report:#}"
    );
}

#[test]
fn what_a_component_and_its_commands_print_reaches_the_terminal_and_report_escaped() {
    let fleet = Fleet::start(1);
    let host = host_name(&fleet, 0);
    // The manifest's own name retitles the terminal. Its `attacks` type
    // runs a command whose text, env value and output carry escape
    // sequences; `narrow` is denied a command that carries one; then
    // `attacks` fails with, logs and notes escape sequences of its own.
    let manifest = fleet.scratch("site\u{1b}]0;owned\u{7}.yaml");
    let wasm = Path::new(kiln_test_components::KILN_HOSTILE_ATTACKS);
    let declare =
        |name: &str, keys: &str| format!("  {name}:\n    wasm: {}\n{keys}", wasm.display());
    std::fs::write(
        &manifest,
        [
            "validator_types:\n",
            &declare("attacks", "    grants: [exec]\n"),
            &declare("narrow", "    grants: [exec]\n    commands: ['true']\n"),
            "validators:\n",
            r#"  - attacks: {attack: command, command: "printf '\e]0;owned\a%s\\n' \"$GREETING\"", env: {GREETING: "\e[2Khello"}}"#,
            "\n  - any:\n",
            "      - narrow: {attack: command, command: \"echo \\e[2Kpwned\"}\n",
            "      - attacks: {attack: escapes}\n",
        ]
        .concat(),
    )
    .unwrap();
    let report = fleet.scratch("escapes.json");
    let mut args = host_args(&fleet, &[0]);
    args.extend(strings(&[
        "-vv",
        "--report",
        report.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]));
    // Not `validate()`: it echoes the arguments, hostile name and all.
    let run = spawn_validate(&fleet, &args).finish();
    assert_eq!(run.code, 1, "{run}");
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains(['\u{1b}', '\u{7}', '\u{9b}']),
            "raw terminal control on {stream}:\n{run}"
        );
    }
    for shown in [
        "with /",
        "site\\e]0;owned\\u{7}.yaml",
        // The command as it starts (-vv), its env entry quoted as shell text.
        "validators[0].attacks: $ env -- 'GREETING=\\e[2Khello' /bin/sh -c 'printf '\\''\\e]0;owned\\u{7}%s\\n'\\'' \"$GREETING\"'",
        // Its output (-vv), named by host and validator, and how it ended.
        format!("{host} validators[0].attacks | \\e]0;owned\\u{{7}}\\e[2Khello").as_str(),
        "validators[0].attacks: -> exit 0",
        // The denial, whole.
        "validators[1].any[0].narrow: FAILED: validator type `narrow` was denied running `echo \\e[2Kpwned`: it is outside the type's allowed command patterns",
        // What the component logged and failed with.
        "validators[1].any[1].attacks: \\e[1A\\e[2K\\e[32mPASSED\\e[0m everything",
        "FAILED: \\e[2K\\r\\e[32m✔ all validators passed\\e[0m\\nreally",
    ] {
        assert!(run.stdout.contains(shown), "`{shown}` is not in:\n{run}");
    }
    run.assert_row(&host, "failed", "validators[1].any");

    let raw = std::fs::read_to_string(&report).expect("the report");
    // serde_json would write a control character as \u001b: none may be there.
    assert!(
        !raw.contains("\\u001b") && !raw.contains("\\u0007") && !raw.contains('\u{1b}'),
        "{raw}"
    );
    let report = read_report(&report);
    assert!(
        report["manifest"]
            .as_str()
            .unwrap()
            .ends_with("site\\e]0;owned\\u{7}.yaml"),
        "{report:#}"
    );
    let target = report_target(&report, &host);
    let ran = validator(target, "validators[0].attacks");
    assert_eq!(ran["path"], "validators[0].attacks", "{report:#}");
    assert_eq!(
        ran["commands"],
        serde_json::json!([{
            "command": "printf '\\e]0;owned\\u{7}%s\\n' \"$GREETING\"",
            "env": [{"name": "GREETING", "value": "\\e[2Khello"}],
            "exit_code": 0,
            "error": null,
            "elapsed_seconds": ran["commands"][0]["elapsed_seconds"],
        }]),
        "{report:#}"
    );
    let denied = validator(target, "validators[1].any[0].narrow");
    assert_eq!(denied["path"], "validators[1].any[0].narrow", "{report:#}");
    assert!(
        denied["message"]
            .as_str()
            .unwrap()
            .contains("was denied running `echo \\e[2Kpwned`"),
        "{report:#}"
    );
    // A denied command never reaches the host.
    assert_eq!(denied["commands"], serde_json::json!([]), "{report:#}");
    let failed = validator(target, "validators[1].any[1].attacks");
    assert_eq!(
        failed["message"], "\\e[2K\\r\\e[32m✔ all validators passed\\e[0m\\nreally",
        "{report:#}"
    );
}

/// The ssh masters kiln (`pid`) started: its children with `ControlMaster=yes`.
fn ssh_masters_of(pid: u32) -> Vec<u32> {
    let mut masters = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if parent == Some(pid) && String::from_utf8_lossy(&cmdline).contains("ControlMaster=yes") {
            masters.push(child);
        }
    }
    masters
}

/// Whether process `pid` is gone (or only a zombie waiting for init).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                == Some("Z")
        }
    }
}

/// Waits (10 s at most, a sanity bound for a loaded machine) for `pids` to end.
fn wait_gone(pids: &[u32]) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| !process_gone(p)).collect();
        if alive.is_empty() || Instant::now() > deadline {
            return alive;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The `script` type's uploads in host `index`'s /tmp.
fn uploaded_scripts(fleet: &Fleet, index: usize) -> Vec<String> {
    std::fs::read_dir(fleet.host(index).root().join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("kiln-script-"))
        .collect()
}

/// Starts the probe manifest on one host whose validators[1] sleeps for
/// two minutes, and returns once that script is uploaded and running,
/// with the pid of kiln's ssh master.
fn stalled_run(fleet: &Fleet) -> (Running, u32) {
    std::fs::write(fleet.host(0).root().join("etc/kiln-stall"), "").unwrap();
    let mut args = host_args(fleet, &[0]);
    args.extend(strings(&[
        "--manifest",
        fixture("probe/image.yaml").to_str().unwrap(),
    ]));
    let mut running = spawn_validate(fleet, &args);
    let host = format!("] {} ", host_name(fleet, 0));
    let stalled =
        |line: &str| line.contains(&host) && line.contains(" validators[1].script: check");
    running.wait_for_line(stalled, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    while uploaded_scripts(fleet, 0).is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        uploaded_scripts(fleet, 0).len(),
        1,
        "the script is uploaded"
    );
    // Let the script start sleeping on the host.
    thread::sleep(Duration::from_millis(500));
    let masters = ssh_masters_of(running.child.id());
    assert_eq!(masters.len(), 1, "one ssh master for one host");
    (running, masters[0])
}

#[test]
fn ctrl_c_removes_uploaded_scripts_and_closes_the_ssh_master() {
    let fleet = Fleet::start(1);
    let (running, master) = stalled_run(&fleet);
    // SIGINT to kiln alone: the harder case, where the ssh client of the
    // sleeping command does not get the signal itself.
    // SAFETY: signalling the kiln process this test started.
    assert_eq!(
        unsafe { libc::kill(running.child.id() as i32, libc::SIGINT) },
        0
    );
    let run = running.finish();
    eprintln!("{run}");
    assert_eq!(run.code, 130, "{run}");
    assert!(run.stderr.contains("kiln: interrupted"), "{run}");
    run.assert_row(&host_name(&fleet, 0), "interrupted", "validators[1].script");
    assert!(!run.stdout.contains("unreachable"), "{run}");
    assert!(
        !run.stdout.contains("validators[2]"),
        "no validator starts after Ctrl-C:\n{run}"
    );
    // The script sleeps 120 s; kiln must not have waited for it.
    assert!(run.elapsed < Duration::from_secs(100), "{run}");
    assert_eq!(
        uploaded_scripts(&fleet, 0),
        Vec::<String>::new(),
        "the uploaded script was removed"
    );
    assert_eq!(wait_gone(&[master]), Vec::<u32>::new(), "the master closed");
}

#[test]
fn the_ssh_master_dies_with_kiln_even_after_kill_9() {
    let fleet = Fleet::start(1);
    let (mut running, master) = stalled_run(&fleet);
    // A killed kiln cannot remove its control directory; the test does.
    let cmdline = std::fs::read(format!("/proc/{master}/cmdline")).unwrap();
    let control_dir = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .find_map(|arg| arg.strip_prefix("ControlPath=").map(str::to_string))
        .map(|socket| PathBuf::from(socket).parent().unwrap().to_path_buf())
        .expect("the master names its control socket");
    running.child.kill().unwrap();
    running.child.wait().unwrap();
    let alive = wait_gone(&[master]);
    let _ = std::fs::remove_dir_all(&control_dir);
    assert_eq!(alive, Vec::<u32>::new(), "the master outlived kiln");
}

// ---- --timeout and per-type limits ----

/// `--timeout` stops the whole run: the sleeping script is cut short
/// (kiln does not wait out its 120 s), no validator starts after it, the
/// uploaded script is removed, and the table, the closing line, the
/// message, the exit status and the report all say the run timed out.
#[test]
fn a_run_wide_timeout_stops_a_slow_script_and_says_so() {
    let fleet = Fleet::start(1);
    std::fs::write(fleet.host(0).root().join("etc/kiln-stall"), "").unwrap();
    let report = fleet.scratch("timeout-report.json");
    let mut args = host_args(&fleet, &[0]);
    args.extend(strings(&[
        "--timeout",
        "20s",
        "--report",
        report.to_str().unwrap(),
        "--manifest",
        fixture("probe/image.yaml").to_str().unwrap(),
    ]));
    let run = validate(&fleet, &args);
    let host = host_name(&fleet, 0);
    assert_eq!(run.code, 124, "{run}");
    assert!(
        run.stderr
            .contains("kiln: timed out after 20s; 1 of 1 hosts were started"),
        "{run}"
    );
    assert!(
        run.stdout.contains("0 of 1 hosts passed in")
            && run.stdout.contains("; timed out after 20s"),
        "the closing line says it:\n{run}"
    );
    run.assert_row(&host, "timed-out", "validators[1].script");
    assert!(
        !run.stdout.contains("validators[2]"),
        "no validator starts after the deadline:\n{run}"
    );
    assert_eq!(uploaded_scripts(&fleet, 0), Vec::<String>::new());
    let report = read_report(&report);
    assert_eq!(report["exit_code"], 124, "{report:#}");
    assert_eq!(
        report["error"]
            .as_str()
            .map(|e| e.contains("timed out after 20s")),
        Some(true),
        "{report:#}"
    );
    let target = report_target(&report, &host);
    assert_eq!(target["result"], "timed-out", "{target:#}");
    assert_eq!(
        validator(target, "validators[0].package")["status"],
        "passed"
    );
    assert_eq!(
        validator(target, "validators[1].script")["status"],
        "failed"
    );
    assert_eq!(
        validator(target, "validators[2].script")["status"],
        "not run"
    );
}

/// A built-in type has no wall clock of its own (Sahara had none); a
/// manifest's limits-only declaration, or a config file's
/// `[kiln_limits]`, gives it one without replacing its component.
#[test]
fn a_limit_set_for_a_built_in_stops_a_sleeping_script() {
    let fleet = Fleet::start(1);
    let dir = tempfile::tempdir().unwrap();
    let script = "  - script:\n      nap:\n        inline: sleep 60\n  - script:\n      after:\n        inline: 'true'\n";
    let limited = dir.path().join("limited.yaml");
    std::fs::write(
        &limited,
        format!("validator_types:\n  script:\n    limits: {{seconds: 1}}\nvalidators:\n{script}"),
    )
    .unwrap();
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, format!("validators:\n{script}")).unwrap();
    let conf = dir.path().join("kiln.conf");
    std::fs::write(&conf, "[kiln_limits]\nscript = 1s\n").unwrap();
    let host = host_name(&fleet, 0);
    for (what, manifest, extra) in [
        ("a manifest declaration", &limited, vec![]),
        (
            "[kiln_limits]",
            &plain,
            vec!["--config-file", conf.to_str().unwrap()],
        ),
    ] {
        let mut args = host_args(&fleet, &[0]);
        args.extend(strings(&extra));
        args.extend(strings(&["--manifest", manifest.to_str().unwrap()]));
        let run = validate(&fleet, &args);
        assert_eq!(run.code, 1, "{what}: {run}");
        run.assert_row(&host, "failed", "validators[0].script");
        assert!(
            run.stderr
                .contains("validator type `script` was stopped at its wall-clock limit of 1 s")
                || run
                    .stdout
                    .contains("validator type `script` was stopped at its wall-clock limit of 1 s"),
            "{what}: {run}"
        );
        assert!(
            !run.stdout.contains("validators[1].script: passed"),
            "{what}: {run}"
        );
    }
}

// ---- live output, logs and reports ----

/// A manifest whose first script prints a line, then waits for the test
/// to create /etc/kiln-go before printing another: kiln must show the
/// first line while the command still runs. Then a branch that is not
/// taken, a package that is not installed (the failure), and a validator
/// the failure keeps from running.
const LIVE_MANIFEST: &str = "validators:
  - script:
      wait-for-go:
        inline: 'echo first; echo to-stderr >&2; while [ ! -e /etc/kiln-go ]; do sleep 0.2; done; echo second'
  - os_case:
      - redhat:
          - script: {never: {inline: 'true'}}
  - package: kiln-no-such-package
  - script: {after: {inline: 'true'}}
";

#[test]
fn output_streams_heartbeats_come_and_reports_and_logs_cover_every_validator() {
    let fleet = Fleet::start(1);
    let host = host_name(&fleet, 0);
    let unreachable = "root@127.0.0.1:1";
    let go = fleet.host(0).root().join("etc/kiln-go");
    let manifest = fleet.scratch("live.yaml");
    std::fs::write(&manifest, LIVE_MANIFEST).unwrap();
    let report = fleet.scratch("live.json");
    let log = fleet.scratch("live.log");
    let mut args = host_args(&fleet, &[0]);
    args.extend(strings(&[
        "--host",
        unreachable,
        "-vv",
        // A safety net: a line that never streams fails as a timeout, not a hang.
        "--command-timeout",
        "120",
        "--report",
        report.to_str().unwrap(),
        "--log-file",
        log.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]));

    // (1) -vv, a heartbeat every second: the first line arrives while the
    // command waits for the test, and so does a heartbeat naming it.
    let mut running = spawn_validate_with(&fleet, &args, &[("KILN_HEARTBEAT", "1")]);
    let first = format!("{host} validators[0].script | first");
    running.wait_for_line(|line| line.contains(&first), Duration::from_secs(60));
    let beat = format!("still running {host} validators[0].script (");
    running.wait_for_line(|line| line.contains(&beat), Duration::from_secs(60));
    std::fs::write(&go, "").unwrap();
    let run = running.finish();
    assert_eq!(run.code, 1, "{run}");
    for line in [
        format!("{host} validators[0].script ! to-stderr"),
        format!("{host} validators[0].script | second"),
        format!("{host} validators[2].package ! dpkg-query: package 'kiln-no-such-package' is not installed"),
    ] {
        assert!(run.stdout.contains(&line), "`{line}` is not in:\n{run}");
    }
    // The first line came before the command ended (it waited for the test).
    let at = |text: &str| {
        run.stdout
            .find(text)
            .unwrap_or_else(|| panic!("{text}:\n{run}"))
    };
    assert!(at(&first) < at("validators[0].script: -> exit 0"), "{run}");
    // Off a terminal there is never a status line to redraw.
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stdout.contains('\r'),
        "{run}"
    );

    let json = read_report(&report);
    assert_eq!(json["exit_code"], 1);
    let target = report_target(&json, &host);
    assert_eq!(target["result"], "failed", "{target:#}");
    for (path, status) in [
        ("validators[0].script", "passed"),
        ("validators[1].os_case", "passed"),
        ("validators[1].os_case[0].redhat[0].script", "skipped"),
        ("validators[2].package", "failed"),
        ("validators[3].script", "not run"),
    ] {
        assert_eq!(
            validator(target, path)["status"],
            status,
            "{path}: {target:#}"
        );
    }
    let gone = report_target(&json, unreachable);
    assert_eq!(gone["result"], "unreachable", "{gone:#}");
    assert_eq!(gone["validators"].as_array().unwrap().len(), 5, "{gone:#}");
    assert!(gone["validators"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["status"] == "not run"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(&first) && text.contains(&beat), "{text}");

    // (2) No -v, JUnit: the terminal shows no command, the log has every
    // command in full with its environment entries, exit code and output.
    let junit = fleet.scratch("live.xml");
    let mut args = host_args(&fleet, &[0]);
    args.extend(strings(&[
        "--host",
        unreachable,
        "--report",
        junit.to_str().unwrap(),
        "--report-format",
        "junit",
        "--log-file",
        log.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]));
    let run = spawn_validate_with(&fleet, &args, &[("KILN_HEARTBEAT", "0")]).finish();
    assert_eq!(run.code, 1, "{run}");
    assert!(
        !run.stdout.contains("| first") && !run.stdout.contains("$ "),
        "{run}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    for wanted in [
        "validators[0].script: $ env -- test_only=1 ",
        "validators[0].script | first",
        "validators[0].script ! to-stderr",
        "validators[0].script | second",
        "validators[2].package: $ dpkg -s kiln-no-such-package  -> exit 1",
        "validators[2].package ! dpkg-query: package 'kiln-no-such-package' is not installed",
        "kiln-no-such-package",
    ] {
        assert!(
            text.contains(wanted),
            "`{wanted}` is not in the log:\n{text}"
        );
    }
    let xml = reports::valid_junit_report(&junit);
    assert_eq!(xml.matches("<testsuite ").count(), 2, "{xml}");
    assert!(xml.contains("failures=\"1\""), "{xml}");
    assert!(xml.contains("<testcase name=\"(connect)\""), "{xml}");
    assert!(xml.contains("<failure type=\"failed\""), "{xml}");
}

/// The run under a pseudo-terminal (util-linux `script`), its output read
/// as it comes: the live status line is drawn there, and cleared.
#[test]
fn a_terminal_gets_a_live_status_line() {
    let fleet = Fleet::start(1);
    let host = host_name(&fleet, 0);
    let manifest = fleet.scratch("live.yaml");
    std::fs::write(&manifest, LIVE_MANIFEST).unwrap();
    let ssh_config = fleet.options().ssh_config.expect("fleet ssh_config");
    let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
    let line = [
        env!("CARGO_BIN_EXE_kiln"),
        "validate",
        "-F",
        ssh_config.to_str().unwrap(),
        "--host",
        &host,
        // The status line is drawn whatever the colour setting; without
        // colour the progress lines read as plain text here.
        "--color",
        "never",
        "--manifest",
        manifest.to_str().unwrap(),
    ]
    .map(quote)
    .join(" ");
    let mut child = Command::new("script")
        .args(["-q", "-e", "-f", "-c", &line, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script runs");
    let (sender, chunks) = mpsc::channel();
    let mut stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || sender.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let status = "\u{1b}[2K[";
    let step = format!("{host} validators[0].script (");
    let deadline = Instant::now() + RUN_DEADLINE;
    loop {
        let text = String::from_utf8_lossy(&seen).into_owned();
        if text.contains(status) && text.contains(&step) {
            break;
        }
        match chunks.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(chunk) => seen.extend(chunk),
            Err(_) => {
                let _ = child.kill();
                panic!("no status line naming {step}:\n{text:?}");
            }
        }
    }
    std::fs::write(fleet.host(0).root().join("etc/kiln-go"), "").unwrap();
    while let Ok(chunk) = chunks.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.extend(chunk);
    }
    let code = child.wait().unwrap().code();
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert_eq!(code, Some(1), "{text:?}");
    // Every status line is cleared before the next line is printed: the
    // progress lines themselves arrive whole.
    assert!(
        text.contains("\r\u{1b}[2K["),
        "the status line is never cleared:\n{text:?}"
    );
    assert!(text.contains("FAILED: validators[2].package"), "{text:?}");
    assert!(text.contains("0 of 1 hosts passed"), "{text:?}");
}

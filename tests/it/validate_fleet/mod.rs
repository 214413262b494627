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

mod hosts;
mod site;
mod stops_and_output;

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

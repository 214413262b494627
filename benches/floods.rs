//! kiln's peak memory under floods: a validator that makes the target pour
//! out more than its declared limits allow. Each flood runs the hostile
//! `attacks` component (`validators-wasm/hostile/attacks`) through the
//! component host in a fresh child process (this binary re-executed with
//! `--flood NAME`), and the child's peak RSS is read from `wait4(2)`'s
//! `ru_maxrss` (kiln's own; its ssh clients are processes of their own and
//! far smaller). The base is the same child running the same manifest
//! with a calm spec in place of the flood (`true` for `yes`, a small file
//! for a read, one tiny argument), so it holds the engine, the compiled
//! component, one instance and the SSH connection. The SSH floods go to a
//! real sshd on loopback serving a Debian chroot (`tests/it/support/
//! sshd_fleet.rs`); the argument flood to the in-memory scripted remote.
//! Prints a Markdown table for BENCHMARKS.md.
//!
//!   cargo bench --bench floods            # RUNS=N repetitions (default 3)

#[path = "../tests/it/support/sshd_fleet.rs"]
mod sshd_fleet;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln::host::HostOptions;
use kiln::interpreter::{Quiet, RunError};
use kiln::manifest::LoadOptions;
use kiln::remote::scripted::ScriptedRemote;
use kiln::remote::ssh::{HostSpec, SshOptions, SshRemote};
use kiln::Kiln;

const MIB: u64 = 1 << 20;

/// The large regular file the read flood names, sparse on the host.
const LARGE_FILE: &str = "/root/kiln-large";
const LARGE_FILE_BYTES: u64 = 1 << 30;

struct Flood {
    name: &'static str,
    what: &'static str,
    grants: &'static str,
    limits: &'static str,
    /// The declared limit the rule is stated against, in bytes, and as written.
    limit: u64,
    limit_text: &'static str,
    spec: &'static str,
    calm: &'static str,
    over_ssh: bool,
}

const FLOODS: &[Flood] = &[
    Flood {
        name: "yes-1",
        what: "`yes` command output over SSH",
        grants: "[exec]",
        limits: "{milliseconds: 60000, memory_mib: 16, log_kib: 64, output_mib: 1}",
        limit: MIB,
        limit_text: "output_mib: 1",
        spec: "{attack: command, command: 'yes'}",
        calm: "{attack: command, command: 'true'}",
        over_ssh: true,
    },
    Flood {
        name: "yes-16",
        what: "`yes` command output over SSH",
        grants: "[exec]",
        limits: "{milliseconds: 60000, memory_mib: 16, log_kib: 64, output_mib: 16}",
        limit: 16 * MIB,
        limit_text: "output_mib: 16",
        spec: "{attack: command, command: 'yes'}",
        calm: "{attack: command, command: 'true'}",
        over_ssh: true,
    },
    Flood {
        name: "read-large",
        what: "read-file of a 1 GiB regular file over SSH",
        grants: "[read-file]",
        limits: "{milliseconds: 60000, memory_mib: 16, log_kib: 64, output_mib: 1}",
        limit: MIB,
        limit_text: "output_mib: 1",
        spec: "{attack: read, path: /root/kiln-large}",
        calm: "{attack: read, path: /etc/hostname}",
        over_ssh: true,
    },
    Flood {
        name: "read-zero",
        what: "read-file of /dev/zero over SSH",
        grants: "[read-file]",
        limits: "{milliseconds: 60000, memory_mib: 16, log_kib: 64, output_mib: 1}",
        limit: MIB,
        limit_text: "output_mib: 1",
        spec: "{attack: read, path: /dev/zero}",
        calm: "{attack: read, path: /etc/hostname}",
        over_ssh: true,
    },
    Flood {
        name: "set-arguments",
        what: "set-argument, 1000 × 40 MiB values (scripted remote)",
        grants: "[set-argument]",
        limits: "{milliseconds: 60000, memory_mib: 128, log_kib: 64, argument_kib: 64}",
        limit: 64 << 10,
        limit_text: "argument_kib: 64",
        spec: "{attack: set_arguments, times: '1000', bytes: '41943040'}",
        calm: "{attack: set_arguments, times: '1', bytes: '10'}",
        over_ssh: false,
    },
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--flood") {
        child(&args[at + 1..]);
        return;
    }
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let fleet = sshd_fleet::Fleet::start(1);
    let large = fleet
        .host(0)
        .root()
        .join(LARGE_FILE.trim_start_matches('/'));
    std::fs::File::create(&large)
        .and_then(|file| file.set_len(LARGE_FILE_BYTES))
        .expect("creating the large file");
    let host = fleet.host(0).spec().to_string();
    let config = fleet.options().ssh_config.expect("fleet ssh_config");

    // Compiles and caches the component, so no measured child pays for it.
    measure(&FLOODS[0], false, &host, &config);

    println!(
        "| flood | declared limit | base peak RSS | flood peak RSS, median (max) | max − base | bound 2 × limit | meets | flood ended after | outcome |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |");
    for flood in FLOODS {
        let mut bases = Vec::new();
        let mut peaks = Vec::new();
        let mut times = Vec::new();
        let mut outcome = String::new();
        for _ in 0..runs {
            bases.push(measure(flood, false, &host, &config).peak_kib);
            let ran = measure(flood, true, &host, &config);
            peaks.push(ran.peak_kib);
            times.push(ran.elapsed);
            outcome = ran.outcome;
        }
        let base = median(&mut bases);
        let peak = median(&mut peaks);
        let max = *peaks.iter().max().unwrap();
        let grown = max.saturating_sub(base);
        let bound = 2 * flood.limit / 1024;
        let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
        println!(
            "| {} | {} | {} | {} ({}) | {} | {} | {} | {:.2} s | {} |",
            flood.what,
            flood.limit_text,
            mib(base),
            mib(peak),
            mib(max),
            mib(grown),
            mib(bound),
            if grown < bound { "yes" } else { "no" },
            median(&mut times).as_secs_f64(),
            outcome.replace('|', "\\|"),
        );
    }
}

fn median<T: Ord + Copy>(values: &mut [T]) -> T {
    values.sort();
    values[values.len() / 2]
}

/// What one child reported.
struct Measured {
    peak_kib: u64,
    elapsed: Duration,
    outcome: String,
}

/// Runs `flood` (or its calm twin) in a fresh child and reads its peak RSS.
fn measure(flood: &Flood, flooding: bool, host: &str, config: &Path) -> Measured {
    let mut command = Command::new(std::env::current_exe().expect("own path"));
    command
        .arg("--flood")
        .arg(flood.name)
        .arg(if flooding { "flood" } else { "calm" })
        .arg(host)
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // Reaped by wait4 below, which std's `wait` cannot do: it drops the rusage.
    #[allow(clippy::zombie_processes)]
    let mut child = command.spawn().expect("re-running the bench binary");
    let mut report = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut report)
        .expect("reading the child's report");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which std has not reaped.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{} child failed ({status}): {report}",
        flood.name
    );
    let (millis, outcome) = report
        .trim()
        .split_once('\t')
        .unwrap_or_else(|| panic!("{}: unexpected report {report:?}", flood.name));
    Measured {
        // Linux reports ru_maxrss in KiB.
        peak_kib: usage.ru_maxrss as u64,
        elapsed: Duration::from_millis(millis.parse().expect("milliseconds")),
        outcome: outcome.to_string(),
    }
}

/// The child: `NAME flood|calm HOST SSH_CONFIG`. Runs one manifest and
/// prints `MILLISECONDS<TAB>OUTCOME`.
fn child(args: &[String]) {
    let flood = FLOODS
        .iter()
        .find(|f| f.name == args[0])
        .expect("a known flood");
    let flooding = args[1] == "flood";
    let spec = if flooding { flood.spec } else { flood.calm };
    let kiln = Kiln::new(HostOptions::with_default_cache()).expect("kiln starts");
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("floods.yaml");
    let wasm = Path::new(kiln_test_components::KILN_HOSTILE_ATTACKS);
    std::fs::write(
        &path,
        format!(
            "validator_types:\n  attacks:\n    wasm: {}\n    grants: {}\n    limits: {}\nvalidators:\n  - attacks: {spec}\n",
            wasm.display(),
            flood.grants,
            flood.limits
        ),
    )
    .unwrap();
    let manifest = kiln
        .load(&path, &LoadOptions::default())
        .expect("the manifest loads");
    let arguments = BTreeMap::new();
    let started = Instant::now();
    let summary = if flood.over_ssh {
        let host: HostSpec = args[2].parse().expect("a host spec");
        let options = SshOptions {
            connect_timeout: Duration::from_secs(5),
            ssh_config: Some(PathBuf::from(&args[3])),
            ..SshOptions::default()
        };
        let target = SshRemote::connect(&host, &options).expect("connects");
        let started_run = Instant::now();
        let (summary, _) = kiln.run(&manifest, target, &arguments, false, Box::new(Quiet));
        (summary, started_run.elapsed())
    } else {
        let remote = ScriptedRemote::new("debian");
        let (summary, _) = kiln.run(&manifest, remote, &arguments, false, Box::new(Quiet));
        (summary, started.elapsed())
    };
    let (summary, elapsed) = summary;
    let outcome = match summary.outcome {
        Ok(_) => "passed".to_string(),
        Err(RunError::Validation(error)) => error.message,
        Err(other) => format!("{other}"),
    };
    println!("{}\t{outcome}", elapsed.as_millis());
}

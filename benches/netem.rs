//! The fleet benchmark behind real latency (issue 14 §3): the ten checks of
//! `tests/fixtures/fleet/bench/image.yaml` as kiln `validate` (one or more
//! kiln builds side by side), as `ansible-playbook --check`
//! (`benches/netem/playbook.yml`) and as pytest-testinfra
//! (`benches/netem/test_fleet.py`), against real sshds
//! (`tests/it/support/sshd_fleet.rs`) that each sit in their own network
//! namespace behind a delaying relay (`benches/netem/network.rs`,
//! `relay.rs`: this kernel has no netem). A benchmark, not a check: run it
//! with `cargo bench --profile dev --bench netem`; it prints a Markdown
//! table for BENCHMARKS.md. Selected by environment variables:
//!
//! - `HOSTS` (default `1 4 16 64`), `RTTS` in ms (default `0 20 100`),
//!   `RUNS` per cell (default 3), `SLOW_RUNS` for Ansible and testinfra
//!   (default: `RUNS`), `RUNS_64` for any tool at 64 or more hosts
//!   (default 1), `TOOLS` (default `kiln ansible testinfra`),
//!   `TESTINFRA_MAX_HOSTS` (default: no limit; testinfra at 64 hosts takes
//!   ten minutes);
//! - `KILN_BINS`: `label=path` pairs, the kiln builds to compare (default:
//!   this tree's, labelled `this`);
//! - `NETEM_VENV`: the Python venv with ansible-core and testinfra (default
//!   `/var/tmp/kiln-netem-venv`, made by `benches/netem/venv.sh` if absent).
//!
//! Tools alternate order from run to run. Ctrl-C (or SIGTERM) ends the run
//! in flight and prints the table so far; it, or a failed run, still removes
//! namespaces, bridge, relays, sshds and mounts (a SIGKILLed run's leftovers
//! are swept at the next start).

#[path = "../tests/it/support/sshd_fleet.rs"]
mod sshd_fleet;

#[path = "netem/network.rs"]
mod network;
#[path = "netem/relay.rs"]
mod relay;
#[path = "netem/tools.rs"]
mod tools;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use network::{Network, PUBLIC_PORT, SSHD_PORT};
use sshd_fleet::{Fleet, Placement};
use tools::{Hosts, Sample, Tool};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn note_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

struct Settings {
    hosts: Vec<usize>,
    rtts: Vec<u64>,
    runs: usize,
    slow_runs: usize,
    runs_64: usize,
    testinfra_max_hosts: usize,
    tools: Vec<Tool>,
}

impl Settings {
    fn runs_for(&self, tool: &Tool, hosts: usize) -> usize {
        match tool {
            Tool::Testinfra { .. } if hosts > self.testinfra_max_hosts => 0,
            _ if hosts >= 64 => self.runs_64,
            Tool::Kiln { .. } => self.runs,
            _ => self.slow_runs,
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("relay") {
        run_relay(&args[2..]);
    }
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(
            libc::SIGINT,
            note_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            note_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    network::sweep_stale();
    let settings = settings();
    benchmark(&settings);
}

fn run_relay(args: &[String]) -> ! {
    let [listen, upstream, micros] = args else {
        panic!("usage: netem relay LISTEN UPSTREAM ONE_WAY_MICROSECONDS");
    };
    let parse = |s: &str| s.parse::<SocketAddr>().expect("relay address");
    let one_way = Duration::from_micros(micros.parse().expect("relay delay"));
    relay::serve(parse(listen), parse(upstream), one_way)
}

fn list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split_whitespace()
        .map(|item| {
            item.parse()
                .unwrap_or_else(|_| panic!("{name}: cannot read {item:?}"))
        })
        .collect()
}

fn settings() -> Settings {
    let venv = PathBuf::from(
        std::env::var("NETEM_VENV").unwrap_or_else(|_| "/var/tmp/kiln-netem-venv".into()),
    );
    let kiln_bins = std::env::var("KILN_BINS")
        .unwrap_or_else(|_| format!("this={}", env!("CARGO_BIN_EXE_kiln")));
    let mut tools = Vec::new();
    for name in list::<String>("TOOLS", "kiln ansible testinfra") {
        match name.as_str() {
            "kiln" => {
                for pair in kiln_bins.split_whitespace() {
                    let (label, binary) = pair.split_once('=').expect("KILN_BINS: label=path");
                    tools.push(Tool::Kiln {
                        label: label.into(),
                        binary: binary.into(),
                    });
                }
            }
            "ansible" => tools.push(Tool::Ansible { venv: venv.clone() }),
            "testinfra" => tools.push(Tool::Testinfra { venv: venv.clone() }),
            other => panic!("TOOLS: unknown tool {other:?}"),
        }
    }
    let needs_venv = tools.iter().any(|t| !matches!(t, Tool::Kiln { .. }));
    if needs_venv && !venv.join("bin/pytest").exists() {
        shell(
            repo()
                .join("benches/netem/venv.sh")
                .as_os_str()
                .to_str()
                .unwrap(),
            &[venv.to_str().unwrap()],
        );
    }
    Settings {
        hosts: list("HOSTS", "1 4 16 64"),
        rtts: list("RTTS", "0 20 100"),
        runs: list::<usize>("RUNS", "3")[0],
        slow_runs: list::<usize>("SLOW_RUNS", &std::env::var("RUNS").unwrap_or("3".into()))[0],
        runs_64: list::<usize>("RUNS_64", "1")[0],
        testinfra_max_hosts: list::<usize>("TESTINFRA_MAX_HOSTS", "1000")[0],
        tools,
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn shell(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} failed");
}

/// (rtt ms, hosts, tool label) -> samples.
type Results = BTreeMap<(u64, usize, String), Vec<Sample>>;

fn benchmark(settings: &Settings) {
    let most = *settings.hosts.iter().max().expect("HOSTS is empty");
    let golden = sshd_fleet::golden_root();
    let layer = sshd_fleet::chroot_safe_base().join(format!(
        "layer-python-{}",
        golden.file_name().unwrap().to_string_lossy()
    ));
    shell(
        repo()
            .join("benches/netem/python-layer.sh")
            .to_str()
            .unwrap(),
        &[golden.to_str().unwrap(), layer.to_str().unwrap()],
    );
    let mut network = Network::create(most);
    let placements = network
        .namespaces
        .iter()
        .zip(&network.addresses)
        .map(|(netns, &address)| Placement {
            netns: netns.clone(),
            listen: (address, SSHD_PORT),
            public: (address, PUBLIC_PORT),
        })
        .collect();
    // Declared after the network, so dropped (sshds killed) before it.
    let fleet = Fleet::start_placed(placements, &[layer]);
    let scratch = fleet.scratch("runs");
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let config = fleet.options().ssh_config.expect("fleet ssh_config");
    let addresses: Vec<String> = network.addresses.iter().map(ToString::to_string).collect();
    let hosts_for = |count: usize| Hosts {
        ssh_config: &config,
        addresses: addresses[..count].to_vec(),
        port: PUBLIC_PORT,
    };
    let mut results = Results::new();
    'measuring: for &rtt in &settings.rtts {
        network.set_rtt(Duration::from_millis(rtt));
        let probe = probe_rtt(&config, &addresses[0]);
        eprintln!("netem: RTT {rtt} ms: {probe}");
        println!("<!-- RTT {rtt} ms: {probe} -->");
        // Untimed: compiles and caches each build's components, opens nothing later runs reuse.
        for tool in &settings.tools {
            if matches!(tool, Tool::Kiln { .. }) {
                tool.run(&hosts_for(1), &scratch);
            }
        }
        for (size_index, &count) in settings.hosts.iter().enumerate() {
            let most_runs = settings.runs.max(settings.slow_runs);
            for run in 0..most_runs {
                let tools = &settings.tools;
                let shift = (run + size_index) % tools.len();
                for tool in tools[shift..].iter().chain(&tools[..shift]) {
                    if run >= settings.runs_for(tool, count) {
                        continue;
                    }
                    if interrupted() {
                        break 'measuring;
                    }
                    let sample = tool.run(&hosts_for(count), &scratch);
                    eprintln!(
                        "netem: {rtt} ms, {count} hosts, {}: {:.2} s wall, {:.2} s CPU",
                        tool.label(),
                        sample.wall.as_secs_f64(),
                        sample.cpu.as_secs_f64()
                    );
                    results
                        .entry((rtt, count, tool.label()))
                        .or_default()
                        .push(sample);
                }
            }
        }
    }
    print_table(settings, &results);
}

/// After Ctrl-C (or SIGTERM) the run in flight ends, the table shows what
/// was measured, and the fleet and the network clean up as they go out of
/// scope.
fn interrupted() -> bool {
    let stop = INTERRUPTED.load(Ordering::SeqCst);
    if stop {
        eprintln!("netem: interrupted; printing what was measured");
    }
    stop
}

/// The RTT as a client sees it: a fresh `ssh ... true` (median of 3,
/// several round trips: key exchange, authentication, session), and one
/// line echoed by `cat` over an open ssh session (median of 10: one round
/// trip through ssh, the relay, the veth and back).
fn probe_rtt(config: &Path, address: &str) -> String {
    let ssh = |command: &str| {
        let mut ssh = Command::new("ssh");
        ssh.arg("-F")
            .arg(config)
            .args(["-o", "ControlMaster=no", "-o", "ControlPath=none", "-p"])
            .arg(PUBLIC_PORT.to_string())
            .arg(format!("root@{address}"))
            .arg(command);
        ssh
    };
    let mut logins: Vec<Duration> = (0..3)
        .map(|_| {
            let started = Instant::now();
            let status = ssh("true")
                .stdin(Stdio::null())
                .status()
                .expect("running ssh");
            assert!(status.success(), "probe ssh to {address} failed");
            started.elapsed()
        })
        .collect();
    logins.sort();
    let mut echoes = echo_round_trips(ssh("cat"), 10);
    echoes.sort();
    format!(
        "ssh login + `true` {:.1} ms (median of 3); one line echoed over an open session {:.1} ms (median of 10, min {:.1})",
        logins[1].as_secs_f64() * 1e3,
        echoes[5].as_secs_f64() * 1e3,
        echoes[0].as_secs_f64() * 1e3
    )
}

/// Times `rounds` lines sent to `cat` on the host and read back, after a
/// first line that waits for the session to be up.
fn echo_round_trips(mut command: Command, rounds: usize) -> Vec<Duration> {
    use std::io::{BufRead, BufReader, Write};
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running ssh cat");
    let mut input = child.stdin.take().expect("ssh stdin");
    let mut output = BufReader::new(child.stdout.take().expect("ssh stdout"));
    let mut line = String::new();
    let mut round = |input: &mut std::process::ChildStdin| {
        let started = Instant::now();
        input
            .write_all(b"ping\n")
            .and_then(|_| input.flush())
            .expect("writing to ssh");
        line.clear();
        output.read_line(&mut line).expect("reading from ssh");
        assert_eq!(line, "ping\n", "ssh cat echoed something else");
        started.elapsed()
    };
    round(&mut input);
    let times = (0..rounds).map(|_| round(&mut input)).collect();
    drop(input);
    let _ = child.wait();
    times
}

fn median(samples: &[Sample], field: fn(&Sample) -> Duration) -> f64 {
    let mut values: Vec<f64> = samples.iter().map(|s| field(s).as_secs_f64()).collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn print_table(settings: &Settings, results: &Results) {
    let labels: Vec<String> = settings.tools.iter().map(Tool::label).collect();
    let header: Vec<String> = labels
        .iter()
        .map(|l| format!("{l} wall (CPU) s, median"))
        .collect();
    println!(
        "| RTT ms | hosts | runs ({}) | {} |",
        labels.join(", "),
        header.join(" | ")
    );
    println!("|---:|---:|---:|{}", "---:|".repeat(labels.len()));
    for &rtt in &settings.rtts {
        for &count in &settings.hosts {
            let mut runs = Vec::new();
            let cells: Vec<String> = labels
                .iter()
                .map(|label| match results.get(&(rtt, count, label.clone())) {
                    Some(samples) => {
                        runs.push(samples.len().to_string());
                        format!(
                            "{:.2} ({:.2})",
                            median(samples, |s| s.wall),
                            median(samples, |s| s.cpu)
                        )
                    }
                    None => {
                        runs.push("0".into());
                        "–".into()
                    }
                })
                .collect();
            println!(
                "| {rtt} | {count} | {} | {} |",
                runs.join("/"),
                cells.join(" | ")
            );
        }
    }
    print_ratios(settings, results);
}

fn print_ratios(settings: &Settings, results: &Results) {
    let wall = |rtt, count, label: &str| {
        results
            .get(&(rtt, count, label.to_string()))
            .map(|s| median(s, |s| s.wall))
    };
    let cpu = |rtt, count, label: &str| {
        results
            .get(&(rtt, count, label.to_string()))
            .map(|s| median(s, |s| s.cpu))
    };
    println!();
    for tool in &settings.tools {
        let Tool::Kiln { .. } = tool else { continue };
        let label = tool.label();
        if let (Some(one), Some(sixteen)) = (wall(20, 1, &label), wall(20, 16, &label)) {
            println!(
                "- {label}: 16 hosts / 1 host at 20 ms: {:.2}x (target <= 1.5x)",
                sixteen / one
            );
        }
        for &rtt in &settings.rtts {
            if let (Some(kiln), Some(ansible)) = (wall(rtt, 16, &label), wall(rtt, 16, "ansible")) {
                println!(
                    "- ansible / {label} at 16 hosts, {rtt} ms: {:.1}x (target >= 10x)",
                    ansible / kiln
                );
            }
            for &count in &settings.hosts {
                if let Some(cpu) = cpu(rtt, count, &label) {
                    println!(
                        "- {label} client CPU per host per run, {count} hosts, {rtt} ms: {:.3} s (target <= 0.1 s)",
                        cpu / count as f64
                    );
                }
            }
        }
    }
}

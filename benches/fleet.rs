//! How the wall time of `kiln validate` (test-only, the ten checks of
//! `tests/fixtures/fleet/bench/image.yaml`) grows from 1 to 16 hosts at
//! `--forks 16`, side by side with the same checks as plain shell loops over
//! `ssh` (one connection per check, and one per host), against a fleet of
//! real sshds on loopback (`tests/it/support/sshd_fleet.rs`). A benchmark,
//! not a check, so not part of `cargo test`. Run it with
//! `cargo bench --profile dev --bench fleet` (the profile BENCHMARKS.md
//! measured); it prints a Markdown table for BENCHMARKS.md.

#[path = "../tests/it/support/sshd_fleet.rs"]
mod sshd_fleet;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sshd_fleet::Fleet;

const FLEET_SIZES: [usize; 5] = [1, 2, 4, 8, 16];

/// kiln and the one-ssh-per-host loop are timed this many times at each
/// size (the machine is shared and noisy); the table shows median and best.
const REPETITIONS: usize = 5;

/// The bench manifest's validators as shell commands, in the same order.
const CHECKS: [&str; 10] = [
    "dpkg -s dpkg apt bash >/dev/null",
    "dpkg -s coreutils >/dev/null",
    "dpkg -s debianutils sed grep >/dev/null",
    ". /etc/os-release && [ \"$ID\" = debian ] && dpkg -s base-files >/dev/null",
    "test -r /etc/os-release",
    "grep -q bookworm /etc/apt/sources.list",
    "test -d /root",
    "test -w /tmp",
    "dpkg --print-architecture >/dev/null",
    "arch=$(dpkg --print-architecture) && test -n \"$arch\"",
];

fn main() {
    fleet_validation_wall_time();
}

fn fleet_validation_wall_time() {
    let fleet = Fleet::start(*FLEET_SIZES.iter().max().unwrap());
    // Compiles and caches the components, so no size pays for that.
    kiln_validate(&fleet, 1);
    println!(
        "| hosts | kiln validate, median (best) s | per host s | vs 1 host | ssh loop, one ssh per check s | ssh loop, one ssh per host, median s | per-check loop / kiln | per-host loop / kiln |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut single = None;
    for hosts in FLEET_SIZES {
        let (kiln, kiln_best) = median_and_best(|| kiln_validate(&fleet, hosts));
        // Slow and steady (a handshake per check), so timed once.
        let per_check = ssh_loop(&fleet, hosts, false);
        let (per_host, _) = median_and_best(|| ssh_loop(&fleet, hosts, true));
        let single = *single.get_or_insert(kiln);
        let s = |d: Duration| d.as_secs_f64();
        println!(
            "| {hosts} | {:.2} ({:.2}) | {:.3} | {:.2}x | {:.2} | {:.2} | {:.1}x | {:.2}x |",
            s(kiln),
            s(kiln_best),
            s(kiln) / hosts as f64,
            s(kiln) / s(single),
            s(per_check),
            s(per_host),
            s(per_check) / s(kiln),
            s(per_host) / s(kiln),
        );
    }
}

fn median_and_best(mut measure: impl FnMut() -> Duration) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..REPETITIONS).map(|_| measure()).collect();
    times.sort();
    (times[REPETITIONS / 2], times[0])
}

/// Wall time of `kiln validate --forks 16` against the first `hosts` hosts.
fn kiln_validate(fleet: &Fleet, hosts: usize) -> Duration {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fleet/bench/image.yaml");
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .arg("validate")
        .arg("-F")
        .arg(fleet.options().ssh_config.expect("fleet ssh_config"))
        .args(["--forks", "16", "--manifest"])
        .arg(&manifest);
    for index in 0..hosts {
        command
            .arg("--host")
            .arg(fleet.host(index).spec().to_string());
    }
    timed(&mut command, "kiln validate")
}

/// Wall time of a sequential shell loop doing the same checks over plain
/// ssh: a new connection per check, or one per host running them all.
fn ssh_loop(fleet: &Fleet, hosts: usize, one_ssh_per_host: bool) -> Duration {
    let config = fleet.options().ssh_config.expect("fleet ssh_config");
    let names: Vec<String> = (0..hosts)
        .map(|i| {
            let host = fleet.host(i);
            format!("{}:{}", host.address, host.port)
        })
        .collect();
    let ssh = "ssh -F \"$config\" -o BatchMode=yes -p \"${h#*:}\" \"root@${h%:*}\"";
    let body = if one_ssh_per_host {
        format!("{ssh} {} || exit 1", quote(&CHECKS.join(" && ")))
    } else {
        CHECKS
            .iter()
            .map(|check| format!("{ssh} {} || exit 1", quote(check)))
            .collect::<Vec<_>>()
            .join("\n  ")
    };
    let script = format!("for h in {}; do\n  {body}\ndone", names.join(" "));
    let mut command = Command::new("bash");
    command.arg("-c").arg(script).env("config", config);
    timed(&mut command, "ssh loop")
}

/// Single-quotes `text` for the shell.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Runs `command` and returns its wall time; it must succeed, or the
/// numbers would time a failure.
fn timed(command: &mut Command, what: &str) -> Duration {
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let elapsed = started.elapsed();
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    elapsed
}

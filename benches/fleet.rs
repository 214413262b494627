//! How the wall time of `kiln validate` (test-only, the ten checks of
//! `tests/fixtures/fleet/bench/image.yaml`) grows from 1 to 16 hosts at
//! `--forks 16`, side by side with the same checks as plain shell loops over
//! `ssh` (one connection per check, and one per host), against a fleet of
//! real sshds on loopback (`tests/it/support/sshd_fleet.rs`). A benchmark,
//! not a check, so not part of `cargo test`. Run it with
//! `cargo bench --profile dev --bench fleet` (the profile BENCHMARKS.md
//! measured); it prints a Markdown table for BENCHMARKS.md.
//!
//! `KILN_OLD_KILN=/path/to/kiln` times that binary too, alternating with
//! this one, and adds client CPU (kiln plus its ssh children, from
//! `getrusage(RUSAGE_CHILDREN)`) per host per run. `KILN_FLEET_BENCH`
//! picks what runs: `fleet` (the default, the table above), `scripts` (the
//! cost of one `script` validator: a manifest of 41 inline scripts against
//! one of 1 on one host, best of 3, wall and client CPU, old and new side
//! by side, plus the cost of one command through the library), or `all`.
//! `KILN_FLEET_NEW_SSH_OPTIONS="Opt=value …"` passes each as `-o` to this
//! build's runs only: with `KILN_OLD_KILN` naming this same build, it
//! measures what an ssh setting (the key exchange, say) costs a host.

#[path = "../tests/it/support/sshd_fleet.rs"]
mod sshd_fleet;

use std::path::{Path, PathBuf};
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
    let what = std::env::var("KILN_FLEET_BENCH").unwrap_or_else(|_| "fleet".into());
    let old = std::env::var_os("KILN_OLD_KILN").map(PathBuf::from);
    let fleet = Fleet::start(if what == "scripts" {
        1
    } else {
        *FLEET_SIZES.iter().max().unwrap()
    });
    if what == "scripts" || what == "all" {
        script_cost(&fleet, old.as_deref());
        one_command_cost(&fleet);
    }
    if what == "fleet" || what == "all" {
        match &old {
            Some(old) => fleet_old_and_new(&fleet, old),
            None => fleet_validation_wall_time(&fleet),
        }
    }
}

fn fleet_validation_wall_time(fleet: &Fleet) {
    // Compiles and caches the components, so no size pays for that.
    kiln_validate(fleet, 1);
    println!(
        "| hosts | kiln validate, median (best) s | per host s | vs 1 host | ssh loop, one ssh per check s | ssh loop, one ssh per host, median s | per-check loop / kiln | per-host loop / kiln |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut single = None;
    for hosts in FLEET_SIZES {
        let (kiln, kiln_best) = median_and_best(|| kiln_validate(fleet, hosts));
        // Slow and steady (a handshake per check), so timed once.
        let per_check = ssh_loop(fleet, hosts, false);
        let (per_host, _) = median_and_best(|| ssh_loop(fleet, hosts, true));
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
    kiln_run(
        Path::new(env!("CARGO_BIN_EXE_kiln")),
        fleet,
        hosts,
        &bench_manifest(),
    )
    .wall
}

fn bench_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fleet/bench/image.yaml")
}

/// Wall time and client CPU of one `kiln validate` run.
#[derive(Debug, Clone, Copy)]
struct Cost {
    wall: Duration,
    cpu: Duration,
}

/// `kiln validate --forks 16` of `manifest` against the first `hosts` hosts.
fn kiln_run(kiln: &Path, fleet: &Fleet, hosts: usize, manifest: &Path) -> Cost {
    let mut command = Command::new(kiln);
    command
        .arg("validate")
        .arg("-F")
        .arg(fleet.options().ssh_config.expect("fleet ssh_config"))
        .args(["--forks", "16", "--manifest"])
        .arg(manifest);
    for index in 0..hosts {
        command
            .arg("--host")
            .arg(fleet.host(index).spec().to_string());
    }
    if kiln == Path::new(env!("CARGO_BIN_EXE_kiln")) {
        let options = std::env::var("KILN_FLEET_NEW_SSH_OPTIONS").unwrap_or_default();
        for option in options.split_whitespace() {
            command.arg("-o").arg(option);
        }
    }
    let before = children_cpu();
    let wall = timed(&mut command, "kiln validate");
    Cost {
        wall,
        cpu: children_cpu().saturating_sub(before),
    }
}

/// User plus system time of this process's waited-for children so far.
fn children_cpu() -> Duration {
    rusage_cpu(libc::RUSAGE_CHILDREN)
}

fn rusage_cpu(who: libc::c_int) -> Duration {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The bench's sizes when old and new are compared (each run twice).
const COMPARED_SIZES: [usize; 3] = [1, 4, 16];

/// The fleet table for an old kiln and this one, alternating, medians of 3.
fn fleet_old_and_new(fleet: &Fleet, old: &Path) {
    let new = Path::new(env!("CARGO_BIN_EXE_kiln"));
    let manifest = bench_manifest();
    kiln_run(old, fleet, 1, &manifest);
    kiln_run(new, fleet, 1, &manifest);
    println!("| hosts | old wall, median s | new wall, median s | new / old | old vs 1 host | new vs 1 host | old client CPU per host s | new client CPU per host s |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut single: Option<(Duration, Duration)> = None;
    for hosts in COMPARED_SIZES {
        let mut runs: [Vec<Cost>; 2] = [Vec::new(), Vec::new()];
        for round in 0..3 {
            // Alternating which goes first, so neither always runs warm.
            for which in [round % 2, 1 - round % 2] {
                let kiln = if which == 0 { old } else { new };
                runs[which].push(kiln_run(kiln, fleet, hosts, &manifest));
            }
        }
        let median = |costs: &[Cost], pick: fn(&Cost) -> Duration| {
            let mut values: Vec<Duration> = costs.iter().map(pick).collect();
            values.sort();
            values[values.len() / 2]
        };
        let (old_wall, new_wall) = (median(&runs[0], |c| c.wall), median(&runs[1], |c| c.wall));
        let (old_cpu, new_cpu) = (median(&runs[0], |c| c.cpu), median(&runs[1], |c| c.cpu));
        let (old_one, new_one) = *single.get_or_insert((old_wall, new_wall));
        let s = |d: Duration| d.as_secs_f64();
        println!(
            "| {hosts} | {:.2} | {:.2} | {:.2}x | {:.2}x | {:.2}x | {:.3} | {:.3} |",
            s(old_wall),
            s(new_wall),
            s(new_wall) / s(old_wall),
            s(old_wall) / s(old_one),
            s(new_wall) / s(new_one),
            s(old_cpu) / hosts as f64,
            s(new_cpu) / hosts as f64,
        );
    }
}

/// A manifest of `count` inline `script` validators.
fn scripts_manifest(dir: &Path, count: usize) -> PathBuf {
    let mut yaml = String::from("validators:\n");
    for n in 0..count {
        yaml.push_str(&format!(
            "  - script:\n      check-{n}:\n        inline: test -d /root\n"
        ));
    }
    let path = dir.join(format!("scripts-{count}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// What one `script` validator costs: 41 scripts against 1 on one host,
/// best of 3, old and new alternating.
fn script_cost(fleet: &Fleet, old: Option<&Path>) {
    let dir = tempfile::tempdir().unwrap();
    let (one, many) = (
        scripts_manifest(dir.path(), 1),
        scripts_manifest(dir.path(), 41),
    );
    let new = PathBuf::from(env!("CARGO_BIN_EXE_kiln"));
    let mut kilns = vec![("new", new)];
    if let Some(old) = old {
        kilns.insert(0, ("old", old.to_path_buf()));
    }
    for (_, kiln) in &kilns {
        kiln_run(kiln, fleet, 1, &one);
    }
    let mut best = vec![[None::<Cost>; 2]; kilns.len()];
    for round in 0..3 {
        let mut order: Vec<usize> = (0..kilns.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for which in order {
            for (slot, manifest) in [&one, &many].into_iter().enumerate() {
                let cost = kiln_run(&kilns[which].1, fleet, 1, manifest);
                let kept = &mut best[which][slot];
                *kept = Some(match *kept {
                    Some(k) => Cost {
                        wall: k.wall.min(cost.wall),
                        cpu: k.cpu.min(cost.cpu),
                    },
                    None => cost,
                });
            }
        }
    }
    println!("| kiln | 1 script: wall s / CPU s | 41 scripts: wall s / CPU s | per script: wall ms | per script: client CPU ms |");
    println!("|---|---:|---:|---:|---:|");
    for (which, (name, _)) in kilns.iter().enumerate() {
        let [Some(one), Some(many)] = best[which] else {
            unreachable!()
        };
        let per = |a: Duration, b: Duration| (b.as_secs_f64() - a.as_secs_f64()) * 1000.0 / 40.0;
        println!(
            "| {name} | {:.3} / {:.3} | {:.3} / {:.3} | {:.1} | {:.1} |",
            one.wall.as_secs_f64(),
            one.cpu.as_secs_f64(),
            many.wall.as_secs_f64(),
            many.cpu.as_secs_f64(),
            per(one.wall, many.wall),
            per(one.cpu, many.cpu),
        );
    }
}

/// One command through this build's library: 200 `true`s over one
/// connection against none, wall and kiln's CPU (its own and the ssh
/// processes', counted once they are reaped when the target closes).
fn one_command_cost(fleet: &Fleet) {
    use kiln::remote::ssh::SshRemote;
    use kiln::remote::{Remote, RemoteCommand};
    const COMMANDS: u32 = 200;
    let measure = |commands: u32| {
        let cpu = rusage_cpu(libc::RUSAGE_SELF) + children_cpu();
        let started = Instant::now();
        let mut target = SshRemote::connect(&fleet.host(0).spec(), &fleet.options()).unwrap();
        let command = RemoteCommand::new("true");
        for _ in 0..commands {
            assert_eq!(target.run(&command).unwrap().exit_code, 0);
        }
        drop(target);
        let wall = started.elapsed();
        let cpu = (rusage_cpu(libc::RUSAGE_SELF) + children_cpu()).saturating_sub(cpu);
        (wall, cpu)
    };
    measure(5);
    let best = |commands| {
        (0..3)
            .map(|_| measure(commands))
            .reduce(|a, b| (a.0.min(b.0), a.1.min(b.1)))
            .unwrap()
    };
    let (none, many) = (best(0), best(COMMANDS));
    println!(
        "connect and close (login, probe, session; library, best of 3): {:.1} ms wall, {:.1} ms client CPU",
        none.0.as_secs_f64() * 1000.0,
        none.1.as_secs_f64() * 1000.0
    );
    let per = |a: Duration, b: Duration| {
        (b.as_secs_f64() - a.as_secs_f64()) * 1000.0 / f64::from(COMMANDS)
    };
    println!(
        "one command (library, best of 3): {:.2} ms wall, {:.2} ms client CPU",
        per(none.0, many.0),
        per(none.1, many.1)
    );
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

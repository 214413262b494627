//! What one round trip costs on the disk-image target: opens
//! `$KILN_BENCH_IMAGE` (a Debian image, e.g. the demo image) through
//! `ImageRemote` under software emulation, once as kiln runs by default
//! (quick inspection, commands through the session chroot) and once as it
//! ran before those existed (libguestfs's inspection and `sh`), and times
//! in each: the open (launch + inspect + mount), `Remote::run` of `true`,
//! of a command with output on both streams, of one with 3 MB of output
//! (the large-output path), `read_file` and the close; then `write_file` in
//! a reconciling session whose overlay is discarded. Prints a Markdown
//! table for BENCHMARKS.md.
//!
//!   KILN_BENCH_IMAGE=IMG cargo bench --bench image_roundtrip   # ROUNDS=N (default 20)

use std::time::{Duration, Instant};

use kiln::remote::image::{Accel, CommandChannel, ImageOptions, ImageRemote};
use kiln::remote::{FileRead, FileWrite, Remote, RemoteCommand};

fn main() {
    let Some(image) = std::env::var_os("KILN_BENCH_IMAGE") else {
        eprintln!("image_roundtrip: set KILN_BENCH_IMAGE to a Debian disk image; skipped");
        return;
    };
    let rounds: u32 = std::env::var("ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let options = ImageOptions {
        test_only: true,
        accel: Accel::Tcg,
        network: false,
        ..ImageOptions::new(&image)
    };
    let default = measure_session(&options, rounds);
    let before = measure_session(
        &ImageOptions {
            command_channel: CommandChannel::DaemonSh,
            full_inspection: true,
            ..options.clone()
        },
        rounds,
    );
    println!("| image-target operation | default (quick inspection, session chroot) | libguestfs inspection and `sh` | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    for ((what, now), (_, then)) in default.iter().zip(&before) {
        println!(
            "| {what} | {} | {} | {:.2} |",
            shown(*now),
            shown(*then),
            now.as_secs_f64() / then.as_secs_f64()
        );
    }

    let options = ImageOptions {
        test_only: false,
        ..options
    };
    let mut session = ImageRemote::open(&options, &mut |_| {}).expect("the image opens");
    let write = median(rounds, || {
        session
            .write_file(&FileWrite::new("/tmp/kiln-bench", &[b'x'; 100], 0o644))
            .unwrap();
    });
    session.discard();
    println!(
        "| `write_file` of 100 bytes (reconciling session) | {} | | |",
        shown(write)
    );
}

/// Opens a session with `options` and times each operation in it.
fn measure_session(options: &ImageOptions, rounds: u32) -> Vec<(&'static str, Duration)> {
    let mut rows = Vec::new();
    let started = Instant::now();
    let mut session = ImageRemote::open(options, &mut |_| {}).expect("the image opens");
    rows.push((
        "open test-only, no network (launch + inspect + mount)",
        started.elapsed(),
    ));
    let run = |session: &mut ImageRemote, script: &str| {
        session.run(&RemoteCommand::new(script)).expect("runs")
    };
    rows.push((
        "`Remote::run` of `true`",
        median(rounds, || {
            run(&mut session, "true");
        }),
    ));
    rows.push((
        "`Remote::run` with stdout, stderr and exit 3",
        median(rounds, || {
            let out = run(&mut session, "echo out; echo err >&2; exit 3");
            assert_eq!((out.exit_code, &out.stdout[..]), (3, &b"out\n"[..]));
        }),
    ));
    rows.push((
        "`Remote::run` with 3 MB of stdout (larger than one protocol message)",
        median(rounds.min(5), || {
            let out = run(&mut session, "head -c 3000000 /dev/zero");
            assert_eq!(out.stdout.len(), 3_000_000);
        }),
    ));
    rows.push((
        "`read_file` of /etc/os-release",
        median(rounds, || {
            session
                .read_file(&FileRead::new("/etc/os-release"))
                .unwrap()
                .unwrap();
        }),
    ));
    let started = Instant::now();
    session.discard();
    rows.push(("close a test-only session", started.elapsed()));
    rows
}

/// The median time of `rounds` calls after one warm-up call.
fn median(rounds: u32, mut f: impl FnMut()) -> Duration {
    f();
    let mut samples: Vec<Duration> = (0..rounds.max(1))
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn shown(d: Duration) -> String {
    if d >= Duration::from_secs(2) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{:.0} ms", d.as_secs_f64() * 1e3)
    }
}

//! What one round trip costs on the disk-image target: opens
//! `$KILN_BENCH_IMAGE` (a Debian image, e.g. the demo image) through
//! `ImageSession` under software emulation and times `Remote::run` of `true`,
//! of a command with output on both streams, of one with 3 MB of output (the
//! large-output path), `read_file`, and, in a reconciling session whose
//! overlay is discarded, `write_file`. Also times the session's own open
//! (launch + inspect + mount) and close. Prints a Markdown table for
//! BENCHMARKS.md.
//!
//!   KILN_BENCH_IMAGE=IMG cargo bench --bench image_roundtrip   # ROUNDS=N (default 20)

use std::time::{Duration, Instant};

use kiln::remote::{Remote, RemoteCommand};
use kiln::target::image::{Accel, ImageOptions, ImageSession};

fn main() {
    let Some(image) = std::env::var_os("KILN_BENCH_IMAGE") else {
        eprintln!("image_roundtrip: set KILN_BENCH_IMAGE to a Debian disk image; skipped");
        return;
    };
    let rounds: u32 = std::env::var("ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    println!("| image-target operation | median | notes |");
    println!("| --- | ---: | --- |");

    let options = ImageOptions {
        test_only: true,
        accel: Accel::Tcg,
        network: false,
        ..ImageOptions::new(&image)
    };
    let started = Instant::now();
    let mut session = ImageSession::open(&options, &mut |_| {}).expect("the image opens");
    row(
        "open test-only (launch + inspect + mount)",
        started.elapsed(),
        "no network; once",
    );
    let run = |session: &mut ImageSession, script: &str| {
        session.run(&RemoteCommand::new(script)).expect("runs")
    };
    row(
        "`Remote::run` of `true`",
        median(rounds, || {
            run(&mut session, "true");
        }),
        "",
    );
    row(
        "`Remote::run` with stdout, stderr and exit 3",
        median(rounds, || {
            let out = run(&mut session, "echo out; echo err >&2; exit 3");
            assert_eq!((out.exit_code, &out.stdout[..]), (3, &b"out\n"[..]));
        }),
        "",
    );
    row(
        "`Remote::run` with 3 MB of stdout",
        median(rounds.min(5), || {
            let out = run(&mut session, "head -c 3000000 /dev/zero");
            assert_eq!(out.stdout.len(), 3_000_000);
        }),
        "larger than one protocol message",
    );
    row(
        "`read_file` of /etc/os-release",
        median(rounds, || {
            session.read_file("/etc/os-release").unwrap().unwrap();
        }),
        "",
    );
    let started = Instant::now();
    session.discard();
    row("close test-only session", started.elapsed(), "once");

    let options = ImageOptions {
        test_only: false,
        ..options
    };
    let mut session = ImageSession::open(&options, &mut |_| {}).expect("the image opens");
    row(
        "`write_file` of 100 bytes",
        median(rounds, || {
            session
                .write_file("/tmp/kiln-bench", &[b'x'; 100], 0o644)
                .unwrap();
        }),
        "reconciling session, overlay discarded",
    );
    session.discard();
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

fn row(what: &str, d: Duration, notes: &str) {
    println!("| {what} | {:.1} ms | {notes} |", d.as_secs_f64() * 1e3);
}

//! `kiln validate`: the same manifests against live hosts over SSH, one host
//! or a fleet, in parallel up to `--forks`. One host's failure never stops
//! the others; a closing table and `--report` say how each fared.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln::interpreter::RunError;
use kiln::remote::ssh::{HostSpec, SshOptions, SshRemote};
use kiln::text::one_line;

use super::progress::{self, print_line_logging, CommandLog, Progress};
use super::report::Reporter;
use super::target_result::TargetResult;
use super::{prepare, shown, shown_path, Common, ManifestChoice, Paint, Prepared, Style};

pub const AFTER_HELP: &str = "\
Test-only by default; --reconcile prepares the hosts. kiln's options go before PLUGIN VERSION (or a
manifest path); only what follows it is the plugin's, as --NAME VALUE.

Examples:
  kiln validate --host admin@10.0.0.5 demo 1.0
  kiln validate --inventory hosts.ini --forks 16 --reconcile spark 2.3.2
  kiln validate --host web1 --manifest image.yaml --report results.json";

#[derive(Args)]
pub struct ValidateArgs {
    /// A host to validate: [USER@]HOST[:PORT] or an ssh_config alias. Repeatable.
    #[arg(long = "host", value_name = "[USER@]HOST[:PORT]")]
    hosts: Vec<String>,

    /// A file listing hosts: one per line, or an Ansible inventory (INI or YAML).
    #[arg(long, value_name = "FILE")]
    inventory: Option<PathBuf>,

    /// Make the hosts match the manifest instead of only checking them.
    #[arg(long)]
    reconcile: bool,

    /// How many hosts run at once.
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    forks: u16,

    /// Seconds to wait for a host to answer (and for a dead connection to be noticed).
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    connect_timeout: u64,

    /// Seconds one command may run (default: the validator's own limit).
    #[arg(long, value_name = "SECONDS")]
    command_timeout: Option<u64>,

    /// Trust hosts whose keys are not yet in known_hosts, and record them.
    /// A changed key is refused all the same.
    #[arg(long)]
    accept_new_host_keys: bool,

    /// An ssh_config file to use instead of ~/.ssh/config.
    #[arg(short = 'F', long = "ssh-config", value_name = "FILE")]
    ssh_config: Option<PathBuf>,

    /// An extra ssh option (`-o Name=value`). Repeatable.
    #[arg(short = 'o', long = "ssh-option", value_name = "OPTION")]
    ssh_options: Vec<String>,

    #[command(flatten)]
    target: ManifestChoice,
}

/// How one host fared.
struct HostResult {
    host: String,
    distro: Option<String>,
    result: TargetResult,
    failing: String,
    elapsed: Duration,
    passed: bool,
    summary: Option<kiln::interpreter::RunSummary>,
    commands: CommandLog,
    /// The error that kept the host from running anything.
    error: Option<String>,
}

pub fn run(common: &Common, style: Style, args: &ValidateArgs) -> Result<i32> {
    let mut reporter = Reporter::new("validate", &args.target.output, !args.reconcile);
    // The hosts named are in the report even when the manifest fails to load.
    for host in hosts(args).unwrap_or_default() {
        reporter.plan("host", &host.to_string());
    }
    let result = reporter
        .start(style.quiet)
        .and_then(|()| validate(common, style, args, &mut reporter));
    reporter.finish(result)
}

/// A line on the terminal (unless `-q`) and in the log: `painted` may
/// carry kiln's colours, `plain` is the same without them.
fn say(style: Style, painted: &str, plain: &str) {
    if style.quiet {
        progress::log_only(plain);
    } else {
        print_line_logging(painted, plain);
    }
}

fn validate(
    common: &Common,
    style: Style,
    args: &ValidateArgs,
    reporter: &mut Reporter,
) -> Result<i32> {
    let prepared = prepare(common, &args.target, "validate")?;
    let Some(Prepared {
        kiln,
        manifest,
        arguments,
        ..
    }) = prepared
    else {
        return Ok(0);
    };
    reporter.manifest_loaded(&manifest, &arguments);
    let hosts = hosts(args)?;
    let options = SshOptions {
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
        command_timeout: args.command_timeout.map(Duration::from_secs),
        accept_new_host_keys: args.accept_new_host_keys,
        ssh_config: args.ssh_config.clone(),
        extra_options: args.ssh_options.clone(),
    };
    let test_only = !args.reconcile;
    // From here Ctrl-C stops the run in order (kiln::interrupt): no new
    // host or validator starts, uploaded scripts go, masters close.
    kiln::interrupt::install().context("preparing for Ctrl-C")?;
    let started = reporter.started();
    let line = format!(
        "[{:>6.1}] {} {} host(s) with {} ({} at a time)",
        0.0,
        if test_only { "checking" } else { "reconciling" },
        hosts.len(),
        shown_path(&manifest.path),
        usize::from(args.forks).min(hosts.len())
    );
    say(style, &line, &line);
    // Host names come from inventories: shown escaped, everywhere.
    let width = hosts
        .iter()
        .map(|h| shown(&h.to_string()).chars().count())
        .max()
        .unwrap_or(4);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, HostResult)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..usize::from(args.forks).min(hosts.len()) {
            scope.spawn(|| loop {
                if kiln::interrupt::requested().is_some() {
                    break;
                }
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(spec) = hosts.get(index) else { break };
                let prefix = format!("{:width$} ", shown(&spec.to_string()));
                let result = one_host(
                    &kiln,
                    &manifest,
                    &arguments,
                    spec,
                    &options,
                    test_only,
                    common.verbose,
                    style,
                    prefix,
                    started,
                );
                results.lock().unwrap().push((index, result));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(index, _)| *index);
    let results: Vec<HostResult> = results.into_iter().map(|(_, r)| r).collect();
    // Printed (or, with -q, only logged).
    print_table(&results, style);
    let results_len = results.len();
    let failed = results.iter().filter(|r| !r.passed).count();
    let stop = kiln::interrupt::requested();
    progress::print_line(&format!(
        "{} of {} hosts passed in {:.1} s{}",
        results.len() - failed,
        results.len(),
        started.elapsed().as_secs_f64(),
        match stop {
            Some(stop @ kiln::interrupt::Stop::Timeout(_)) => format!("; {stop}"),
            _ => String::new(),
        }
    ));
    for (spec, r) in hosts.iter().zip(&results) {
        let name = spec.to_string();
        match (&r.summary, &r.error) {
            (Some(summary), _) => {
                reporter.add_run("host", &name, r.result, summary, r.elapsed, &r.commands)
            }
            (None, error) => reporter.add_failed(
                "host",
                &name,
                r.result,
                error.as_deref().unwrap_or(""),
                r.elapsed,
            ),
        }
    }
    if let Some(stop) = stop {
        let message = format!(
            "{stop}; {results_len} of {} hosts were started, and no validator after the {}",
            hosts.len(),
            match stop {
                kiln::interrupt::Stop::Signal(_) => "interrupt",
                kiln::interrupt::Stop::Timeout(_) => "deadline",
            }
        );
        eprintln!("kiln: {message}");
        reporter.stopped(&stop, &message);
        return Ok(stop.exit_code());
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

fn hosts(args: &ValidateArgs) -> Result<Vec<HostSpec>> {
    let mut hosts: Vec<HostSpec> = Vec::new();
    for text in &args.hosts {
        hosts.push(text.parse().with_context(|| format!("--host {text}"))?);
    }
    if let Some(path) = &args.inventory {
        hosts.extend(kiln::inventory::load_inventory(path)?);
    }
    if hosts.is_empty() {
        bail!("name the hosts to validate with --host [USER@]HOST[:PORT] or --inventory FILE");
    }
    let mut seen = std::collections::HashSet::new();
    hosts.retain(|h| seen.insert(h.clone()));
    Ok(hosts)
}

#[allow(clippy::too_many_arguments)]
fn one_host(
    kiln: &kiln::Kiln,
    manifest: &kiln::manifest::Manifest,
    arguments: &std::collections::BTreeMap<String, String>,
    spec: &HostSpec,
    options: &SshOptions,
    test_only: bool,
    verbose: u8,
    style: Style,
    prefix: String,
    started: Instant,
) -> HostResult {
    let host_started = Instant::now();
    let name = spec.to_string();
    progress::step_start(&prefix, "connecting");
    let connected = SshRemote::connect(spec, options);
    progress::steps_clear(&prefix);
    let target = match connected {
        Ok(target) => target,
        Err(error) => {
            let message = error.to_string();
            // The prefix already names the host; most SSH errors start with it too.
            let why = message
                .strip_prefix(&format!("{name}: "))
                .unwrap_or(&message);
            let line = |word: &str| format!("{}{word}: {}", one_line(&prefix), one_line(why));
            say_host_error(style, started, &line, "UNREACHABLE");
            return HostResult {
                host: shown(&name),
                distro: None,
                result: TargetResult::Unreachable,
                failing: String::new(),
                elapsed: host_started.elapsed(),
                passed: false,
                summary: None,
                commands: CommandLog::default(),
                error: Some(message),
            };
        }
    };
    let commands = CommandLog::default();
    let observer = Box::new(Progress::new(
        prefix.clone(),
        verbose,
        style,
        started.elapsed(),
        commands.clone(),
    ));
    let (summary, target) = kiln.run(manifest, target, arguments, test_only, observer);
    progress::steps_clear(&prefix);
    drop(target);
    let (result, failing) = match &summary.outcome {
        Ok(()) => (TargetResult::Passed, String::new()),
        Err(RunError::Unreachable { validator, .. }) => {
            (TargetResult::Unreachable, validator.clone())
        }
        Err(RunError::Distro(message)) => (TargetResult::Unreachable, message.clone()),
        Err(RunError::Validation(e)) => (TargetResult::Failed, e.path.clone()),
        Err(other) => (TargetResult::Failed, other.to_string()),
    };
    // After Ctrl-C (or --timeout) the failure is the stop, not the host.
    let result = match kiln::interrupt::requested() {
        Some(stop) if !summary.passed() => TargetResult::after(stop),
        _ => result,
    };
    // The failing cell may quote what the target said (its distro, an error).
    let failing = one_line(&failing);
    if let Err(error) = &summary.outcome {
        let line =
            |word: &str| format!("{} {word}: {}", shown(&name), progress::failure_line(error));
        say_host_error(style, started, &line, result.shouted());
    }
    HostResult {
        host: shown(&name),
        distro: summary.distro.as_deref().map(one_line),
        passed: summary.passed(),
        result,
        failing,
        elapsed: host_started.elapsed(),
        summary: Some(summary),
        commands,
        error: None,
    }
}

/// The closing table; its cells were escaped when the results were made.
/// A host's error line, `line(word)` with the result word painted on a
/// terminal; with -q it still reaches stderr.
fn say_host_error(
    style: Style,
    started: Instant,
    line: &dyn Fn(&str) -> String,
    word: &'static str,
) {
    let painted = line(&style.paint(word, Paint::Bad));
    if style.quiet {
        eprintln!("kiln: {painted}");
    }
    let at = started.elapsed().as_secs_f64();
    say(
        style,
        &format!("[{at:>6.1}] {painted}"),
        &format!("[{at:>6.1}] {}", line(word)),
    );
}

fn print_table(results: &[HostResult], style: Style) {
    let w_host = results
        .iter()
        .map(|r| r.host.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let w_distro = results
        .iter()
        .map(|r| r.distro.as_deref().unwrap_or("-").chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    let w_failing = results
        .iter()
        .map(|r| r.failing.chars().count())
        .max()
        .unwrap_or(0)
        .max(17);
    let header = format!(
        "{:w_host$}  {:w_distro$}  {:11}  {:w_failing$}  TIME",
        "HOST", "DISTRO", "RESULT", "FAILING VALIDATOR"
    );
    say(style, "", "");
    say(style, &header, &header);
    for r in results {
        // Padded by hand: colour codes take no room on the screen.
        // Only kiln's own words are ever painted.
        let (word, paint) = (r.result.as_str(), r.result.paint());
        let row = |result: &str| {
            format!(
                "{:w_host$}  {:w_distro$}  {result}{}  {:w_failing$}  {:.1} s",
                r.host,
                r.distro.as_deref().unwrap_or("-"),
                " ".repeat(11usize.saturating_sub(word.len())),
                if r.failing.is_empty() {
                    "-"
                } else {
                    &r.failing
                },
                r.elapsed.as_secs_f64()
            )
        };
        say(style, &row(&style.paint(word, paint)), &row(word));
    }
}

//! `--report FILE`: what a run did, for programs. JSON (its schema is
//! docs/report.schema.json) or JUnit XML (`--report-format junit`, one
//! testsuite per image or host, one testcase per validator). Once asked
//! for, a report is always written: also when the manifest does not load
//! or a target cannot be reached, so a CI job always has a file to read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, ValueEnum};
use kiln::interpreter::{RunError, RunSummary, Status};
use kiln::manifest::Manifest;
use kiln::text::first_line;
use serde::Serialize;

use super::progress::{self, CommandLog, CommandReport, ConsoleGuard};
use super::target_result::TargetResult;
use super::{one_line_error, shown, shown_path};

/// The report's version; it changes when a field changes meaning or goes.
pub const SCHEMA_VERSION: u32 = 2;

/// Where a run's results and timeline go besides the terminal.
#[derive(Args, Clone)]
pub struct OutputArgs {
    /// Write the results to FILE: every validator with its status, also
    /// when the run fails early (schema: docs/report.schema.json).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// The --report format: json, or junit (JUnit XML for CI test
    /// reporters: one testsuite per image or host, one testcase per validator).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "json")]
    pub report_format: ReportFormat,

    /// Write the whole timeline to FILE: every line, every command with its
    /// environment entries, exit code and complete output, whatever -v says.
    /// (`--logfile`, oslo's older spelling, works too.)
    #[arg(long, value_name = "FILE", alias = "logfile")]
    pub log_file: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Json,
    Junit,
}

/// The whole `--report` file (JSON).
#[derive(Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub kiln_version: &'static str,
    pub command: &'static str,
    /// kiln's command line after the program name, escaped.
    pub arguments: Vec<String>,
    /// UTC, RFC 3339.
    pub started_at: String,
    pub finished_at: String,
    pub elapsed_seconds: f64,
    /// `None` when no manifest could be named.
    pub manifest: Option<String>,
    /// The manifest arguments as given and defaulted.
    pub manifest_arguments: BTreeMap<String, String>,
    pub test_only: bool,
    pub passed: bool,
    pub exit_code: i32,
    /// Why the run stopped before or outside any validator (a manifest
    /// that did not load, an image that could not be written).
    pub error: Option<String>,
    pub targets: Vec<TargetReport>,
}

/// One target in a report.
#[derive(Serialize)]
pub struct TargetReport {
    pub target: String,
    /// `image` or `host`.
    pub kind: &'static str,
    pub distro: Option<String>,
    pub passed: bool,
    /// What became of the target (see [`TargetResult`]).
    pub result: TargetResult,
    pub error: Option<ErrorReport>,
    /// Every validator of the manifest, in manifest order.
    pub validators: Vec<ValidatorReport>,
    pub commands: usize,
    pub elapsed_seconds: f64,
}

#[derive(Serialize)]
pub struct ErrorReport {
    pub validator: Option<String>,
    pub location: Option<String>,
    pub message: String,
}

#[derive(Serialize)]
pub struct ValidatorReport {
    pub path: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub summary: String,
    pub flow_control: bool,
    /// `passed`, `changed`, `failed`, `skipped` (its branch was not taken)
    /// or `not run` (the run stopped before it).
    pub status: &'static str,
    pub changes: Vec<String>,
    pub message: Option<String>,
    /// How often it ran in the pack or check (retries and re-runs count).
    /// A `--verify` pass keeps the pack's status, runs and time; only its
    /// commands are added (see `merge_verify`), and a failure in it fails
    /// the image.
    pub runs: usize,
    pub elapsed_seconds: f64,
    pub commands: Vec<CommandReport>,
}

/// A manifest's validators, in manifest order (the root `all` left out).
struct NodeInfo {
    path: String,
    type_name: String,
    summary: String,
    flow_control: bool,
}

/// Collects a run's report as it goes, and writes it however the run ends.
pub struct Reporter {
    command: &'static str,
    output: OutputArgs,
    started: Instant,
    started_at: SystemTime,
    test_only: bool,
    manifest: Option<String>,
    manifest_arguments: BTreeMap<String, String>,
    nodes: Vec<NodeInfo>,
    /// Targets named on the command line, reported as not run (or as the
    /// error's) when the run ends before reaching them.
    planned: Vec<(&'static str, String)>,
    targets: Vec<TargetReport>,
    console: Option<ConsoleGuard>,
    /// Why the run stopped early (Ctrl-C, `--timeout`): the report's
    /// `error`, and the result of targets it never reached.
    stop: Option<(TargetResult, String)>,
}

impl Reporter {
    pub fn new(command: &'static str, output: &OutputArgs, test_only: bool) -> Reporter {
        Reporter {
            command,
            output: output.clone(),
            started: Instant::now(),
            started_at: SystemTime::now(),
            test_only,
            manifest: None,
            manifest_arguments: BTreeMap::new(),
            nodes: Vec::new(),
            planned: Vec::new(),
            targets: Vec::new(),
            console: None,
            stop: None,
        }
    }

    /// Starts the console (status line, heartbeats, `--log-file`); `quiet`
    /// (`-q`) keeps the terminal free of status lines and heartbeats.
    pub fn start(&mut self, quiet: bool) -> anyhow::Result<()> {
        let header = format!(
            "kiln {} {} started {} ({})",
            env!("CARGO_PKG_VERSION"),
            self.command,
            rfc3339(self.started_at),
            arguments().join(" ")
        );
        self.console = Some(progress::start_console(
            self.started,
            self.output.log_file.as_deref(),
            &header,
            quiet,
        )?);
        Ok(())
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// A target the run means to reach.
    pub fn plan(&mut self, kind: &'static str, name: &str) {
        self.planned.push((kind, name.to_string()));
    }

    pub fn manifest_loaded(&mut self, manifest: &Manifest, arguments: &BTreeMap<String, String>) {
        self.manifest = Some(shown_path(&manifest.path));
        // With the defaults filled in, as the run sees them.
        let resolved = kiln::interpreter::resolve_arguments(manifest, arguments)
            .unwrap_or_else(|_| arguments.clone());
        self.manifest_arguments = resolved
            .iter()
            .map(|(name, value)| (shown(name), shown(value)))
            .collect();
        self.target_manifest(manifest);
    }

    /// The manifest whose validators the targets added next list, when
    /// targets run different manifests (`kiln pack --batch`); the report's
    /// top-level `manifest` is left as it is.
    pub fn target_manifest(&mut self, manifest: &Manifest) {
        self.nodes.clear();
        manifest.root.walk(&mut |node, depth| {
            if depth > 0 {
                self.nodes.push(NodeInfo {
                    path: node.path.clone(),
                    type_name: node.type_name.clone(),
                    summary: node.summary.clone(),
                    flow_control: node.is_flow_control(),
                });
            }
        });
    }

    /// A target's results. Every string that a target, a component or a
    /// file name could have supplied is escaped: a report is read with
    /// `jq -r` and `cat` as often as by programs.
    #[allow(clippy::too_many_arguments)]
    pub fn add_run(
        &mut self,
        kind: &'static str,
        target: &str,
        result: TargetResult,
        summary: &RunSummary,
        elapsed: Duration,
        commands: &CommandLog,
    ) {
        let failed_at = match &summary.outcome {
            Ok(()) => None,
            Err(RunError::Validation(e)) => Some(
                self.nodes
                    .iter()
                    .position(|n| n.path == e.path)
                    .unwrap_or(0),
            ),
            Err(_) => Some(0),
        };
        let validators = self
            .nodes
            .iter()
            .enumerate()
            .map(|(index, node)| {
                let runs: Vec<_> = summary
                    .records
                    .iter()
                    .filter(|r| r.path == node.path)
                    .collect();
                let mut report = ValidatorReport {
                    path: shown(&node.path),
                    type_name: shown(&node.type_name),
                    summary: shown(&node.summary),
                    flow_control: node.flow_control,
                    status: match failed_at {
                        Some(at) if index >= at => "not run",
                        _ => "skipped",
                    },
                    changes: Vec::new(),
                    message: None,
                    runs: runs.len(),
                    // Not `sum()`: an empty f64 sum is -0.0, written `-0.000`.
                    elapsed_seconds: runs
                        .iter()
                        .fold(0.0, |total, r| total + r.elapsed.as_secs_f64()),
                    commands: commands.of(&node.path),
                };
                if let Some(last) = runs.last() {
                    report.status = match &last.status {
                        Status::InPlace => "passed",
                        Status::Changed(_) => "changed",
                        Status::Failed(_) => "failed",
                    };
                    match &last.status {
                        Status::Changed(c) => report.changes = c.iter().map(|c| shown(c)).collect(),
                        Status::Failed(m) => report.message = Some(shown(m)),
                        Status::InPlace => {}
                    }
                }
                report
            })
            .collect();
        self.targets.push(TargetReport {
            target: shown(target),
            kind,
            distro: summary.distro.as_deref().map(shown),
            passed: summary.passed(),
            result,
            error: summary.outcome.as_ref().err().map(error_report),
            validators,
            commands: summary.commands,
            elapsed_seconds: elapsed.as_secs_f64(),
        });
    }

    /// The last target added did not get its result after its validators
    /// ran (an image whose commit failed, a batch stopped before its
    /// commit): it did not pass, and `message` says why.
    pub fn not_kept(&mut self, message: &str) {
        if let Some(target) = self.targets.last_mut() {
            target.passed = false;
            if target.error.is_none() {
                target.error = Some(ErrorReport {
                    validator: None,
                    location: None,
                    message: shown(message),
                });
            }
        }
    }

    /// A target that failed before any validator ran (`unreachable`, `error`).
    pub fn add_failed(
        &mut self,
        kind: &'static str,
        target: &str,
        result: TargetResult,
        message: &str,
        elapsed: Duration,
    ) {
        self.targets.push(TargetReport {
            target: shown(target),
            kind,
            distro: None,
            passed: false,
            result,
            error: Some(ErrorReport {
                validator: None,
                location: None,
                message: shown(message),
            }),
            validators: self.not_run(),
            commands: 0,
            elapsed_seconds: elapsed.as_secs_f64(),
        });
    }

    fn not_run(&self) -> Vec<ValidatorReport> {
        self.nodes
            .iter()
            .map(|node| ValidatorReport {
                path: shown(&node.path),
                type_name: shown(&node.type_name),
                summary: shown(&node.summary),
                flow_control: node.flow_control,
                status: "not run",
                changes: Vec::new(),
                message: None,
                runs: 0,
                elapsed_seconds: 0.0,
                commands: Vec::new(),
            })
            .collect()
    }

    /// Whether the run is test-only, once a config file has said.
    pub fn set_test_only(&mut self, test_only: bool) {
        self.test_only = test_only;
    }

    /// The run was stopped (a signal, `--timeout`): `message` says how and
    /// what became of the target.
    pub fn stopped(&mut self, stop: &kiln::interrupt::Stop, message: &str) {
        self.stop = Some((TargetResult::after(*stop), message.to_string()));
    }

    /// Ends the run: the console closed and the report written, whatever
    /// `result` is. A report that cannot be written is an error of its own.
    pub fn finish(mut self, result: anyhow::Result<i32>) -> anyhow::Result<i32> {
        let error = result.as_ref().err().map(one_line_error);
        if let Some(error) = &error {
            progress::log_only(&format!("kiln: {error}"));
        }
        let stop = self.stop.take();
        let error = error.or_else(|| stop.as_ref().map(|(_, message)| shown(message)));
        // The status line is gone and the log complete before the report.
        self.console = None;
        let Some(path) = self.output.report.clone() else {
            return result;
        };
        let exit_code = match &result {
            Ok(code) => *code,
            Err(_) => 2,
        };
        for (kind, name) in std::mem::take(&mut self.planned) {
            if !self.targets.iter().any(|t| t.target == shown(&name)) {
                match (&stop, &error) {
                    (Some((result, message)), _) => {
                        self.add_failed(kind, &name, *result, message, Duration::ZERO)
                    }
                    (None, Some(message)) => {
                        self.add_failed(kind, &name, TargetResult::Error, message, Duration::ZERO)
                    }
                    (None, None) => {
                        self.add_failed(
                            kind,
                            &name,
                            TargetResult::NotRun,
                            "not run",
                            Duration::ZERO,
                        );
                        if let Some(target) = self.targets.last_mut() {
                            target.error = None;
                        }
                    }
                }
            }
        }
        let report = Report {
            schema_version: SCHEMA_VERSION,
            kiln_version: env!("CARGO_PKG_VERSION"),
            command: self.command,
            arguments: arguments(),
            started_at: rfc3339(self.started_at),
            finished_at: rfc3339(SystemTime::now()),
            elapsed_seconds: self.started.elapsed().as_secs_f64(),
            manifest: self.manifest.take(),
            manifest_arguments: std::mem::take(&mut self.manifest_arguments),
            test_only: self.test_only,
            passed: exit_code == 0,
            exit_code,
            error,
            targets: std::mem::take(&mut self.targets),
        };
        let text = match self.output.report_format {
            ReportFormat::Json => {
                serde_json::to_string_pretty(&report).expect("reports serialize") + "\n"
            }
            ReportFormat::Junit => junit(&report),
        };
        let written = std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("cannot write the report to {}: {e}", shown_path(&path)));
        match (result, written) {
            (Ok(_), Err(e)) => Err(e),
            (result, _) => result,
        }
    }
}

fn error_report(error: &RunError) -> ErrorReport {
    match error {
        RunError::Validation(e) => ErrorReport {
            validator: Some(shown(&e.path)),
            location: Some(shown(&e.location.to_string())),
            message: shown(&e.message),
        },
        RunError::Unreachable { validator, message } => ErrorReport {
            validator: Some(shown(validator)),
            location: None,
            message: shown(&format!("unreachable: {message}")),
        },
        other => ErrorReport {
            validator: None,
            location: None,
            message: shown(&other.to_string()),
        },
    }
}

/// kiln's command line after the program name, each word escaped.
fn arguments() -> Vec<String> {
    std::env::args_os()
        .skip(1)
        .map(|a| shown(&a.to_string_lossy()))
        .collect()
}

/// `time` in UTC as RFC 3339 with seconds (`2026-11-27T23:40:01Z`).
pub fn rfc3339(time: SystemTime) -> String {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The report as JUnit XML, in the shape Jenkins, GitLab and GitHub test
/// reporters read (tests/fixtures/junit.xsd checks it): a validator that
/// failed is a `failure`, one that was skipped or not run is `skipped`, and
/// a target that could not be reached (or a run that stopped outside any
/// validator) is an `error` in a testcase of its own, so that the job
/// fails visibly rather than showing only skipped tests.
fn junit(report: &Report) -> String {
    let mut suites = String::new();
    let (mut all_tests, mut all_failures, mut all_errors) = (0, 0, 0);
    let mut targets: Vec<&TargetReport> = report.targets.iter().collect();
    // A run that stopped before naming any target still fails visibly.
    let placeholder;
    if targets.is_empty() && report.error.is_some() {
        placeholder = TargetReport {
            target: report.manifest.clone().unwrap_or_else(|| "manifest".into()),
            kind: "manifest",
            distro: None,
            passed: false,
            result: TargetResult::Error,
            error: None,
            validators: Vec::new(),
            commands: 0,
            elapsed_seconds: report.elapsed_seconds,
        };
        targets.push(&placeholder);
    }
    for target in targets {
        let mut cases = String::new();
        let (mut tests, mut failures, mut errors, mut skipped) = (0, 0, 0, 0);
        let target_error = target
            .error
            .as_ref()
            .filter(|e| e.validator.is_none() || target.result == TargetResult::Unreachable)
            .map(|e| e.message.clone())
            .or_else(|| {
                (target.result == TargetResult::Error)
                    .then(|| report.error.clone())
                    .flatten()
            });
        if let Some(message) = &target_error {
            tests += 1;
            errors += 1;
            cases.push_str(&format!(
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">\n      <error type=\"{}\" message=\"{}\">{}</error>\n    </testcase>\n",
                xml(if target.kind == "host" { "(connect)" } else { "(open)" }),
                xml(&target.target),
                target.elapsed_seconds,
                xml(target.result.as_str()),
                xml(first_line(message)),
                xml(message)
            ));
        }
        for v in &target.validators {
            tests += 1;
            let mut body = String::new();
            match v.status {
                "failed" => {
                    failures += 1;
                    let message = v.message.as_deref().unwrap_or("failed");
                    body.push_str(&format!(
                        "      <failure type=\"failed\" message=\"{}\">{}</failure>\n",
                        xml(first_line(message)),
                        xml(message)
                    ));
                }
                "skipped" | "not run" => {
                    skipped += 1;
                    body.push_str(&format!("      <skipped message=\"{}\"/>\n", v.status));
                }
                _ => {}
            }
            let mut out = format!("{} {}: {}\n", v.type_name, v.summary, v.status);
            for change in &v.changes {
                out.push_str(&format!("changed: {change}\n"));
            }
            for c in &v.commands {
                out.push_str(&format!(
                    "$ {}  -> {}\n",
                    c.command,
                    c.exit_code
                        .map(|code| format!("exit {code}"))
                        .or_else(|| c.error.clone())
                        .unwrap_or_default()
                ));
            }
            body.push_str(&format!("      <system-out>{}</system-out>\n", xml(&out)));
            cases.push_str(&format!(
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">\n{body}    </testcase>\n",
                xml(&v.path),
                xml(&target.target),
                v.elapsed_seconds
            ));
        }
        let mut properties = vec![
            ("kiln_version", report.kiln_version.to_string()),
            ("command", report.command.to_string()),
            ("result", target.result.to_string()),
        ];
        if let Some(manifest) = &report.manifest {
            properties.push(("manifest", manifest.clone()));
        }
        if let Some(distro) = &target.distro {
            properties.push(("distro", distro.clone()));
        }
        let properties: String = properties
            .iter()
            .map(|(name, value)| {
                format!(
                    "      <property name=\"{name}\" value=\"{}\"/>\n",
                    xml(value)
                )
            })
            .collect();
        suites.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\" timestamp=\"{}\">\n    <properties>\n{properties}    </properties>\n{cases}  </testsuite>\n",
            xml(&target.target),
            target.elapsed_seconds,
            report.started_at.trim_end_matches('Z'),
        ));
        all_tests += tests;
        all_failures += failures;
        all_errors += errors;
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"kiln {}\" tests=\"{all_tests}\" failures=\"{all_failures}\" errors=\"{all_errors}\" time=\"{:.3}\">\n{suites}</testsuites>\n",
        report.command, report.elapsed_seconds
    )
}

/// Text for an XML attribute or element: markup escaped, and the characters
/// XML 1.0 cannot hold at all (controls but tab and line breaks, U+FFFE,
/// U+FFFF) written as visible escapes. Report strings are escaped already;
/// this keeps the file well-formed whatever they hold.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        let at = |s: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_795_822_801), "2026-11-27T23:40:01Z");
    }

    #[test]
    fn xml_text_is_always_well_formed() {
        assert_eq!(xml("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(xml("x\u{1}y\u{fffe}"), "x\\u{1}y\\u{fffe}");
        assert_eq!(xml("line\nnext"), "line\nnext");
    }
}

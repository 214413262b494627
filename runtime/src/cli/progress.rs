//! What a run prints as it goes and when it ends: one line per validator as
//! it starts and ends with the seconds since the start (the way
//! virt-customize prints `[  19.9] Installing packages`), the commands at
//! `-v`, a closing summary, and the same as JSON for `--report`.

use std::time::Duration;

use kiln::interpreter::{Event, NodeRecord, Observer, RunError, RunSummary, Status};
use serde::Serialize;

/// Prints progress lines, optionally prefixed with a target's name.
pub struct Progress {
    pub prefix: String,
    pub verbose: u8,
    /// Seconds already spent before the run (opening an image, connecting).
    pub offset: Duration,
}

impl Progress {
    fn line(&self, at: Duration, text: &str) {
        println!(
            "[{:>6.1}] {}{text}",
            (self.offset + at).as_secs_f64(),
            self.prefix
        );
    }
}

impl Observer for Progress {
    fn event(&mut self, event: Event<'_>) {
        match event {
            // Flow-control nodes only at -v: their children say what happens.
            Event::Started {
                node,
                test_only,
                at,
            } if self.verbose > 0 || !node.is_flow_control() => {
                let mode = if test_only { "check" } else { "apply" };
                self.line(at, &format!("{}: {mode} {}", node.path, node.summary));
            }
            Event::Finished { record, at } if self.verbose > 0 || !record.flow_control => {
                let elapsed = record.elapsed.as_secs_f64();
                self.line(
                    at,
                    &format!("{}: {} ({elapsed:.1} s)", record.path, status_text(record)),
                );
            }
            Event::Command {
                command,
                result,
                elapsed,
                ..
            } if self.verbose > 0 => {
                let ended = match result {
                    Ok(output) => format!("exit {}", output.exit_code),
                    Err(e) => e.to_string(),
                };
                println!(
                    "         {}  $ {}  -> {ended} ({:.2} s)",
                    self.prefix,
                    one_line(&command.script),
                    elapsed.as_secs_f64()
                );
            }
            Event::Log { node, message, .. } if self.verbose > 0 => {
                println!(
                    "         {}  {}: {}",
                    self.prefix,
                    node.path,
                    one_line(message)
                );
            }
            _ => {}
        }
    }
}

fn one_line(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 160 {
        format!("{}…", flat.chars().take(160).collect::<String>())
    } else {
        flat
    }
}

fn status_text(record: &NodeRecord) -> String {
    match &record.status {
        Status::InPlace if record.test_only => "ok".to_string(),
        Status::InPlace => "already in place".to_string(),
        Status::Changed(changes) => format!("changed: {}", changes.join("; ")),
        Status::Failed(message) => format!("FAILED: {}", one_line(message)),
    }
}

/// The closing summary of one target's run.
pub fn summary_text(summary: &RunSummary) -> String {
    let leaves = summary.leaf_results();
    let changed: Vec<_> = leaves
        .iter()
        .filter(|r| matches!(r.status, Status::Changed(_)))
        .collect();
    let in_place: Vec<_> = leaves
        .iter()
        .filter(|r| r.status == Status::InPlace)
        .collect();
    let mut out = String::new();
    out.push_str(&format!(
        "{} validators ran: {} changed, {} already in place; {} commands in {:.1} s\n",
        leaves.len(),
        changed.len(),
        in_place.len(),
        summary.commands,
        summary.elapsed.as_secs_f64()
    ));
    for record in &changed {
        if let Status::Changed(what) = &record.status {
            out.push_str(&format!(
                "  changed   {}: {}\n",
                record.path,
                what.join("; ")
            ));
        }
    }
    if let Err(error) = &summary.outcome {
        out.push_str(&format!("  FAILED    {}\n", failure_line(error)));
    }
    out
}

/// The failure as one line: the validator, its place in the manifest, why.
pub fn failure_line(error: &RunError) -> String {
    match error {
        RunError::Validation(e) => {
            format!("{} at {}: {}", e.path, e.location, one_line(&e.message))
        }
        other => other.to_string(),
    }
}

/// One target in a `--report` file.
#[derive(Serialize)]
pub struct TargetReport {
    pub target: String,
    pub distro: Option<String>,
    pub passed: bool,
    /// `passed`, `failed` or `unreachable`, as the closing table says it.
    pub result: String,
    pub error: Option<ErrorReport>,
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
    pub status: &'static str,
    pub changes: Vec<String>,
    pub message: Option<String>,
    pub elapsed_seconds: f64,
}

impl TargetReport {
    pub fn new(target: String, summary: &RunSummary, extra_seconds: f64) -> TargetReport {
        let validators = summary
            .leaf_results()
            .into_iter()
            .map(|r| ValidatorReport {
                path: r.path.clone(),
                type_name: r.type_name.clone(),
                summary: r.summary.clone(),
                status: match r.status {
                    Status::InPlace => "in_place",
                    Status::Changed(_) => "changed",
                    Status::Failed(_) => "failed",
                },
                changes: match &r.status {
                    Status::Changed(c) => c.clone(),
                    _ => Vec::new(),
                },
                message: match &r.status {
                    Status::Failed(m) => Some(m.clone()),
                    _ => None,
                },
                elapsed_seconds: r.elapsed.as_secs_f64(),
            })
            .collect();
        TargetReport {
            target,
            distro: summary.distro.clone(),
            passed: summary.passed(),
            result: match &summary.outcome {
                Ok(()) => "passed",
                Err(RunError::Unreachable { .. }) => "unreachable",
                Err(_) => "failed",
            }
            .to_string(),
            error: summary
                .outcome
                .as_ref()
                .err()
                .map(ErrorReport::from_run_error),
            validators,
            commands: summary.commands,
            elapsed_seconds: summary.elapsed.as_secs_f64() + extra_seconds,
        }
    }

    /// A target that failed before any validator ran.
    pub fn unreachable(target: String, message: String, elapsed: f64) -> TargetReport {
        TargetReport {
            target,
            distro: None,
            passed: false,
            result: "unreachable".to_string(),
            error: Some(ErrorReport {
                validator: None,
                location: None,
                message,
            }),
            validators: Vec::new(),
            commands: 0,
            elapsed_seconds: elapsed,
        }
    }
}

impl ErrorReport {
    fn from_run_error(error: &RunError) -> ErrorReport {
        match error {
            RunError::Validation(e) => ErrorReport {
                validator: Some(e.path.clone()),
                location: Some(e.location.to_string()),
                message: e.message.clone(),
            },
            RunError::Unreachable { validator, message } => ErrorReport {
                validator: Some(validator.clone()),
                location: None,
                message: format!("unreachable: {message}"),
            },
            other => ErrorReport {
                validator: None,
                location: None,
                message: other.to_string(),
            },
        }
    }
}

/// The whole `--report` file.
#[derive(Serialize)]
pub struct Report<'a> {
    pub command: &'a str,
    pub manifest: String,
    pub test_only: bool,
    pub passed: bool,
    pub targets: Vec<TargetReport>,
}

pub fn write_report(path: &std::path::Path, report: &Report<'_>) -> anyhow::Result<()> {
    use anyhow::Context;
    let json = serde_json::to_string_pretty(report).expect("reports serialize");
    std::fs::write(path, json + "\n")
        .with_context(|| format!("cannot write the report to {}", path.display()))
}

//! What a run prints as it goes and when it ends: one line per validator as
//! it starts and ends with the seconds since the start (the way
//! virt-customize prints `[  19.9] Installing packages`), the commands at
//! `-v`, a closing summary, and the same as JSON for `--report`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln::interpreter::{Event, NodeRecord, Observer, RunError, RunSummary, Status};
use kiln::remote::{shell_quote, CommandOutput, RemoteCommand, RemoteError};
use kiln::text::escape_controls_keep_lines;
use serde::Serialize;

use super::{one_line, shown, Paint, Style};

/// Prints progress lines, optionally prefixed with a target's name, and
/// keeps the commands each validator ran for the report.
pub struct Progress {
    pub prefix: String,
    pub verbose: u8,
    /// `-q` (print nothing as it goes) and whether status words are coloured.
    pub style: Style,
    /// Seconds already spent before the run (opening an image, connecting).
    pub offset: Duration,
    pub commands: CommandLog,
}

impl Progress {
    /// Prints one progress line. Every line goes through here escaped as
    /// a whole: its parts (host and validator names, summaries, changes,
    /// messages) are data, and none may move the cursor or add a line.
    fn line(&self, at: Duration, text: &str) {
        if self.style.quiet {
            return;
        }
        println!(
            "[{:>6.1}] {}",
            (self.offset + at).as_secs_f64(),
            one_line(&format!("{}{text}", self.prefix))
        );
    }

    /// A detail line under the progress lines (`-v`).
    fn detail(&self, text: &str) {
        if self.style.quiet {
            return;
        }
        println!("         {}", one_line(&format!("{}  {text}", self.prefix)));
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
                // At -v a failure is shown whole: a denial names the call
                // that was refused and why.
                let status = match &record.status {
                    Status::Failed(message) if self.verbose > 0 => {
                        format!("FAILED: {}", shown(message))
                    }
                    _ => status_text(record),
                };
                self.status_line(at, &record.path, &status, elapsed);
            }
            Event::Command {
                node,
                command,
                result,
                elapsed,
            } => {
                self.commands.record(&node.path, command, result, elapsed);
                if self.verbose > 0 {
                    let ended = match result {
                        Ok(output) => format!("exit {}", output.exit_code),
                        Err(e) => e.to_string(),
                    };
                    let text = command_text(command);
                    let text = if self.verbose > 1 {
                        shown(&text)
                    } else {
                        truncated(&shown(&text))
                    };
                    self.detail(&format!(
                        "$ {text}  -> {ended} ({:.2} s)",
                        elapsed.as_secs_f64()
                    ));
                    if let (Ok(output), true) = (result, self.verbose > 1) {
                        self.output_lines(output);
                    }
                }
            }
            Event::Log { node, message, .. } if self.verbose > 0 => {
                self.detail(&format!("{}: {message}", node.path));
            }
            _ => {}
        }
    }
}

impl Progress {
    /// A validator's closing line, as [`Progress::line`] prints it, with
    /// its leading status word (kiln's own) coloured when colour is on;
    /// the rest is escaped as before.
    fn status_line(&self, at: Duration, path: &str, status: &str, elapsed: f64) {
        if self.style.quiet {
            return;
        }
        let status = one_line(&format!("{status} ({elapsed:.1} s)"));
        let status = match status.split_once(':') {
            Some(("changed", rest)) => {
                format!("{}:{rest}", self.style.paint("changed", Paint::Changed))
            }
            Some(("FAILED", rest)) => format!("{}:{rest}", self.style.paint("FAILED", Paint::Bad)),
            _ => status,
        };
        println!(
            "[{:>6.1}] {}{status}",
            (self.offset + at).as_secs_f64(),
            one_line(&format!("{}{path}: ", self.prefix))
        );
    }

    /// A command's stdout and stderr at `-vv`, line by line: its lines
    /// kept, everything else that could steer a terminal escaped.
    fn output_lines(&self, output: &CommandOutput) {
        for (mark, bytes) in [("|", &output.stdout), ("!", &output.stderr)] {
            let text = String::from_utf8_lossy(bytes);
            for line in escape_controls_keep_lines(&text).lines() {
                println!("         {}    {mark} {line}", shown(&self.prefix));
            }
        }
    }
}

/// A command as shell text a reader can paste: its environment entries
/// quoted after `env --`, then the command. A script that is one simple
/// command follows as it is; any other runs under `/bin/sh -c`, quoted, as
/// the target runs it, so that the entries visibly apply to all of it.
pub fn command_text(command: &RemoteCommand) -> String {
    if command.env.is_empty() {
        return command.script.clone();
    }
    let entries: Vec<String> = command
        .env
        .iter()
        .map(|(name, value)| shell_quote(&format!("{name}={value}")))
        .collect();
    // `RemoteCommand::program` is `exec` and quoted words: exactly the
    // command `env` runs.
    let script = command
        .script
        .strip_prefix("exec ")
        .unwrap_or(&command.script);
    let script = if is_simple_command(script) {
        script.to_string()
    } else {
        format!("/bin/sh -c {}", shell_quote(&command.script))
    };
    format!("env -- {} {script}", entries.join(" "))
}

/// Whether `env` running `script`'s words would do what `/bin/sh -c`
/// does: one command, no expansion or control operator, and a program
/// rather than a shell builtin or keyword. Single quotes are fine (the
/// shell that reads the line removes them the same way).
fn is_simple_command(script: &str) -> bool {
    const BUILTINS: &[&str] = &[
        "if", "then", "for", "while", "until", "case", "exec", "cd", "export", "set", "unset", ".",
        "source", "eval", "alias", "read", "trap", "!", "{", "local", "return", "exit",
    ];
    let operators = |c: char| ";&|<>()$`\\\"\n\r{}*?[]~#".contains(c);
    let Some(first) = script.split_whitespace().next() else {
        return false;
    };
    !script.contains(operators)
        && !BUILTINS.contains(&first)
        && !first.contains('=')
        && !first.starts_with('-')
        && script.matches('\'').count() % 2 == 0
}

/// At `-v` a command line is cut to 160 characters; `-vv` shows it whole.
fn truncated(text: &str) -> String {
    if text.chars().count() > 160 {
        format!("{}…", text.chars().take(160).collect::<String>())
    } else {
        text.to_string()
    }
}

/// A message made one line and cut to 160 characters, for the progress
/// line of a failure (`-v` shows it whole).
fn short_line(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncated(&shown(&flat))
}

fn status_text(record: &NodeRecord) -> String {
    match &record.status {
        Status::InPlace if record.test_only => "ok".to_string(),
        Status::InPlace => "already in place".to_string(),
        Status::Changed(changes) => format!("changed: {}", shown(&changes.join("; "))),
        Status::Failed(message) => format!("FAILED: {}", short_line(message)),
    }
}

/// The commands each validator ran, shared between a run's observer
/// (which fills it) and the report (which reads it at the end).
#[derive(Clone, Default)]
pub struct CommandLog(Arc<Mutex<BTreeMap<String, Vec<CommandReport>>>>);

impl CommandLog {
    fn record(
        &self,
        path: &str,
        command: &RemoteCommand,
        result: &Result<CommandOutput, RemoteError>,
        elapsed: Duration,
    ) {
        let report = CommandReport {
            command: shown(&command.script),
            env: command
                .env
                .iter()
                .map(|(name, value)| EnvEntry {
                    name: shown(name),
                    value: shown(value),
                })
                .collect(),
            exit_code: result.as_ref().ok().map(|o| o.exit_code),
            error: result.as_ref().err().map(|e| shown(&e.to_string())),
            elapsed_seconds: elapsed.as_secs_f64(),
        };
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(path.to_string())
            .or_default()
            .push(report);
    }

    /// The commands the validator at `path` ran, in order, over all its runs.
    fn of(&self, path: &str) -> Vec<CommandReport> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(path)
            .cloned()
            .unwrap_or_default()
    }
}

/// One command in a `--report` file. Its text and entries are the
/// component's: escaped like everything else kiln shows of it.
#[derive(Serialize, Clone)]
pub struct CommandReport {
    /// The shell text, as `/bin/sh -c` ran it.
    pub command: String,
    /// The environment entries passed with it, in order.
    pub env: Vec<EnvEntry>,
    /// `None` when the target could not run it or it did not finish.
    pub exit_code: Option<i32>,
    /// Why it did not run or finish (a timeout, an output limit, a lost connection).
    pub error: Option<String>,
    pub elapsed_seconds: f64,
}

#[derive(Serialize, Clone)]
pub struct EnvEntry {
    pub name: String,
    pub value: String,
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
                shown(&record.path),
                shown(&what.join("; "))
            ));
        }
    }
    if let Err(error) = &summary.outcome {
        out.push_str(&format!("  FAILED    {}\n", failure_line(error)));
    }
    out
}

/// The failure as one line: the validator, its place in the manifest, why
/// (whole: a denial's message says what was refused and how to allow it).
pub fn failure_line(error: &RunError) -> String {
    match error {
        RunError::Validation(e) => one_line(&format!(
            "{} at {}: {}",
            e.path,
            e.location,
            e.message.split_whitespace().collect::<Vec<_>>().join(" ")
        )),
        other => one_line(&other.to_string()),
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
    /// The commands it ran, over all its runs (a `--verify` pass included).
    pub commands: Vec<CommandReport>,
}

impl TargetReport {
    /// A target's results. Every string in them that a target, a component
    /// or a file name could have supplied is escaped: a report is read
    /// with `jq -r` and `cat` as often as by programs.
    pub fn new(
        target: &str,
        summary: &RunSummary,
        extra_seconds: f64,
        commands: &CommandLog,
    ) -> TargetReport {
        let validators = summary
            .leaf_results()
            .into_iter()
            .map(|r| ValidatorReport {
                path: shown(&r.path),
                type_name: shown(&r.type_name),
                summary: shown(&r.summary),
                status: match r.status {
                    Status::InPlace => "in_place",
                    Status::Changed(_) => "changed",
                    Status::Failed(_) => "failed",
                },
                changes: match &r.status {
                    Status::Changed(c) => c.iter().map(|c| shown(c)).collect(),
                    _ => Vec::new(),
                },
                message: match &r.status {
                    Status::Failed(m) => Some(shown(m)),
                    _ => None,
                },
                elapsed_seconds: r.elapsed.as_secs_f64(),
                commands: commands.of(&r.path),
            })
            .collect();
        TargetReport {
            target: shown(target),
            distro: summary.distro.as_deref().map(shown),
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
    pub fn unreachable(target: &str, message: &str, elapsed: f64) -> TargetReport {
        TargetReport {
            target: shown(target),
            distro: None,
            passed: false,
            result: "unreachable".to_string(),
            error: Some(ErrorReport {
                validator: None,
                location: None,
                message: shown(message),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_env(script: &str, env: &[(&str, &str)]) -> String {
        let mut command = RemoteCommand::new(script);
        command.env = env
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        command_text(&command)
    }

    #[test]
    fn commands_show_their_env_entries_as_shell_text() {
        assert_eq!(with_env("dpkg -s procps", &[]), "dpkg -s procps");
        assert_eq!(
            with_env("dpkg -s procps", &[("LANG", "C"), ("X", "a b")]),
            "env -- LANG=C 'X=a b' dpkg -s procps"
        );
        let program = RemoteCommand::program(&["printf".into(), "%s x".into()]);
        assert_eq!(
            with_env(&program.script, &[("A", "1")]),
            "env -- A=1 printf '%s x'"
        );
        // Anything but one plain command runs under sh -c, as on the target,
        // so the entries visibly cover all of it.
        assert_eq!(
            with_env("echo \"$A\"; true", &[("A", "$(id)")]),
            r#"env -- 'A=$(id)' /bin/sh -c 'echo "$A"; true'"#
        );
        assert_eq!(
            with_env("cd /srv", &[("A", "1")]),
            "env -- A=1 /bin/sh -c 'cd /srv'"
        );
    }
}

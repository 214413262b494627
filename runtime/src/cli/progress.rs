//! What a run prints as it goes and when it ends: one line per validator as
//! it starts and ends with the seconds since the start (the way
//! virt-customize prints `[  19.9] Installing packages`), the commands at
//! `-v`, a closing summary, and the same as JSON for `--report`.
//!
//! Every line goes through [`Console`]: it clears the live status line on a
//! terminal before printing, prints heartbeats off a terminal, and copies
//! the whole timeline to `--log-file`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln::interpreter::{Event, NodeRecord, Observer, RunError, RunSummary, Status};
use kiln::remote::{shell_quote, CommandOutput, OutputStream, RemoteCommand, RemoteError};
use kiln::text::{clip, escape_controls_keep_lines, one_line};
use serde::Serialize;

use super::{shown, Paint, Style};

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
    /// The running command's output not yet shown: a partial last line of
    /// stdout and of stderr (`-vv`).
    partial: [Vec<u8>; 2],
}

impl Progress {
    pub fn new(
        prefix: String,
        verbose: u8,
        style: Style,
        offset: Duration,
        commands: CommandLog,
    ) -> Self {
        Progress {
            prefix,
            verbose,
            style,
            offset,
            commands,
            partial: [Vec::new(), Vec::new()],
        }
    }

    /// Prints one progress line. Every line goes through here escaped as
    /// a whole: its parts (host and validator names, summaries, changes,
    /// messages) are data, and none may move the cursor or add a line.
    fn line(&self, at: Duration, text: &str) {
        self.emit(&self.line_text(at, text));
    }

    /// A line on the terminal (unless `-q`) and in the log (always).
    fn emit(&self, text: &str) {
        if self.style.quiet {
            log_only(text);
        } else {
            print_line(text);
        }
    }

    fn line_text(&self, at: Duration, text: &str) -> String {
        format!(
            "[{:>6.1}] {}",
            (self.offset + at).as_secs_f64(),
            one_line(&format!("{}{text}", self.prefix))
        )
    }

    /// A detail line under the progress lines (`-v`).
    fn detail(&self, text: &str) {
        self.emit(&self.detail_text(text));
    }

    fn detail_text(&self, text: &str) -> String {
        format!("         {}", one_line(&format!("{}  {text}", self.prefix)))
    }

    /// One line of a command's output, named by host and validator.
    fn output_text(&self, path: &str, mark: &str, line: &str) -> String {
        format!(
            "         {}{} {mark} {}",
            shown(&self.prefix),
            shown(path),
            escape_controls_keep_lines(line).replace('\n', " ")
        )
    }

    /// Shows the complete lines of a chunk of output (`-vv`), keeping a
    /// partial last line until the rest arrives or the command ends.
    fn stream(&mut self, path: &str, stream: OutputStream, bytes: &[u8]) {
        let (index, mark) = match stream {
            OutputStream::Stdout => (0, "|"),
            OutputStream::Stderr => (1, "!"),
        };
        self.partial[index].extend_from_slice(bytes);
        let Some(end) = self.partial[index].iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.partial[index].drain(..=end).collect();
        for line in String::from_utf8_lossy(&complete).lines() {
            self.emit(&self.output_text(path, mark, line));
        }
    }

    /// Shows what is left of the output once the command ended.
    fn flush_output(&mut self, path: &str) {
        for (index, mark) in [(0, "|"), (1, "!")] {
            let rest = std::mem::take(&mut self.partial[index]);
            if !rest.is_empty() {
                self.emit(&self.output_text(path, mark, &String::from_utf8_lossy(&rest)));
            }
        }
    }

    /// A finished command in full, for the log file: the command with its
    /// environment entries, how it ended, and all its output.
    fn log_command(
        &self,
        path: &str,
        command: &RemoteCommand,
        result: &Result<CommandOutput, RemoteError>,
        elapsed: Duration,
    ) {
        let ended = match result {
            Ok(output) => format!("exit {}", output.exit_code),
            Err(e) => e.to_string(),
        };
        let mut text = self.detail_text(&format!(
            "{path}: $ {}  -> {ended} ({:.2} s)",
            shown(&command_text(command)),
            elapsed.as_secs_f64()
        ));
        if let Ok(output) = result {
            for (mark, bytes) in [("|", &output.stdout), ("!", &output.stderr)] {
                for line in String::from_utf8_lossy(bytes).lines() {
                    text.push('\n');
                    text.push_str(&self.output_text(path, mark, line));
                }
            }
        }
        log_only(&text);
    }
}

impl Observer for Progress {
    /// `-vv` shows each command's output as it arrives.
    fn wants_output(&self) -> bool {
        self.verbose > 1
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            // Flow-control nodes only at -v: their children say what happens.
            Event::Started {
                node,
                test_only,
                at,
            } => {
                step_start(&self.prefix, &node.path);
                let mode = if test_only { "check" } else { "apply" };
                let text = format!("{}: {mode} {}", node.path, node.summary);
                if self.verbose > 0 || !node.is_flow_control() {
                    self.line(at, &text);
                } else {
                    log_only(&self.line_text(at, &text));
                }
            }
            Event::Finished { record, at } if self.verbose == 0 && record.flow_control => {
                step_end(&self.prefix);
                let text = format!(
                    "{}: {} ({:.1} s)",
                    record.path,
                    status_text(record),
                    record.elapsed.as_secs_f64()
                );
                log_only(&self.line_text(at, &text));
            }
            Event::Finished { record, at } => {
                step_end(&self.prefix);
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
                // The log has every failure whole, whatever the verbosity.
                if let (Status::Failed(message), 0) = (&record.status, self.verbose) {
                    log_only(&self.detail_text(&format!("{}: {}", record.path, shown(message))));
                }
            }
            Event::CommandStarted { node, command } if self.verbose > 1 => {
                self.detail(&format!(
                    "{}: $ {}",
                    node.path,
                    shown(&command_text(command))
                ));
            }
            Event::Output {
                node,
                stream,
                bytes,
            } if self.verbose > 1 => self.stream(&node.path, stream, bytes),
            Event::Command {
                node,
                command,
                result,
                elapsed,
            } => {
                self.commands.record(&node.path, command, result, elapsed);
                if self.verbose < 2 && logging() {
                    self.log_command(&node.path, command, result, elapsed);
                }
                if self.verbose > 1 {
                    self.flush_output(&node.path);
                    let ended = match result {
                        Ok(output) => format!("exit {}", output.exit_code),
                        Err(e) => e.to_string(),
                    };
                    self.detail(&format!(
                        "{}: -> {ended} ({:.2} s)",
                        node.path,
                        elapsed.as_secs_f64()
                    ));
                } else if self.verbose > 0 {
                    let ended = match result {
                        Ok(output) => format!("exit {}", output.exit_code),
                        Err(e) => e.to_string(),
                    };
                    let text = clip(&shown(&command_text(command)), SHORT_LINE);
                    self.detail(&format!(
                        "$ {text}  -> {ended} ({:.2} s)",
                        elapsed.as_secs_f64()
                    ));
                }
            }
            Event::Log { node, message, .. } => {
                let text = self.detail_text(&format!("{}: {message}", node.path));
                if self.verbose > 0 {
                    self.emit(&text);
                } else {
                    log_only(&text);
                }
            }
            _ => {}
        }
    }
}

impl Progress {
    /// A validator's closing line, as [`Progress::line`] prints it, with
    /// its leading status word (kiln's own) coloured when colour is on;
    /// the rest is escaped as before. The log gets it without colour.
    fn status_line(&self, at: Duration, path: &str, status: &str, elapsed: f64) {
        let status = one_line(&format!("{status} ({elapsed:.1} s)"));
        let plain = format!(
            "[{:>6.1}] {}{status}",
            (self.offset + at).as_secs_f64(),
            one_line(&format!("{}{path}: ", self.prefix))
        );
        if self.style.quiet {
            log_only(&plain);
            return;
        }
        let painted = match status.split_once(':') {
            Some(("changed", rest)) => {
                format!("{}:{rest}", self.style.paint("changed", Paint::Changed))
            }
            Some(("FAILED", rest)) => format!("{}:{rest}", self.style.paint("FAILED", Paint::Bad)),
            _ => status.clone(),
        };
        let painted = format!(
            "[{:>6.1}] {}{painted}",
            (self.offset + at).as_secs_f64(),
            one_line(&format!("{}{path}: ", self.prefix))
        );
        print_line_logging(&painted, &plain);
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

/// At `-v` a command line (and a failure's message) is cut to this many
/// characters; `-vv` shows it whole.
const SHORT_LINE: usize = 160;

/// A message made one line and cut to 160 characters, for the progress
/// line of a failure (`-v` shows it whole).
fn short_line(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    clip(&shown(&flat), SHORT_LINE)
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
    pub fn of(&self, path: &str) -> Vec<CommandReport> {
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

// ---- the console: progress lines, the live status line, the log file ----

/// How often the live status line is redrawn on a terminal.
const STATUS_REDRAW: Duration = Duration::from_millis(500);

/// Seconds between heartbeat lines off a terminal (`KILN_HEARTBEAT`
/// overrides it; 0 turns heartbeats off). A CI job that kills a step
/// silent for some minutes sees a line at least this often.
const DEFAULT_HEARTBEAT_SECONDS: f64 = 30.0;

/// One target's current step: a stack, so that a validator nested in a
/// flow-control node shows, and its parent again once it ends.
#[derive(Default)]
struct Steps {
    stack: Vec<(String, Instant)>,
    last_beat: Option<Instant>,
}

struct ConsoleState {
    started: Instant,
    /// Draw a status line (stdout and stderr are terminals).
    live: bool,
    heartbeat: Option<Duration>,
    /// A status line is on the screen now.
    drawn: bool,
    /// Current steps by target (the line prefix: "" or the host's name).
    steps: BTreeMap<String, Steps>,
    log: Option<std::io::BufWriter<std::fs::File>>,
    running: bool,
}

static CONSOLE: Mutex<Option<ConsoleState>> = Mutex::new(None);

fn console() -> std::sync::MutexGuard<'static, Option<ConsoleState>> {
    CONSOLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Ends the console when dropped: the status line cleared, the log flushed.
pub struct ConsoleGuard(());

impl Drop for ConsoleGuard {
    fn drop(&mut self) {
        if let Some(mut state) = console().take() {
            state.clear();
            state.running = false;
            if let Some(log) = state.log.as_mut() {
                let _ = log.flush();
            }
        }
    }
}

/// Starts the console for one run: a status line on a terminal,
/// heartbeats off one, and `log_file` (created or truncated) getting every
/// line and every command in full. `header` opens the log.
pub fn start_console(
    started: Instant,
    log_file: Option<&std::path::Path>,
    header: &str,
    quiet: bool,
) -> anyhow::Result<ConsoleGuard> {
    let log = match log_file {
        None => None,
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|e| {
                anyhow::anyhow!("cannot write the log file {}: {e}", super::shown_path(path))
            })?;
            let mut log = std::io::BufWriter::new(file);
            let _ = writeln!(log, "{header}");
            Some(log)
        }
    };
    let heartbeat = match std::env::var("KILN_HEARTBEAT") {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64),
        Err(_) => Some(Duration::from_secs_f64(DEFAULT_HEARTBEAT_SECONDS)),
    };
    let live = !quiet && std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    *console() = Some(ConsoleState {
        started,
        live,
        heartbeat: if live || quiet { None } else { heartbeat },
        drawn: false,
        steps: BTreeMap::new(),
        log,
        running: true,
    });
    if live || (heartbeat.is_some() && !quiet) {
        let tick = if live {
            STATUS_REDRAW
        } else {
            // Fine enough for a heartbeat within a tenth of its interval.
            heartbeat
                .unwrap_or(STATUS_REDRAW)
                .div_f64(10.0)
                .clamp(Duration::from_millis(100), Duration::from_secs(1))
        };
        std::thread::spawn(move || loop {
            std::thread::sleep(tick);
            match console().as_mut() {
                Some(state) if state.running => state.tick(),
                _ => break,
            }
        });
    }
    Ok(ConsoleGuard(()))
}

/// Prints one line (already escaped) on stdout and into the log, clearing
/// the status line first.
pub fn print_line(text: &str) {
    print_line_logging(text, text);
}

/// Prints `shown` (which may carry kiln's own colours) and logs `logged`.
pub fn print_line_logging(shown: &str, logged: &str) {
    match console().as_mut() {
        Some(state) => state.print(shown, logged),
        None => println!("{shown}"),
    }
}

/// Writes lines (already escaped) into the log file only.
pub fn log_only(text: &str) {
    if let Some(ConsoleState { log: Some(log), .. }) = console().as_mut() {
        let _ = writeln!(log, "{text}");
    }
}

/// Whether a log file is being written (so detail is worth formatting).
pub fn logging() -> bool {
    matches!(console().as_ref(), Some(ConsoleState { log: Some(_), .. }))
}

/// The step `owner` (a target's line prefix) starts; shown until it ends.
pub fn step_start(owner: &str, what: &str) {
    if let Some(state) = console().as_mut() {
        state
            .steps
            .entry(owner.to_string())
            .or_default()
            .stack
            .push((what.to_string(), Instant::now()));
    }
}

/// The innermost step of `owner` ended.
pub fn step_end(owner: &str) {
    if let Some(state) = console().as_mut() {
        if let Some(steps) = state.steps.get_mut(owner) {
            steps.stack.pop();
            if steps.stack.is_empty() {
                state.steps.remove(owner);
            }
        }
    }
}

/// Every step of `owner` ended (its target is done, or failed).
pub fn steps_clear(owner: &str) {
    if let Some(state) = console().as_mut() {
        state.steps.remove(owner);
    }
}

impl ConsoleState {
    fn print(&mut self, shown: &str, logged: &str) {
        self.clear();
        println!("{shown}");
        if let Some(log) = self.log.as_mut() {
            let _ = writeln!(log, "{logged}");
        }
        if self.live {
            self.draw();
        }
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
            self.drawn = false;
        }
    }

    /// Every target's innermost step, longest-running first.
    fn current(&self) -> Vec<(&str, &str, Instant)> {
        let mut current: Vec<(&str, &str, Instant)> = self
            .steps
            .iter()
            .filter_map(|(owner, steps)| {
                let (what, since) = steps.stack.last()?;
                Some((owner.as_str(), what.as_str(), *since))
            })
            .collect();
        current.sort_by_key(|(_, _, since)| *since);
        current
    }

    fn draw(&mut self) {
        let current = self.current();
        let Some((owner, what, since)) = current.first() else {
            self.clear();
            return;
        };
        let mut line = format!(
            "[{:>6.1}] {}",
            self.started.elapsed().as_secs_f64(),
            one_line(&format!("{owner}{what} ({} s)", since.elapsed().as_secs()))
        );
        if current.len() > 1 {
            line.push_str(&format!(" (+{} more running)", current.len() - 1));
        }
        // A wrapped line could not be cleared with one carriage return.
        let width = terminal_width().saturating_sub(1).max(20);
        if line.chars().count() > width {
            line = format!("{}…", line.chars().take(width - 1).collect::<String>());
        }
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\r\x1b[2K{line}");
        let _ = out.flush();
        self.drawn = true;
    }

    fn tick(&mut self) {
        if self.live {
            self.draw();
            return;
        }
        let Some(interval) = self.heartbeat else {
            return;
        };
        let now = Instant::now();
        let mut beats = Vec::new();
        for (owner, steps) in self.steps.iter_mut() {
            let Some((what, since)) = steps.stack.last() else {
                continue;
            };
            let quiet_since = steps.last_beat.map_or(*since, |beat| beat.max(*since));
            if now.duration_since(quiet_since) >= interval {
                steps.last_beat = Some(now);
                beats.push(format!(
                    "[{:>6.1}] {}",
                    self.started.elapsed().as_secs_f64(),
                    one_line(&format!(
                        "still running {owner}{what} ({} s)",
                        since.elapsed().as_secs()
                    ))
                ));
            }
        }
        for beat in beats {
            self.print(&beat, &beat);
        }
    }
}

/// The terminal's width in columns (80 when it cannot be asked).
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills the winsize it is given and nothing else.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let asked = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    if asked == 0 && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
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

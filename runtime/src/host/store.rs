//! The per-run state of one validator instance (its `Store` data) and the
//! host imports it calls. Every import that acts checks the type's grants
//! first; every limit breach is recorded as a [`Violation`] and traps, so a
//! misbehaving component is stopped and named, never trusted to stop itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::kiln::validator::{host, types};
use super::grants::{self, EnvRefusal, FileAccess};
use super::grants::{Grant, Grants, Limits};
use crate::manifest::resources::ResourceReadError;
use crate::remote::{
    CommandOutput, FileKind, FileMetadata, FileRead, FileWrite, RemoteCommand, RemoteError,
};
use crate::text::escape_controls;

/// What a running validator may reach of the run it is part of: the target,
/// the arguments, the resources and its own nested blocks. The interpreter
/// implements it; during `check` there is none. Every call here has
/// already passed the type's grants and limits.
pub trait RunScope: Send + Sync {
    fn distro(&self) -> String;
    fn run_command(&self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError>;
    fn write_file(&self, write: &FileWrite<'_>) -> Result<(), RemoteError>;
    fn read_file(&self, read: &FileRead<'_>) -> Result<Option<Vec<u8>>, RemoteError>;
    fn file_metadata(&self, read: &FileRead<'_>) -> Result<Option<FileMetadata>, RemoteError>;
    /// Reads a resource, holding at most `max_bytes`.
    fn read_resource(&self, path: &str, max_bytes: usize) -> Result<Vec<u8>, ResourceReadError>;
    fn get_argument(&self, name: &str) -> Option<String>;
    fn set_argument(&self, name: &str, value: &str);
    /// Runs nested block `index` of the current node.
    fn run_nested(&self, index: u32, test_only: bool) -> Result<(), String>;
    /// How many nested blocks the current node declared in its plan.
    fn nested_count(&self) -> usize;
    fn log(&self, level: types::LogLevel, message: &str);
}

/// Why kiln stopped a component, or refused what it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// It called an import its type was not granted.
    Denied {
        grant: Grant,
        detail: String,
    },
    /// It ran a command outside its `exec` patterns.
    CommandNotAllowed {
        command: String,
    },
    /// It passed an environment entry whose name is not an identifier, or
    /// one that changes program lookup or loading without the declaration
    /// allowing it by name.
    EnvNameRefused {
        name: String,
        reason: EnvRefusal,
    },
    /// It asked for a path that is not a plain absolute path, or one
    /// outside the declaration's path patterns.
    PathNotAllowed {
        path: String,
        access: &'static str,
        why: &'static str,
    },
    /// It tried to write outside scratch space in a test-only run.
    TestOnlyWrite {
        path: String,
    },
    /// An exact-path file call met a symlink on the target.
    Symlink {
        detail: String,
    },
    /// It asked for a nested block its plan did not declare.
    UndeclaredBlock {
        index: u32,
        declared: usize,
    },
    /// It asked for reconcile mode inside a test-only run.
    TestOnlyEscalation {
        index: u32,
    },
    /// It asked for a resource path that leaves the resource roots.
    ResourceOutsideRoots {
        path: String,
    },
    WallClock {
        limit: Duration,
    },
    Memory {
        limit: usize,
    },
    Log {
        limit: usize,
    },
    /// A command's output or a file read passed the output limit.
    CommandOutput {
        what: String,
        limit: usize,
    },
    ArgumentBytes {
        limit: usize,
    },
    NestedReruns {
        index: u32,
        limit: u32,
    },
}

impl Violation {
    /// Says what happened, for "validator type `x` …". Component-supplied
    /// text in it is escaped: it is data, never terminal control.
    pub fn describe(&self) -> String {
        match self {
            Violation::Denied { grant, detail } => {
                format!("was denied {}: it lacks the `{grant}` grant", escape_controls(detail))
            }
            Violation::CommandNotAllowed { command } => {
                format!("was denied running `{}`: it is outside the type's allowed command patterns", escape_controls(command))
            }
            Violation::EnvNameRefused { name, reason: EnvRefusal::NotAnIdentifier } => format!(
                "was denied the environment entry `{}`: a name must be letters, digits and `_`, not starting with a digit",
                escape_controls(name)
            ),
            Violation::EnvNameRefused { name, reason: EnvRefusal::Sensitive } => format!(
                "was denied the environment entry `{name}`: it changes which program runs or what it loads; the declaration must allow it by name (`env: [{name}]`)"
            ),
            Violation::PathNotAllowed { path, access, why } => {
                format!("was denied {access} `{}`: {why}", escape_controls(path))
            }
            Violation::TestOnlyWrite { path } => format!(
                "was denied writing `{}` in a test-only run: a test-only run writes only to scratch space ({}/)",
                escape_controls(path),
                grants::SCRATCH_DIR
            ),
            Violation::Symlink { detail } => format!("was denied {}", escape_controls(detail)),
            Violation::UndeclaredBlock { index, declared } => {
                format!("asked to run nested block {index}, but its spec declared {declared}")
            }
            Violation::TestOnlyEscalation { index } => format!(
                "asked to run nested block {index} in reconcile mode inside a test-only run; it ran test-only"
            ),
            Violation::ResourceOutsideRoots { path } => {
                format!("was denied reading resource `{}`: it is outside the resource roots", escape_controls(path))
            }
            Violation::WallClock { limit } => format!(
                "was stopped at its wall-clock limit of {}",
                human_duration(*limit)
            ),
            Violation::Memory { limit } => {
                format!("was stopped at its memory limit of {}", human_bytes(*limit))
            }
            Violation::Log { limit } => {
                format!("was stopped at its log limit of {}", human_bytes(*limit))
            }
            Violation::CommandOutput { what, limit } => format!(
                "was stopped: {} passed its output limit of {}",
                escape_controls(what),
                human_bytes(*limit)
            ),
            Violation::ArgumentBytes { limit } => format!(
                "was stopped: the arguments it set passed its limit of {}",
                human_bytes(*limit)
            ),
            Violation::NestedReruns { index, limit } => format!(
                "was stopped: it ran nested block {index} more than {limit} times in one run"
            ),
        }
    }

    /// The whole message: "validator type `NAME` " and what happened.
    pub fn message(&self, type_name: &str) -> String {
        format!("validator type `{type_name}` {}", self.describe())
    }

    /// Limit breaches stop the component; denials only refuse one call.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Violation::WallClock { .. }
                | Violation::Memory { .. }
                | Violation::Log { .. }
                | Violation::CommandOutput { .. }
                | Violation::ArgumentBytes { .. }
                | Violation::NestedReruns { .. }
        )
    }
}

pub fn human_bytes(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs >= 1.0 {
        format!("{secs:.0} s")
    } else {
        format!("{} ms", duration.as_millis())
    }
}

/// The data of one validator instance's `Store`.
pub struct StoreState {
    pub(super) type_name: Arc<str>,
    pub(super) grants: Arc<Grants>,
    pub(super) limits: Limits,
    pub(super) scope: Option<Arc<dyn RunScope>>,
    /// Whether this run is test-only: then nested blocks run test-only
    /// whatever the component asks, and writes go only to scratch space.
    pub(super) test_only: bool,
    /// When the run must end, if its type has a wall-clock limit. Time
    /// spent in nested blocks moves it later.
    pub(super) deadline: Option<Instant>,
    pub(super) log_bytes: usize,
    /// Bytes of argument names and values set so far.
    pub(super) argument_bytes: usize,
    /// How often each nested block has run.
    pub(super) nested_runs: std::collections::HashMap<u32, u32>,
    pub(super) violations: Vec<Violation>,
    pub(super) changes: Vec<String>,
    pub(super) stdout: MemoryOutputPipe,
    pub(super) stderr: MemoryOutputPipe,
    pub(super) memory: MemoryLimiter,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl StoreState {
    pub(super) fn new(
        type_name: Arc<str>,
        grants: Arc<Grants>,
        limits: Limits,
        scope: Option<Arc<dyn RunScope>>,
        test_only: bool,
    ) -> Self {
        // WASI gives the component nothing of the host: no preopened
        // directories, no environment, no arguments, no sockets. Its stdout
        // and stderr go to buffers bounded by the log limit. The socket
        // switches restate wasmtime-wasi's defaults so that a change of
        // defaults cannot open the network.
        let stdout = MemoryOutputPipe::new(limits.log_bytes);
        let stderr = MemoryOutputPipe::new(limits.log_bytes);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        StoreState {
            type_name,
            grants,
            limits,
            scope,
            test_only,
            deadline: limits.wall_clock.map(|limit| Instant::now() + limit),
            log_bytes: 0,
            argument_bytes: 0,
            nested_runs: Default::default(),
            violations: Vec::new(),
            changes: Vec::new(),
            stdout,
            stderr,
            memory: MemoryLimiter {
                limit: limits.memory_bytes,
                exceeded: false,
            },
            wasi,
            table: ResourceTable::new(),
        }
    }

    /// Records a breach and returns the trap that stops the component.
    fn stop(&mut self, violation: Violation) -> wasmtime::Error {
        let message = violation.message(&self.type_name);
        self.violations.push(violation);
        wasmtime::Error::msg(message)
    }

    /// Records a denial and returns the message the component receives.
    fn deny(&mut self, violation: Violation) -> String {
        let message = violation.message(&self.type_name);
        self.violations.push(violation);
        message
    }

    /// The scope for an import that needs `grant`, or the denial.
    fn scope_for(
        &mut self,
        grant: Grant,
        detail: impl Into<String>,
    ) -> Result<Arc<dyn RunScope>, String> {
        if !self.grants.allows(grant) {
            return Err(self.deny(Violation::Denied {
                grant,
                detail: detail.into(),
            }));
        }
        self.scope.clone().ok_or_else(|| {
            format!(
                "{} is not available while kiln checks a spec",
                grant.as_str()
            )
        })
    }

    /// Time left before the wall-clock limit; `None` when there is none.
    fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    fn past_deadline(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    fn wall_clock_stop(&mut self) -> wasmtime::Error {
        let limit = self.limits.wall_clock.unwrap_or_default();
        self.stop(Violation::WallClock { limit })
    }

    fn check_time(&mut self) -> wasmtime::Result<()> {
        if self.past_deadline() {
            return Err(self.wall_clock_stop());
        }
        Ok(())
    }

    fn count_log(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.log_bytes = self.log_bytes.saturating_add(bytes);
        if self.log_bytes > self.limits.log_bytes {
            return Err(self.stop(Violation::Log {
                limit: self.limits.log_bytes,
            }));
        }
        Ok(())
    }

    /// Refuses environment entries the type may not pass.
    fn check_env(&mut self, env: &[(String, String)]) -> Result<(), String> {
        for (name, _) in env {
            if let Err(reason) = self.grants.check_env_name(name) {
                return Err(self.deny(Violation::EnvNameRefused {
                    name: name.clone(),
                    reason,
                }));
            }
        }
        Ok(())
    }

    /// Runs a command the grants allowed, under the run's time and output
    /// limits, and turns a breach into the trap that stops the component.
    fn run_allowed(
        &mut self,
        scope: Arc<dyn RunScope>,
        mut request: RemoteCommand,
    ) -> wasmtime::Result<Result<types::CommandOutput, String>> {
        request.timeout = self.remaining();
        request.output_limit = Some(self.limits.command_output_bytes);
        let result = scope.run_command(&request);
        self.check_time()?;
        match result {
            Ok(output) => Ok(Ok(types::CommandOutput {
                exit_code: output.exit_code,
                stdout: output.stdout,
                stderr: output.stderr,
            })),
            Err(error) => self.remote_failure(error).map(Err),
        }
    }

    /// Turns a target's refusal into the component's error, or into the
    /// trap that stops it when a limit was passed.
    fn remote_failure(&mut self, error: RemoteError) -> wasmtime::Result<String> {
        match error {
            RemoteError::Timeout { .. } if self.past_deadline() => Err(self.wall_clock_stop()),
            RemoteError::TooLarge { what, .. } => Err(self.stop(Violation::CommandOutput {
                what,
                limit: self.limits.command_output_bytes,
            })),
            RemoteError::Symlink { path, detail, .. } => Ok(self.deny(Violation::Symlink {
                detail: format!(
                    "`{path}`: it is reached through a symlink ({detail}), and this call may only reach the exact path it names"
                ),
            })),
            other => Ok(escape_controls(&other.to_string()).into_owned()),
        }
    }

    /// Checks a path a file call names against the type's path patterns
    /// for `access`; returns whether the call must refuse symlinks on the
    /// way (it must whenever the patterns narrow the grant).
    fn check_path(
        &mut self,
        path: &str,
        access: FileAccess,
        doing: &'static str,
    ) -> Result<bool, String> {
        let grants = self.grants.clone();
        let patterns = grants.path_patterns(access);
        if patterns.is_empty() {
            return Ok(false);
        }
        let why = if !grants::is_plain_absolute_path(path) {
            "the type's paths are narrowed, so a path must be absolute without `.`, `..` or empty parts"
        } else if !patterns.iter().any(|p| grants::path_match(p, path)) {
            "it is outside the type's allowed path patterns"
        } else {
            return Ok(true);
        };
        Err(self.deny(Violation::PathNotAllowed {
            path: path.to_string(),
            access: doing,
            why,
        }))
    }

    /// The read request for `path`, or the denial.
    fn read_request<'a>(
        &mut self,
        path: &'a str,
        access: &'static str,
    ) -> Result<FileRead<'a>, String> {
        let exact_path = self.check_path(path, FileAccess::Read, access)?;
        Ok(FileRead {
            path,
            max_bytes: Some(self.limits.command_output_bytes),
            exact_path,
            timeout: self.remaining(),
        })
    }

    /// Writes a file the grants allow: inside the write patterns, and in a
    /// test-only run only inside scratch space, never through a symlink.
    fn write_allowed(
        &mut self,
        path: String,
        contents: Vec<u8>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> wasmtime::Result<Result<(), String>> {
        self.check_time()?;
        let scope = match self.scope_for(Grant::WriteFile, format!("writing {path}")) {
            Ok(scope) => scope,
            Err(denied) => return Ok(Err(denied)),
        };
        let mut exact_path = match self.check_path(&path, FileAccess::Write, "writing") {
            Ok(exact) => exact,
            Err(denied) => return Ok(Err(denied)),
        };
        if self.test_only {
            if !grants::is_plain_absolute_path(&path) || !grants::is_scratch_path(&path) {
                return Ok(Err(self.deny(Violation::TestOnlyWrite { path })));
            }
            exact_path = true;
        }
        let write = FileWrite {
            path: &path,
            contents: &contents,
            mode,
            uid,
            gid,
            exact_path,
            timeout: self.remaining(),
        };
        let result = scope.write_file(&write);
        self.check_time()?;
        match result {
            Ok(()) => Ok(Ok(())),
            Err(error) => self.remote_failure(error).map(Err),
        }
    }

    /// Whether the component filled its stdout or stderr buffer: further
    /// writes fail, and Rust's `println!` panics on that, so a trap after it
    /// is the log limit at work.
    pub(super) fn filled_output(&self) -> bool {
        let full = |pipe: &MemoryOutputPipe| pipe.contents().len() >= self.limits.log_bytes;
        full(&self.stdout) || full(&self.stderr)
    }

    /// What the component last said on stderr before it crashed: a Rust
    /// panic's "panicked at FILE:LINE:COL: message" when there is one (the
    /// standard hook prints the message on the line after the location and
    /// a `note:` about backtraces last), else the last non-empty line.
    pub(super) fn last_stderr_line(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        if let Some(at) = lines.iter().rposition(|l| l.contains("panicked at")) {
            let location = &lines[at][lines[at].find("panicked at").unwrap_or(0)..];
            let line = match lines.get(at + 1) {
                Some(message) => format!("{location} {message}"),
                None => location.to_string(),
            };
            return Some(escape_controls(&line).into_owned());
        }
        lines.last().map(|l| escape_controls(l).into_owned())
    }
}

/// Caps linear memory and remembers that it did, so the trap is named.
pub(super) struct MemoryLimiter {
    limit: usize,
    pub(super) exceeded: bool,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} reached",
                human_bytes(self.limit)
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= super::engines::TABLE_ELEMENTS_LIMIT)
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StoreState {}

impl host::Host for StoreState {
    fn distro(&mut self) -> wasmtime::Result<String> {
        Ok(self.scope.as_ref().map(|s| s.distro()).unwrap_or_default())
    }

    fn family_of(&mut self, distro: String) -> wasmtime::Result<Option<String>> {
        Ok(crate::remote::family_of(&distro).map(str::to_string))
    }

    fn run_command(
        &mut self,
        command: String,
        env: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<types::CommandOutput, String>> {
        self.check_time()?;
        let scope = match self.scope_for(Grant::Exec, format!("running `{command}`")) {
            Ok(scope) => scope,
            Err(denied) => return Ok(Err(denied)),
        };
        if !self.grants.allows_command(&command) {
            return Ok(Err(self.deny(Violation::CommandNotAllowed { command })));
        }
        if let Err(denied) = self.check_env(&env) {
            return Ok(Err(denied));
        }
        let mut request = RemoteCommand::new(command);
        request.env = env;
        self.run_allowed(scope, request)
    }

    fn run_program(
        &mut self,
        argv: Vec<String>,
        env: Vec<(String, String)>,
    ) -> wasmtime::Result<Result<types::CommandOutput, String>> {
        self.check_time()?;
        let shown = argv.join(" ");
        let scope = match self.scope_for(Grant::Exec, format!("running `{shown}`")) {
            Ok(scope) => scope,
            Err(denied) => return Ok(Err(denied)),
        };
        if argv.first().is_none_or(|program| program.is_empty()) {
            return Ok(Err("run-program needs a program name in argv[0]".into()));
        }
        if !self.grants.allows_program(&argv) {
            return Ok(Err(
                self.deny(Violation::CommandNotAllowed { command: shown })
            ));
        }
        if let Err(denied) = self.check_env(&env) {
            return Ok(Err(denied));
        }
        let mut request = RemoteCommand::program(&argv);
        request.env = env;
        self.run_allowed(scope, request)
    }

    fn write_file(
        &mut self,
        path: String,
        contents: Vec<u8>,
        mode: u32,
    ) -> wasmtime::Result<Result<(), String>> {
        self.write_allowed(path, contents, Some(mode & 0o7777), Some(0), Some(0))
    }

    fn write_file_with(
        &mut self,
        path: String,
        contents: Vec<u8>,
        options: types::WriteOptions,
    ) -> wasmtime::Result<Result<(), String>> {
        let mode = options.mode.map(|mode| mode & 0o7777);
        self.write_allowed(path, contents, mode, options.uid, options.gid)
    }

    fn read_file(&mut self, path: String) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        self.check_time()?;
        let scope = match self.scope_for(Grant::ReadFile, format!("reading {path} on the target")) {
            Ok(scope) => scope,
            Err(denied) => return Ok(Err(denied)),
        };
        let read = match self.read_request(&path, "reading") {
            Ok(read) => read,
            Err(denied) => return Ok(Err(denied)),
        };
        let result = scope.read_file(&read);
        self.check_time()?;
        match result {
            Ok(contents) => Ok(Ok(contents)),
            Err(error) => self.remote_failure(error).map(Err),
        }
    }

    fn file_metadata(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<Option<types::Metadata>, String>> {
        self.check_time()?;
        let scope =
            match self.scope_for(Grant::ReadFile, format!("inspecting {path} on the target")) {
                Ok(scope) => scope,
                Err(denied) => return Ok(Err(denied)),
            };
        let read = match self.read_request(&path, "inspecting") {
            Ok(read) => read,
            Err(denied) => return Ok(Err(denied)),
        };
        let result = scope.file_metadata(&read);
        self.check_time()?;
        match result {
            Ok(found) => Ok(Ok(found.map(|m| types::Metadata {
                kind: match m.kind {
                    FileKind::Regular => types::FileKind::Regular,
                    FileKind::Directory => types::FileKind::Directory,
                    FileKind::Symlink => types::FileKind::Symlink,
                    FileKind::Other => types::FileKind::Other,
                },
                size: m.size,
                mode: m.mode,
                uid: m.uid,
                gid: m.gid,
            }))),
            Err(error) => self.remote_failure(error).map(Err),
        }
    }

    fn read_resource(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let scope = match self.scope_for(Grant::ReadResource, format!("reading resource {path}")) {
            Ok(scope) => scope,
            Err(denied) => return Ok(Err(denied)),
        };
        // The roots refuse such a path too; recording it as a denial means a
        // component that tried and then claims success still fails.
        if leaves_roots(&path) {
            return Ok(Err(self.deny(Violation::ResourceOutsideRoots { path })));
        }
        match scope.read_resource(&path, self.limits.command_output_bytes) {
            Ok(bytes) => Ok(Ok(bytes)),
            Err(ResourceReadError::Failed(message)) => Ok(Err(message)),
            Err(ResourceReadError::TooLarge { limit }) => {
                Err(self.stop(Violation::CommandOutput {
                    what: format!("resource `{path}`"),
                    limit,
                }))
            }
        }
    }

    fn get_argument(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.scope.as_ref().and_then(|s| s.get_argument(&name)))
    }

    fn set_argument(
        &mut self,
        name: String,
        value: String,
    ) -> wasmtime::Result<Result<(), String>> {
        let scope = match self.scope_for(Grant::SetArgument, format!("setting argument {name}")) {
            Ok(scope) => scope,
            Err(denied) => return Ok(Err(denied)),
        };
        self.argument_bytes = self
            .argument_bytes
            .saturating_add(name.len())
            .saturating_add(value.len());
        if self.argument_bytes > self.limits.argument_bytes {
            return Err(self.stop(Violation::ArgumentBytes {
                limit: self.limits.argument_bytes,
            }));
        }
        scope.set_argument(&name, &value);
        Ok(Ok(()))
    }

    fn run_nested(&mut self, index: u32, test_only: bool) -> wasmtime::Result<Result<(), String>> {
        self.check_time()?;
        let scope = match self.scope_for(Grant::Nested, format!("running nested block {index}")) {
            Ok(scope) => scope,
            Err(denied) => return Ok(Err(denied)),
        };
        let declared = scope.nested_count();
        if index as usize >= declared {
            return Ok(Err(
                self.deny(Violation::UndeclaredBlock { index, declared })
            ));
        }
        let runs = self.nested_runs.entry(index).or_default();
        *runs += 1;
        if *runs > self.limits.nested_reruns {
            return Err(self.stop(Violation::NestedReruns {
                index,
                limit: self.limits.nested_reruns,
            }));
        }
        // The stricter mode wins: a test-only run never turns reconciling.
        if self.test_only && !test_only {
            self.deny(Violation::TestOnlyEscalation { index });
        }
        let test_only = test_only || self.test_only;
        // Nested validators have their own limits: their time is not ours.
        let started = Instant::now();
        let result = scope.run_nested(index, test_only);
        if let Some(deadline) = &mut self.deadline {
            *deadline += started.elapsed();
        }
        Ok(result)
    }

    fn log(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
        // Each entry costs at least a byte, so a flood of empty ones is
        // counted too.
        self.count_log(message.len() + 1)?;
        if let Some(scope) = &self.scope {
            scope.log(level, &escape_controls(&message));
        }
        Ok(())
    }

    fn time_left_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.remaining().map_or(u64::MAX, |left| {
            u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
        }))
    }

    fn note_change(&mut self, description: String) -> wasmtime::Result<()> {
        self.count_log(description.len() + 1)?;
        self.changes
            .push(escape_controls(&description).into_owned());
        Ok(())
    }
}

/// Whether a resource path is absolute or climbs out with `..`.
fn leaves_roots(path: &str) -> bool {
    let path = std::path::Path::new(path);
    path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
}

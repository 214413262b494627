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
use super::grants::{Grant, Grants, Limits};
use crate::remote::{CommandOutput, RemoteCommand, RemoteError};

/// What a running validator may reach of the run it is part of: the target,
/// the arguments, the resources and its own nested blocks. The interpreter
/// implements it; during `check` there is none.
pub trait RunScope: Send + Sync {
    fn distro(&self) -> String;
    fn run_command(&self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError>;
    fn write_file(&self, path: &str, contents: &[u8], mode: u32) -> Result<(), RemoteError>;
    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, RemoteError>;
    fn read_resource(&self, path: &str) -> Result<Vec<u8>, String>;
    fn get_argument(&self, name: &str) -> Option<String>;
    fn set_argument(&self, name: &str, value: &str);
    /// Runs nested block `index` of the current node.
    fn run_nested(&self, index: u32, test_only: bool) -> Result<(), String>;
    /// How many nested blocks the current node declared in its plan.
    fn nested_count(&self) -> usize;
    fn log(&self, level: types::LogLevel, message: &str);
    /// A command ran (for `-v` output and round-trip counts).
    fn command_ran(
        &self,
        command: &RemoteCommand,
        result: &Result<CommandOutput, RemoteError>,
        elapsed: Duration,
    );
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
    /// It asked for a nested block its plan did not declare.
    UndeclaredBlock {
        index: u32,
        declared: usize,
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
    CommandOutput {
        limit: usize,
        got: usize,
    },
}

impl Violation {
    /// Says what happened, for "validator type `x` …".
    pub fn describe(&self) -> String {
        match self {
            Violation::Denied { grant, detail } => {
                format!("was denied {detail}: it lacks the `{grant}` grant")
            }
            Violation::CommandNotAllowed { command } => {
                format!("was denied running `{command}`: it is outside the type's allowed command patterns")
            }
            Violation::UndeclaredBlock { index, declared } => {
                format!("asked to run nested block {index}, but its spec declared {declared}")
            }
            Violation::ResourceOutsideRoots { path } => {
                format!("was denied reading resource `{path}`: it is outside the resource roots")
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
            Violation::CommandOutput { limit, got } => format!(
                "was stopped: one command's output ({} so far) passed the limit of {}",
                human_bytes(*got),
                human_bytes(*limit)
            ),
        }
    }

    /// Limit breaches stop the component; denials only refuse one call.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Violation::WallClock { .. }
                | Violation::Memory { .. }
                | Violation::Log { .. }
                | Violation::CommandOutput { .. }
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
    /// When the run must end. Time spent in nested blocks moves it later.
    pub(super) deadline: Instant,
    pub(super) log_bytes: usize,
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
            deadline: Instant::now() + limits.wall_clock,
            log_bytes: 0,
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
        let message = format!(
            "validator type `{}` {}",
            self.type_name,
            violation.describe()
        );
        self.violations.push(violation);
        wasmtime::Error::msg(message)
    }

    /// Records a denial and returns the message the component receives.
    fn deny(&mut self, violation: Violation) -> String {
        let message = format!(
            "validator type `{}` {}",
            self.type_name,
            violation.describe()
        );
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

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    fn check_time(&mut self) -> wasmtime::Result<()> {
        if Instant::now() >= self.deadline {
            return Err(self.stop(Violation::WallClock {
                limit: self.limits.wall_clock,
            }));
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
            return Some(match lines.get(at + 1) {
                Some(message) => format!("{location} {message}"),
                None => location.to_string(),
            });
        }
        lines.last().map(|l| l.to_string())
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
        let remaining = self.remaining();
        let request = RemoteCommand {
            script: command,
            env,
            timeout: Some(remaining),
        };
        let started = Instant::now();
        let result = scope.run_command(&request);
        scope.command_ran(&request, &result, started.elapsed());
        self.check_time()?;
        match result {
            Ok(output) => {
                let got = output.stdout.len() + output.stderr.len();
                if got > self.limits.command_output_bytes {
                    return Err(self.stop(Violation::CommandOutput {
                        limit: self.limits.command_output_bytes,
                        got,
                    }));
                }
                Ok(Ok(types::CommandOutput {
                    exit_code: output.exit_code,
                    stdout: output.stdout,
                    stderr: output.stderr,
                }))
            }
            Err(RemoteError::Timeout { .. }) if Instant::now() >= self.deadline => {
                Err(self.stop(Violation::WallClock {
                    limit: self.limits.wall_clock,
                }))
            }
            Err(e) => Ok(Err(e.to_string())),
        }
    }

    fn write_file(
        &mut self,
        path: String,
        contents: Vec<u8>,
        mode: u32,
    ) -> wasmtime::Result<Result<(), String>> {
        self.check_time()?;
        let scope = match self.scope_for(Grant::WriteFile, format!("writing {path}")) {
            Ok(scope) => scope,
            Err(denied) => return Ok(Err(denied)),
        };
        Ok(scope
            .write_file(&path, &contents, mode)
            .map_err(|e| e.to_string()))
    }

    fn read_file(&mut self, path: String) -> wasmtime::Result<Result<Option<Vec<u8>>, String>> {
        self.check_time()?;
        let scope = match self.scope_for(Grant::ReadFile, format!("reading {path} on the target")) {
            Ok(scope) => scope,
            Err(denied) => return Ok(Err(denied)),
        };
        let result = scope.read_file(&path).map_err(|e| e.to_string());
        if let Ok(Some(bytes)) = &result {
            if bytes.len() > self.limits.command_output_bytes {
                let got = bytes.len();
                return Err(self.stop(Violation::CommandOutput {
                    limit: self.limits.command_output_bytes,
                    got,
                }));
            }
        }
        Ok(result)
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
        Ok(scope.read_resource(&path))
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
        // Nested validators have their own limits: their time is not ours.
        let started = Instant::now();
        let result = scope.run_nested(index, test_only);
        self.deadline += started.elapsed();
        Ok(result)
    }

    fn log(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
        self.count_log(message.len())?;
        if let Some(scope) = &self.scope {
            scope.log(level, &message);
        }
        Ok(())
    }

    fn time_left_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(u64::try_from(self.remaining().as_millis()).unwrap_or(u64::MAX))
    }

    fn note_change(&mut self, description: String) -> wasmtime::Result<()> {
        self.count_log(description.len())?;
        self.changes.push(description);
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

//! The SSH target: a live host reached by driving the system OpenSSH client
//! (`ssh`), so that `~/.ssh/config` (Host aliases, User, Port, IdentityFile,
//! ProxyJump), the agent and `known_hosts` behave exactly as they do for the
//! user at a terminal. One connection per host serves the whole run: kiln
//! starts a ControlMaster process of its own (socket in a private temp dir)
//! for the login, and one long-lived session over it: a single ssh client
//! running a small POSIX-sh loop on the host (sent as the session's command
//! line, nothing installed) that reads framed requests on its stdin and
//! writes framed replies (see `frame` and `session`). A command, a file
//! call, or a script's upload together with its run, costs one round trip
//! and no process on kiln's side. `BatchMode` keeps ssh from ever
//! prompting; host keys are checked strictly unless `accept_new_host_keys`
//! says otherwise, and a refusal comes back as one line saying how to
//! accept the key. When the login user is not root the loop runs under
//! `sudo -n`, started once after the probe checked that sudo works. A
//! command runs under the host's `timeout(1)` at its limit, so the host
//! answers at the deadline; a session that does not answer by then (plus
//! a grace), breaks the protocol or dies is killed and the next call starts
//! another; a host whose connection drops is reconnected once and otherwise
//! reported unreachable, never waited on. Only output streamed as it
//! arrives (`-vv`) still takes one ssh client per command.
//!
//! Stopping: the master runs in a process group of its own, so a Ctrl-C at
//! the terminal leaves it to kiln to close, and it gets SIGTERM from the
//! kernel when kiln dies (`PR_SET_PDEATHSIG`), so not even `kill -9` of
//! kiln leaves it behind. On SIGINT/SIGTERM the masters are ended (see
//! [`crate::interrupt`]), which ends the session and every command in
//! flight at once, and closing a target first removes any
//! `/tmp/kiln-script-*` whose command did not finish (after a Ctrl-C, over
//! one fresh login).
//!
//! Output is bounded on both ends: the host cuts each stream with `head -c`
//! at the command's limit (the command dies of SIGPIPE there), and kiln
//! reads a reply only when its header's lengths are within that limit. File
//! calls are one round trip each, their checks (regular file, symlinks on
//! an exact path) made on the target.
//!
//! This file holds the connection and the [`Remote`] calls; host specs
//! live in [`host_spec`], errors in `error`, the ssh child processes and
//! master connections in `process`, the shell text of each call in
//! `remote_side`, the loop and its wire format in `frame`, the session's
//! process and bounded I/O in `session`, and its use here in `framed`.

mod error;
mod frame;
mod framed;
pub mod host_spec;
mod process;
mod remote_side;
mod session;

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub use error::SshError;
use frame::Request;
use framed::Call;
pub use host_spec::HostSpec;
use host_spec::ResolvedHost;
use process::{end_masters_on_interrupt, make_control_dir, run_child, spawn_master, Finished};
use remote_side::{
    metadata_command, parse_stat, read_command, remote_line, session_line, write_command, Origin,
    MISSING_FILE_EXIT, NOT_REGULAR_EXIT, SYMLINK_EXIT,
};
use session::Session;

use crate::remote::distro::OsRelease;
use crate::remote::{
    CommandOutput, FileMetadata, FileRead, FileWrite, OutputSink, Remote, RemoteCommand,
    RemoteError, COMMAND_OUTPUT, SCRIPT_UPLOAD_PREFIX,
};
use crate::text::{last_lines, script_summary};

/// How many of its last lines an error quotes of ssh's or a command's stderr.
const ERROR_LINES: usize = 3;

/// The flag kiln's CLI offers for trusting unknown host keys on first use;
/// named in the message that refuses an unknown key.
pub const ACCEPT_NEW_HOST_KEYS_FLAG: &str = "--accept-new-host-keys";

/// The most output kiln holds from its own scripts (the connect probe, file
/// calls' error messages): they print little, a hostile host may not.
const INTERNAL_OUTPUT_LIMIT: usize = 1 << 20;

/// ssh reserves this exit status for its own failures.
const SSH_FAILURE_EXIT: i32 = 255;

/// How long `-O exit` may take on Drop before the master is killed.
const MASTER_EXIT_GRACE: Duration = Duration::from_secs(2);

/// How kiln talks to SSH hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// TCP connect and banner timeout; also the keepalive interval, so a
    /// silently dead connection is noticed after three of these.
    pub connect_timeout: Duration,
    /// Limit for commands whose `RemoteCommand.timeout` is `None`.
    pub command_timeout: Option<Duration>,
    /// Trust and record keys of hosts not yet in `known_hosts`
    /// (`StrictHostKeyChecking=accept-new`). A changed key is always refused.
    pub accept_new_host_keys: bool,
    /// An ssh_config file to use instead of `~/.ssh/config` (`ssh -F`).
    pub ssh_config: Option<PathBuf>,
    /// Extra `-o Option=value` settings, which win over the config file and
    /// over kiln's defaults except BatchMode and the control socket.
    pub extra_options: Vec<String>,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            connect_timeout: Duration::from_secs(10),
            command_timeout: None,
            accept_new_host_keys: false,
            ssh_config: None,
            extra_options: Vec::new(),
        }
    }
}

/// Which of its three jobs an ssh invocation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The long-lived connection the others multiplex over.
    Master,
    /// A command run over the master's connection.
    Client,
    /// `-G` or `-O`: no connection at all.
    Control,
}

/// A live host reached over SSH.
pub struct SshRemote {
    spec: HostSpec,
    options: SshOptions,
    resolved: ResolvedHost,
    /// Private (0700) directory holding the control socket and master log.
    control_dir: tempfile::TempDir,
    master: Option<Child>,
    login_is_root: bool,
    /// Whether the host has coreutils' `timeout`, to reap timed-out commands.
    has_timeout: bool,
    distro: String,
    /// Scripts uploaded (`/tmp/kiln-script-*`) whose command has not
    /// finished: removed when the target closes.
    scripts: Vec<String>,
    /// Where the running command's output goes as it arrives
    /// ([`Remote::run_streaming`]), while one streams.
    streaming: Option<OutputSink>,
    /// The loop every call but a streaming one goes through.
    session: Option<Session>,
    /// Whether the loop must start under `sudo -n`: once the probe found
    /// a login user who is not root and may use sudo.
    session_needs_sudo: bool,
}

impl SshRemote {
    /// Connects to `spec`: resolves it through ssh_config, opens the shared
    /// connection, and learns the login user's rights and the distro.
    pub fn connect(spec: &HostSpec, options: &SshOptions) -> Result<SshRemote, SshError> {
        let control_dir = make_control_dir()?;
        let mut target = SshRemote {
            spec: spec.clone(),
            options: options.clone(),
            resolved: ResolvedHost {
                hostname: spec.host.clone(),
                port: spec.port.unwrap_or(22),
                known_hosts: String::new(),
            },
            control_dir,
            master: None,
            login_is_root: true,
            has_timeout: false,
            distro: String::new(),
            scripts: Vec::new(),
            streaming: None,
            session: None,
            session_needs_sudo: false,
        };
        end_masters_on_interrupt();
        target.start_master()?;
        target.probe()?;
        Ok(target)
    }

    /// The spec this target was connected with.
    pub fn spec(&self) -> &HostSpec {
        &self.spec
    }

    fn control_path(&self) -> PathBuf {
        self.control_dir.path().join("ctl")
    }

    fn master_log_path(&self) -> PathBuf {
        self.control_dir.path().join("master.log")
    }

    /// An `ssh` command with every option kiln relies on. ssh keeps the first
    /// value it sees for an option, so the settings kiln cannot do without
    /// come before the user's `-o`s and the overridable defaults after them.
    fn ssh_command(&self, role: Role) -> Command {
        let mut command = Command::new("ssh");
        if let Some(config) = &self.options.ssh_config {
            command.arg("-F").arg(config);
        }
        let control_master = if role == Role::Master { "yes" } else { "no" };
        command.arg("-o").arg("BatchMode=yes");
        command
            .arg("-o")
            .arg(format!("ControlMaster={control_master}"));
        command
            .arg("-o")
            .arg(format!("ControlPath={}", self.control_path().display()));
        // The master is kiln's own child process, not a daemon left behind.
        command.arg("-o").arg("ControlPersist=no");
        for extra in &self.options.extra_options {
            command.arg("-o").arg(extra);
        }
        let strict = if self.options.accept_new_host_keys {
            "accept-new"
        } else {
            "yes"
        };
        let seconds = self.options.connect_timeout.as_secs().max(1);
        command
            .arg("-o")
            .arg(format!("StrictHostKeyChecking={strict}"));
        command.arg("-o").arg(format!("ConnectTimeout={seconds}"));
        command
            .arg("-o")
            .arg(format!("ServerAliveInterval={seconds}"));
        command.arg("-o").arg("ServerAliveCountMax=3");
        if role == Role::Client {
            // Keeps ssh's own chatter out of the command's stderr.
            command.arg("-o").arg("LogLevel=ERROR");
        }
        if let Some(user) = &self.spec.user {
            command.arg("-l").arg(user);
        }
        if let Some(port) = self.spec.port {
            command.arg("-p").arg(port.to_string());
        }
        command
    }

    /// Asks `ssh -G` where the host really is (aliases, Port, known_hosts
    /// file), so host key messages name what the user has to type.
    fn resolve(&self) -> Result<ResolvedHost, SshError> {
        let mut command = self.ssh_command(Role::Control);
        command.arg("-G").arg("--").arg(&self.spec.host);
        let (status, stdout, stderr) = match run_child(
            command,
            None,
            Some(self.options.connect_timeout),
            None,
            None,
        )? {
            Finished::Exited {
                status,
                stdout,
                stderr,
            } => (status, stdout, stderr),
            Finished::TimedOut | Finished::TooLarge => {
                return Err(self.config_error("`ssh -G` did not finish".into()))
            }
        };
        if !status.success() {
            return Err(self.config_error(last_lines(&stderr, ERROR_LINES)));
        }
        let config = String::from_utf8_lossy(&stdout);
        let value = |key: &str| {
            config
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(' ').map(str::trim))
        };
        Ok(ResolvedHost {
            hostname: value("hostname").unwrap_or(&self.spec.host).to_string(),
            port: value("port").and_then(|p| p.parse().ok()).unwrap_or(22),
            known_hosts: value("userknownhostsfile")
                .and_then(|files| files.split_whitespace().next())
                .unwrap_or("~/.ssh/known_hosts")
                .to_string(),
        })
    }

    fn config_error(&self, detail: String) -> SshError {
        SshError::Config {
            host: self.spec.to_string(),
            detail,
        }
    }

    /// Starts the master connection and waits until its socket accepts
    /// clients, which OpenSSH only creates once the login succeeded.
    fn start_master(&mut self) -> Result<(), SshError> {
        let socket = self.control_path();
        // A master that was killed leaves its socket behind, and a new master
        // refuses to replace it (it would run without multiplexing).
        let _ = std::fs::remove_file(&socket);
        let log_path = self.master_log_path();
        let log = File::create(&log_path).map_err(|source| SshError::Io {
            context: format!("creating {}", log_path.display()),
            source,
        })?;
        let mut command = self.ssh_command(Role::Master);
        command.arg("-N").arg("--").arg(&self.spec.host);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let mut master = spawn_master(command).map_err(|source| SshError::SpawnSsh { source })?;

        let deadline = Instant::now() + self.login_deadline();
        let mut pause = Duration::from_millis(1);
        loop {
            if socket.exists() {
                self.master = Some(master);
                return Ok(());
            }
            if let Ok(Some(_)) = master.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                // Only a failed login needs to know where the host really
                // is; a config ssh cannot use is named here too.
                self.resolved = self.resolve()?;
                return Err(self.classify_login_failure(&log));
            }
            if Instant::now() >= deadline {
                let _ = master.kill();
                let _ = master.wait();
                return Err(SshError::ConnectTimeout {
                    host: self.spec.to_string(),
                    seconds: self.login_deadline().as_secs_f64(),
                });
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// ConnectTimeout bounds the TCP connect and banner; authentication
    /// (agent, several keys, a ProxyJump hop) gets some more on top.
    fn login_deadline(&self) -> Duration {
        (self.options.connect_timeout * 3).max(Duration::from_secs(5))
    }

    /// Turns what a failed master printed into the error the user can act on.
    fn classify_login_failure(&self, log: &str) -> SshError {
        let host = self.spec.to_string();
        let resolved = &self.resolved;
        if log.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || log.contains("has changed and you have requested strict")
        {
            return SshError::HostKeyChanged {
                host,
                known_hosts: resolved.known_hosts.clone(),
                known_hosts_name: resolved.known_hosts_name(),
            };
        }
        if log.contains("Host key verification failed") || log.contains("host key is known") {
            return SshError::UnknownHostKey {
                host,
                known_hosts: resolved.known_hosts.clone(),
                keyscan: resolved.keyscan_command(),
            };
        }
        let detail = last_lines(log.as_bytes(), ERROR_LINES);
        if log.contains("Permission denied") || log.contains("Too many authentication failures") {
            return SshError::AuthenticationFailed { host, detail };
        }
        SshError::Unreachable { host, detail }
    }

    /// One round trip to learn the login user's rights, whether `timeout`
    /// exists, and the distro.
    fn probe(&mut self) -> Result<(), SshError> {
        let script =
            "id -u; command -v timeout >/dev/null 2>&1 && echo timeout || echo no-timeout; \
                      cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release";
        let output = self.run_login_shell(script)?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut lines = text.lines();
        self.login_is_root = lines.next().map(str::trim) == Some("0");
        self.has_timeout = lines.next() == Some("timeout");
        let os_release: Vec<&str> = lines.collect();
        self.distro = OsRelease::parse(&os_release.join("\n"))
            .distro()
            .ok_or_else(|| SshError::Probe {
                host: self.spec.to_string(),
                detail: format!(
                    "no ID= line (exit {}: {})",
                    output.exit_code,
                    last_lines(&output.stderr, ERROR_LINES)
                ),
            })?;
        if !self.login_is_root {
            self.check_sudo()?;
            // From here on the loop itself runs as root.
            self.drop_session();
            self.session_needs_sudo = true;
        }
        Ok(())
    }

    fn check_sudo(&mut self) -> Result<(), SshError> {
        let output = self.run_login_shell("id -un; sudo -n true")?;
        if output.exit_code == 0 {
            return Ok(());
        }
        Err(SshError::SudoUnavailable {
            host: self.spec.to_string(),
            user: String::from_utf8_lossy(&output.stdout)
                .lines()
                .next()
                .unwrap_or("?")
                .to_string(),
            detail: last_lines(&output.stderr, ERROR_LINES),
        })
    }

    /// Runs `script` as the login user (no sudo), during connect.
    fn run_login_shell(&mut self, script: &str) -> Result<CommandOutput, SshError> {
        let line = format!("exec {}", RemoteCommand::new(script).to_shell_line());
        let call = Call {
            request: Request {
                line: &line,
                stdin: b"",
                then: None,
            },
            limit: Some(self.login_deadline()),
            output_limit: Some(INTERNAL_OUTPUT_LIMIT),
            script,
        };
        self.call_framed(&call)
            .map(session::Reply::into_output)
            .map_err(|error| SshError::Unreachable {
                host: self.spec.to_string(),
                detail: error.to_string(),
            })
    }

    fn command_limit(&self, command: &RemoteCommand) -> Option<Duration> {
        command.timeout.or(self.options.command_timeout)
    }

    /// Runs `command` as root, feeding `stdin` to it and holding at most
    /// `output_limit` bytes of its stdout plus stderr; `origin` says
    /// whether it is kiln's own script (see [`session_line`]).
    fn run_as_root(
        &mut self,
        command: &RemoteCommand,
        origin: Origin,
        stdin: Option<&[u8]>,
        output_limit: Option<usize>,
    ) -> Result<CommandOutput, RemoteError> {
        let limit = self.command_limit(command);
        if self.streaming.is_some() {
            let line = remote_line(command, limit, self.has_timeout, self.login_is_root, true);
            return self.execute(&line, stdin, (limit, output_limit), &command.script);
        }
        let line = session_line(command, origin, limit, self.has_timeout);
        let call = Call {
            request: Request {
                line: &line,
                stdin: stdin.unwrap_or_default(),
                then: None,
            },
            limit,
            output_limit,
            script: &command.script,
        };
        self.call_framed(&call).map(session::Reply::into_output)
    }

    /// Runs one remote line as a client process of its own (for streaming
    /// output, which the session does not carry), reconnecting first
    /// if the connection dropped since the last command. `limits` are the
    /// wall-clock time and the bytes of stdout plus stderr kiln waits for.
    fn execute(
        &mut self,
        line: &str,
        stdin: Option<&[u8]>,
        limits: (Option<Duration>, Option<usize>),
        script: &str,
    ) -> Result<CommandOutput, RemoteError> {
        let (limit, output_limit) = limits;
        self.ensure_master()?;
        let mut command = self.ssh_command(Role::Client);
        command.arg("-T").arg("--").arg(&self.spec.host).arg(line);
        let finished = run_child(command, stdin, limit, output_limit, self.streaming.as_ref())
            .map_err(|error| self.failed(error.to_string()))?;
        let (status, stdout, stderr) = match finished {
            Finished::Exited {
                status,
                stdout,
                stderr,
            } => (status, stdout, stderr),
            Finished::TimedOut => {
                return Err(RemoteError::Timeout {
                    target: self.name(),
                    command: script_summary(script),
                    seconds: limit.unwrap_or_default().as_secs_f64(),
                })
            }
            Finished::TooLarge => {
                return Err(RemoteError::TooLarge {
                    target: self.name(),
                    what: COMMAND_OUTPUT.into(),
                    limit: output_limit.unwrap_or_default(),
                })
            }
        };
        let Some(exit_code) = status.code() else {
            return Err(self.failed(format!("ssh was killed ({status})")));
        };
        if exit_code == SSH_FAILURE_EXIT && self.connection_lost() {
            return Err(self.unreachable(format!(
                "the connection dropped: {}",
                self.drop_reason(&stderr)
            )));
        }
        Ok(CommandOutput {
            exit_code,
            stdout,
            stderr,
        })
    }

    /// 255 is both ssh's failure status and a status a command may exit
    /// with; the master tells them apart: it exits when the connection dies.
    fn connection_lost(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            if !self.master_alive() {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        !self.control_path().exists()
    }

    /// Why the connection ended: the master logs the real reason ("Timeout,
    /// server not responding", "Connection reset"); the client rarely knows.
    fn drop_reason(&self, client_stderr: &[u8]) -> String {
        let master_log = std::fs::read(self.master_log_path()).unwrap_or_default();
        if master_log.iter().any(|b| !b.is_ascii_whitespace()) {
            last_lines(&master_log, ERROR_LINES)
        } else {
            last_lines(client_stderr, ERROR_LINES)
        }
    }

    fn master_alive(&mut self) -> bool {
        matches!(self.master.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// A dropped connection (sshd restarted, network blip) gets one fresh
    /// login; if that fails too, the host is unreachable.
    fn ensure_master(&mut self) -> Result<(), RemoteError> {
        if self.master_alive() {
            return Ok(());
        }
        if let Some(mut old) = self.master.take() {
            let _ = old.wait();
        }
        self.start_master().map_err(|error| match error {
            SshError::Unreachable { detail, .. } => self.unreachable(detail),
            other => self.unreachable(other.to_string()),
        })
    }

    fn unreachable(&self, reason: String) -> RemoteError {
        // Ctrl-C ended the master on purpose (`end_ssh_masters`).
        if crate::interrupt::requested().is_some() {
            return self.failed(crate::interrupt::reason());
        }
        RemoteError::Unreachable {
            target: self.name(),
            reason,
        }
    }

    fn failed(&self, message: String) -> RemoteError {
        RemoteError::Failed {
            target: self.name(),
            message,
        }
    }

    /// Closes the master politely (SIGTERM), then makes sure.
    fn close_master(&mut self) {
        let Some(mut master) = self.master.take() else {
            return;
        };
        if matches!(master.try_wait(), Ok(None)) {
            // SIGTERM rather than `ssh -O exit`: the master closes the
            // connection and removes its socket just the same, without one
            // more ssh process per host.
            // SAFETY: kill(2) of our own child, not yet reaped.
            unsafe { libc::kill(master.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + MASTER_EXIT_GRACE;
            while matches!(master.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            let _ = master.kill();
        }
        let _ = master.wait();
    }
}

impl SshRemote {
    /// Notes an upload of the `script` type's file, until its command ends.
    fn note_upload(&mut self, path: &str) {
        let hex = path.strip_prefix(SCRIPT_UPLOAD_PREFIX).unwrap_or("");
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.scripts.push(path.to_string());
        }
    }

    /// The `script` type's command removes its file when the script ends
    /// (`PATH; status=$?; rm -f PATH`); one cut short by Ctrl-C or a
    /// timeout, or never started, leaves it: remove those. Exit 255 may be
    /// ssh's own failure, so it does not count as ended. Only over a live
    /// master: a host that went away is not waited on again.
    fn remove_unfinished_scripts(&mut self) {
        if self.scripts.is_empty() {
            return;
        }
        // Ctrl-C ended the master to cut the command short: one fresh
        // login to clean up. A host that dropped on its own is not retried.
        let interrupted = crate::interrupt::requested().is_some();
        if !self.master_alive() && (!interrupted || self.ensure_master().is_err()) {
            return;
        }
        // `note_upload` let through only /tmp/kiln-script-HEX: no quoting needed.
        let mut command = RemoteCommand::new(format!("rm -f -- {}", self.scripts.join(" ")));
        command.timeout = Some(self.options.connect_timeout);
        self.scripts.clear();
        let _ = self.run_as_root(
            &command,
            Origin::Validator,
            None,
            Some(INTERNAL_OUTPUT_LIMIT),
        );
    }
}

impl Drop for SshRemote {
    fn drop(&mut self) {
        self.remove_unfinished_scripts();
        self.drop_session();
        self.close_master();
    }
}

impl Remote for SshRemote {
    fn name(&self) -> String {
        format!("host {}", self.spec)
    }

    fn distro(&mut self) -> Result<String, RemoteError> {
        Ok(self.distro.clone())
    }

    fn run(&mut self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError> {
        let output = self.run_as_root(command, Origin::Validator, None, command.output_limit);
        if matches!(&output, Ok(out) if out.exit_code != SSH_FAILURE_EXIT) {
            self.scripts
                .retain(|path| !command.script.contains(path.as_str()));
        }
        output
    }

    fn run_streaming(
        &mut self,
        command: &RemoteCommand,
        sink: &OutputSink,
    ) -> Result<CommandOutput, RemoteError> {
        self.streaming = Some(sink.clone());
        let result = self.run(command);
        self.streaming = None;
        result
    }

    /// Streams `contents` into a temp file beside `path`, gives it the mode
    /// and owner asked for (or the old file's), then renames it over `path`,
    /// so readers never see half a file; one round trip.
    fn write_file(&mut self, write: &FileWrite<'_>) -> Result<(), RemoteError> {
        self.note_upload(write.path);
        let path = write.path;
        let command = write_command(write);
        let output = self.run_as_root(
            &command,
            Origin::Kiln,
            Some(write.contents),
            Some(INTERNAL_OUTPUT_LIMIT),
        )?;
        self.write_outcome(path, &output)
    }

    fn joins_upload_and_run(&self) -> bool {
        true
    }

    /// The upload and the command in one request (see
    /// [`SshRemote::upload_and_run`]).
    fn write_and_run(
        &mut self,
        write: &FileWrite<'_>,
        command: &RemoteCommand,
    ) -> Result<CommandOutput, RemoteError> {
        self.upload_and_run(write, command)
    }

    /// Checks the path and reads it in one round trip; `head -c` on the
    /// target keeps a huge file from ever crossing the wire.
    fn read_file(&mut self, read: &FileRead<'_>) -> Result<Option<Vec<u8>>, RemoteError> {
        let path = read.path;
        let command = read_command(read);
        let held = read
            .max_bytes
            .map(|max| max.saturating_add(1).saturating_add(INTERNAL_OUTPUT_LIMIT));
        let too_large = |target: &Self, limit| RemoteError::TooLarge {
            target: target.name(),
            what: path.to_string(),
            limit,
        };
        let output = match self.run_as_root(&command, Origin::Kiln, None, held) {
            Err(RemoteError::TooLarge { .. }) => {
                return Err(too_large(self, read.max_bytes.unwrap_or_default()))
            }
            other => other?,
        };
        match output.exit_code {
            0 => match read.max_bytes {
                Some(max) if output.stdout.len() > max => Err(too_large(self, max)),
                _ => Ok(Some(output.stdout)),
            },
            MISSING_FILE_EXIT => Ok(None),
            SYMLINK_EXIT => Err(self.symlink_refusal(path, &output.stdout)),
            NOT_REGULAR_EXIT => Err(self.failed(format!(
                "cannot read {path}: it is {}, not a regular file",
                String::from_utf8_lossy(&output.stdout).trim()
            ))),
            _ => Err(self.failed(format!(
                "cannot read {path}: {}",
                last_lines(&output.stderr, ERROR_LINES)
            ))),
        }
    }

    /// `stat -c` without `-L` is an lstat. The format letters used (`%f`
    /// raw mode in hex, `%s`, `%u`, `%g`) mean the same in GNU coreutils
    /// and busybox; `%F` would not (its wording differs), so the kind comes
    /// from the raw mode.
    fn metadata(&mut self, read: &FileRead<'_>) -> Result<Option<FileMetadata>, RemoteError> {
        let path = read.path;
        let command = metadata_command(read);
        let output = self.run_as_root(&command, Origin::Kiln, None, Some(INTERNAL_OUTPUT_LIMIT))?;
        match output.exit_code {
            0 => parse_stat(&String::from_utf8_lossy(&output.stdout))
                .map(Some)
                .ok_or_else(|| {
                    self.failed(format!(
                        "cannot inspect {path}: unexpected `stat` output {:?}",
                        String::from_utf8_lossy(&output.stdout).trim()
                    ))
                }),
            MISSING_FILE_EXIT => Ok(None),
            SYMLINK_EXIT => Err(self.symlink_refusal(path, &output.stdout)),
            _ => Err(self.failed(format!(
                "cannot inspect {path}: {}",
                last_lines(&output.stderr, ERROR_LINES)
            ))),
        }
    }
}

impl SshRemote {
    /// The refusal of an exact-path call; `stdout` is what `kiln_walk`
    /// printed ("/srv/app -> /etc").
    fn symlink_refusal(&self, path: &str, stdout: &[u8]) -> RemoteError {
        RemoteError::Symlink {
            target: self.name(),
            path: path.to_string(),
            detail: String::from_utf8_lossy(stdout).trim().to_string(),
        }
    }
}

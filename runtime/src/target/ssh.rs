//! The SSH target: a live host reached by driving the system OpenSSH client
//! (`ssh`), so that `~/.ssh/config` (Host aliases, User, Port, IdentityFile,
//! ProxyJump), the agent and `known_hosts` behave exactly as they do for the
//! user at a terminal. One connection per host serves the whole run: kiln
//! starts a ControlMaster process of its own (socket in a private temp dir)
//! and every command is a multiplexed client of it, costing a round trip
//! instead of a handshake. `BatchMode` keeps ssh from ever prompting; host
//! keys are checked strictly unless `accept_new_host_keys` says otherwise,
//! and a refusal comes back as one line saying how to accept the key. Root
//! commands go through `sudo -n` when the login user is not root. A command
//! that outlives its timeout has its ssh client killed (and the remote side
//! is reaped by `timeout(1)` shortly after); a host whose connection drops
//! is reconnected once and otherwise reported unreachable, never waited on.
//!
//! Stopping: the master runs in a process group of its own, so a Ctrl-C at
//! the terminal leaves it to kiln to close, and it gets SIGTERM from the
//! kernel when kiln dies (`PR_SET_PDEATHSIG`), so not even `kill -9` of
//! kiln leaves it behind. On SIGINT/SIGTERM the masters are ended (see
//! [`crate::interrupt`]), which ends every command in flight at once, and
//! closing a target first removes any `/tmp/kiln-script-*` whose command did
//! not finish (after a Ctrl-C, over one fresh login).

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::remote::{
    family_of, CommandOutput, FileMetadata, FileRead, FileWrite, OutputSink, OutputStream, Remote,
    RemoteCommand, RemoteError,
};

/// The flag kiln's CLI offers for trusting unknown host keys on first use;
/// named in the message that refuses an unknown key.
pub const ACCEPT_NEW_HOST_KEYS_FLAG: &str = "--accept-new-host-keys";

/// `read_file`'s remote script exits with this (sysexits' EX_NOINPUT) when the
/// file does not exist, which `cat` itself never does.
const MISSING_FILE_EXIT: i32 = 66;

/// ssh reserves this exit status for its own failures.
const SSH_FAILURE_EXIT: i32 = 255;

/// The remote `timeout(1)` fires this long after kiln's own deadline, so kiln
/// reports the timeout first and the remote side only cleans up orphans.
const REMOTE_TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// How long ssh may take to exit once its output pipes have closed.
const OUTPUT_DRAIN_GRACE: Duration = Duration::from_secs(2);

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

/// Why a host could not be connected to or used.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("invalid host `{spec}`: {reason}")]
    InvalidHostSpec { spec: String, reason: String },
    #[error(
        "{host}: its host key is not in {known_hosts}; after checking the key, add it with \
         `{keyscan} >> {known_hosts}` or run kiln with {flag}",
        flag = ACCEPT_NEW_HOST_KEYS_FLAG
    )]
    UnknownHostKey {
        host: String,
        known_hosts: String,
        keyscan: String,
    },
    #[error(
        "{host}: its host key DIFFERS from the one in {known_hosts} (reinstalled host or \
         man-in-the-middle); if the change is expected, remove the old key with \
         `ssh-keygen -f {known_hosts} -R {known_hosts_name}` and accept the new one"
    )]
    HostKeyChanged {
        host: String,
        known_hosts: String,
        known_hosts_name: String,
    },
    #[error("{host}: authentication failed: {detail}")]
    AuthenticationFailed { host: String, detail: String },
    #[error("{host} is unreachable: {detail}")]
    Unreachable { host: String, detail: String },
    #[error("{host}: no connection within {seconds:.0} s")]
    ConnectTimeout { host: String, seconds: f64 },
    #[error("{host}: ssh cannot use the configuration: {detail}")]
    Config { host: String, detail: String },
    #[error(
        "{host}: logged in as `{user}`, which is not root, and `sudo -n` does not work: {detail}"
    )]
    SudoUnavailable {
        host: String,
        user: String,
        detail: String,
    },
    #[error("{host}: cannot read the distro from /etc/os-release: {detail}")]
    Probe { host: String, detail: String },
    #[error("cannot run `ssh`: {source} (is openssh-client installed?)")]
    SpawnSsh { source: std::io::Error },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// A host as written on the command line or in an inventory:
/// `[USER@]HOST[:PORT]`, with IPv6 addresses as `[ADDR]:PORT` or bare.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostSpec {
    /// Login user; `None` leaves it to ssh_config (`User`) or the local user.
    pub user: Option<String>,
    /// Host name, ssh_config alias or address.
    pub host: String,
    /// Port; `None` leaves it to ssh_config (`Port`) or 22.
    pub port: Option<u16>,
}

impl HostSpec {
    /// A spec with only a host name, e.g. an ssh_config alias.
    pub fn new(host: impl Into<String>) -> Self {
        HostSpec {
            user: None,
            host: host.into(),
            port: None,
        }
    }
}

impl FromStr for HostSpec {
    type Err = SshError;

    fn from_str(text: &str) -> Result<Self, SshError> {
        let invalid = |reason: &str| SshError::InvalidHostSpec {
            spec: text.to_string(),
            reason: reason.to_string(),
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        let (user, rest) = match text.split_once('@') {
            Some((user, rest)) => (Some(user), rest),
            None => (None, text),
        };
        let (host, port) = split_host_port(rest).map_err(|reason| invalid(&reason))?;
        if let Some(user) = user {
            check_user(user).map_err(|reason| invalid(&reason))?;
        }
        check_host(host).map_err(|reason| invalid(&reason))?;
        Ok(HostSpec {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        match self.port {
            Some(port) if self.host.contains(':') => write!(f, "[{}]:{port}", self.host),
            Some(port) => write!(f, "{}:{port}", self.host),
            None => f.write_str(&self.host),
        }
    }
}

/// Splits `HOST[:PORT]`, `[V6ADDR][:PORT]` or a bare IPv6 address (two or
/// more colons, so no port can be told apart).
fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, tail) = bracketed
            .split_once(']')
            .ok_or("`[` without a closing `]`")?;
        let port = match tail {
            "" => None,
            _ => Some(parse_port(
                tail.strip_prefix(':').ok_or("expected `:PORT` after `]`")?,
            )?),
        };
        return Ok((host, port));
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => Ok((host, Some(parse_port(port)?))),
        _ => Ok((text, None)),
    }
}

/// Parses a TCP port, 1 to 65535.
pub(crate) fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("`{text}` is not a port (1 to 65535)")),
    }
}

pub(crate) fn check_user(user: &str) -> Result<(), String> {
    let bad = user.is_empty()
        || user.starts_with('-')
        || user
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "@:/[]".contains(c));
    if bad {
        return Err(format!("`{user}` is not a user name"));
    }
    Ok(())
}

/// Host names reach ssh as a single argument after `--`, but a name that
/// looks like an option or holds shell or config syntax is a mistake anyway.
pub(crate) fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host name is empty".into());
    }
    if host.starts_with('-') {
        return Err(format!("host name `{host}` starts with `-`"));
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ".-_:%".contains(*c)))
    {
        return Err(format!(
            "host name `{host}` contains `{}`",
            c.escape_default()
        ));
    }
    Ok(())
}

/// What `ssh -G` says the host resolves to, for messages about host keys.
#[derive(Debug, Clone)]
struct ResolvedHost {
    hostname: String,
    port: u16,
    known_hosts: String,
}

impl ResolvedHost {
    /// The name `known_hosts` files this host under.
    fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.hostname.clone()
        } else {
            format!("[{}]:{}", self.hostname, self.port)
        }
    }

    fn keyscan_command(&self) -> String {
        format!("ssh-keyscan -p {} {}", self.port, self.hostname)
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

/// How an ssh child process ended.
enum Finished {
    Exited {
        status: ExitStatus,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    TimedOut,
}

/// A live host reached over SSH.
pub struct SshTarget {
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
}

impl SshTarget {
    /// Connects to `spec`: resolves it through ssh_config, opens the shared
    /// connection, and learns the login user's rights and the distro.
    pub fn connect(spec: &HostSpec, options: &SshOptions) -> Result<SshTarget, SshError> {
        let control_dir = make_control_dir()?;
        let mut target = SshTarget {
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
        };
        end_masters_on_interrupt();
        target.resolved = target.resolve()?;
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
        let (status, stdout, stderr) =
            match run_child(command, None, Some(self.options.connect_timeout), None)? {
                Finished::Exited {
                    status,
                    stdout,
                    stderr,
                } => (status, stdout, stderr),
                Finished::TimedOut => {
                    return Err(self.config_error("`ssh -G` did not finish".into()))
                }
            };
        if !status.success() {
            return Err(self.config_error(last_lines(&stderr)));
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
        let detail = last_lines(log.as_bytes());
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
        self.distro =
            distro_from_os_release(&os_release.join("\n")).ok_or_else(|| SshError::Probe {
                host: self.spec.to_string(),
                detail: format!(
                    "no ID= line (exit {}: {})",
                    output.exit_code,
                    last_lines(&output.stderr)
                ),
            })?;
        if !self.login_is_root {
            self.check_sudo()?;
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
            detail: last_lines(&output.stderr),
        })
    }

    /// Runs `script` as the login user (no sudo), during connect.
    fn run_login_shell(&mut self, script: &str) -> Result<CommandOutput, SshError> {
        let line = RemoteCommand::new(script).to_shell_line();
        self.execute(&line, None, Some(self.login_deadline()), script)
            .map_err(|error| SshError::Unreachable {
                host: self.spec.to_string(),
                detail: error.to_string(),
            })
    }

    fn command_limit(&self, command: &RemoteCommand) -> Option<Duration> {
        command.timeout.or(self.options.command_timeout)
    }

    /// Runs `command` as root, feeding `stdin` to it.
    fn run_as_root(
        &mut self,
        command: &RemoteCommand,
        stdin: Option<&[u8]>,
    ) -> Result<CommandOutput, RemoteError> {
        let limit = self.command_limit(command);
        let line = remote_line(command, limit, self.has_timeout, self.login_is_root);
        self.execute(&line, stdin, limit, &command.script)
    }

    /// Runs one remote line over the shared connection, reconnecting first
    /// if the connection dropped since the last command.
    fn execute(
        &mut self,
        line: &str,
        stdin: Option<&[u8]>,
        limit: Option<Duration>,
        script: &str,
    ) -> Result<CommandOutput, RemoteError> {
        self.ensure_master()?;
        let mut command = self.ssh_command(Role::Client);
        command.arg("-T").arg("--").arg(&self.spec.host).arg(line);
        let finished = run_child(command, stdin, limit, self.streaming.as_ref())
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
                    command: summarize(script),
                    seconds: limit.unwrap_or_default().as_secs_f64(),
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
            last_lines(&master_log)
        } else {
            last_lines(client_stderr)
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
            return self.failed("interrupted".into());
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

    /// Closes the master politely (`ssh -O exit`), then makes sure.
    fn close_master(&mut self) {
        let Some(mut master) = self.master.take() else {
            return;
        };
        if matches!(master.try_wait(), Ok(None)) {
            let mut command = self.ssh_command(Role::Control);
            command.arg("-O").arg("exit").arg("--").arg(&self.spec.host);
            let _ = run_child(command, None, Some(MASTER_EXIT_GRACE), None);
            let deadline = Instant::now() + MASTER_EXIT_GRACE;
            while matches!(master.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            let _ = master.kill();
        }
        let _ = master.wait();
    }
}

impl SshTarget {
    /// Notes an upload of the `script` type's file, until its command ends.
    fn note_upload(&mut self, path: &str) {
        let hex = path.strip_prefix("/tmp/kiln-script-").unwrap_or("");
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
        let _ = self.run_as_root(&command, None);
    }
}

impl Drop for SshTarget {
    fn drop(&mut self) {
        self.remove_unfinished_scripts();
        self.close_master();
    }
}

/// Spawns a master from one thread that lives as long as the process:
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends,
/// and kiln's run and worker threads end long before their targets close.
/// The master gets its own process group (a Ctrl-C at the terminal is
/// kiln's to handle; kiln closes the master itself) and SIGTERM when kiln
/// dies, however it dies; ssh then exits and removes its socket.
fn spawn_master(mut command: Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<Request>();
        let spawned = thread::Builder::new()
            .name("kiln-ssh-master".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(error) = spawned {
            eprintln!("kiln: cannot start the ssh master thread: {error}");
        }
        Mutex::new(requests)
    });
    let kiln = std::process::id() as libc::pid_t;
    command.process_group(0);
    // SAFETY: runs in the forked child before exec; prctl, getppid and
    // _exit are async-signal-safe and touch no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // kiln died between the fork and the prctl: nobody would
            // ever signal this master.
            if libc::getppid() != kiln {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (reply, answer) = mpsc::channel();
    let gone = || std::io::Error::other("the ssh master thread is gone");
    spawner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((command, reply))
        .map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}

/// Registers (once) the SIGINT/SIGTERM hook that ends kiln's ssh masters.
/// Ending a command's own ssh client would not do: a multiplexed client
/// hands its stdin, stdout and stderr to the master, which keeps them open
/// until the remote command ends, so kiln would wait for it. Without its
/// master every command in flight ends at once, the validator fails, and
/// no new one starts.
fn end_masters_on_interrupt() {
    static HOOKED: OnceLock<()> = OnceLock::new();
    HOOKED.get_or_init(|| crate::interrupt::add_hook(|_| end_ssh_masters()));
}

/// SIGTERMs this process's own ssh masters (`ControlMaster=yes` on a kiln
/// control socket); ssh then closes its sessions and removes its socket.
fn end_ssh_masters() {
    let kiln = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the command name, which may hold spaces: state, ppid.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if parent != Some(kiln.as_str()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("ControlMaster=yes") && cmdline.contains("/kiln-ssh-") {
            // SAFETY: sending a signal to a process id; no memory involved.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

impl Remote for SshTarget {
    fn name(&self) -> String {
        format!("host {}", self.spec)
    }

    fn distro(&mut self) -> Result<String, RemoteError> {
        Ok(self.distro.clone())
    }

    fn run(&mut self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError> {
        let output = self.run_as_root(command, None);
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
        let result = self.run_as_root(command, None);
        self.streaming = None;
        result
    }

    /// Streams `contents` into a temp file beside `path`, then renames it
    /// over `path`, so readers never see half a file.
    // TODO(sandbox): owner and mode kept or set, exact_path, timeout.
    fn write_file(&mut self, write: &FileWrite<'_>) -> Result<(), RemoteError> {
        self.note_upload(write.path);
        let path = write.path;
        let mut command = RemoteCommand::new(
            r#"set -e
tmp=$(mktemp "$(dirname -- "$KILN_PATH")/.kiln-write.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod "$KILN_MODE" "$tmp"
mv -f "$tmp" "$KILN_PATH""#,
        );
        command.env.push(("KILN_PATH".into(), path.into()));
        command.env.push((
            "KILN_MODE".into(),
            format!("{:o}", write.mode.unwrap_or(0o644) & 0o7777),
        ));
        command.timeout = write.timeout;
        let output = self.run_as_root(&command, Some(write.contents))?;
        if output.exit_code != 0 {
            return Err(self.failed(format!(
                "cannot write {path}: {}",
                last_lines(&output.stderr)
            )));
        }
        Ok(())
    }

    // TODO(sandbox): max_bytes, regular files only, exact_path.
    fn read_file(&mut self, read: &FileRead<'_>) -> Result<Option<Vec<u8>>, RemoteError> {
        let path = read.path;
        let mut command = RemoteCommand::new(format!(
            r#"[ -e "$KILN_PATH" ] || exit {MISSING_FILE_EXIT}; exec cat -- "$KILN_PATH""#
        ));
        command.env.push(("KILN_PATH".into(), path.into()));
        command.timeout = read.timeout;
        let output = self.run_as_root(&command, None)?;
        match output.exit_code {
            0 => Ok(Some(output.stdout)),
            MISSING_FILE_EXIT => Ok(None),
            _ => Err(self.failed(format!(
                "cannot read {path}: {}",
                last_lines(&output.stderr)
            ))),
        }
    }

    // TODO(sandbox): implement.
    fn metadata(&mut self, read: &FileRead<'_>) -> Result<Option<FileMetadata>, RemoteError> {
        Err(self.failed(format!("cannot inspect {}: not implemented yet", read.path)))
    }
}

/// The line the remote login shell runs for `command`: the command's own
/// quoted line, under `timeout` when limited (and the host has it), under
/// `sudo -n` unless the login user is root. `timeout` goes inside sudo so
/// that it may signal the command.
fn remote_line(
    command: &RemoteCommand,
    limit: Option<Duration>,
    has_timeout: bool,
    login_is_root: bool,
) -> String {
    let mut line = command.to_shell_line();
    if let (Some(limit), true) = (limit, has_timeout) {
        let seconds = (limit + REMOTE_TIMEOUT_GRACE).as_secs_f64().ceil() as u64;
        line = format!("timeout -k 5 {seconds} {line}");
    }
    if !login_is_root {
        line = format!("sudo -n -- {line}");
    }
    line
}

/// The control socket's directory: private, and short enough for a Unix
/// socket path (108 bytes), which a long `$TMPDIR` might not be.
fn make_control_dir() -> Result<tempfile::TempDir, SshError> {
    let preferred = std::env::temp_dir();
    let usable = |dir: &Path| {
        let text = dir.to_string_lossy();
        text.len() < 60 && !text.contains(|c: char| c.is_whitespace() || c == '%')
    };
    let base = if usable(&preferred) {
        preferred
    } else {
        PathBuf::from("/tmp")
    };
    tempfile::Builder::new()
        .prefix("kiln-ssh-")
        .tempdir_in(&base)
        .map_err(|source| SshError::Io {
            context: format!("creating a control directory in {}", base.display()),
            source,
        })
}

/// Runs an ssh child to completion or until `limit`, feeding `stdin` and
/// collecting its output on threads so no pipe can fill up and stall it;
/// `tee` also gets each chunk of output as it arrives.
fn run_child(
    mut command: Command,
    stdin: Option<&[u8]>,
    limit: Option<Duration>,
    tee: Option<&OutputSink>,
) -> Result<Finished, SshError> {
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|source| SshError::SpawnSsh { source })?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        // Not joined: if the command never reads its stdin, the write ends
        // with EPIPE once the session closes.
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let stdout = read_in_background(child.stdout.take(), tee, OutputStream::Stdout);
    let stderr = read_in_background(child.stderr.take(), tee, OutputStream::Stderr);
    // The output pipes close when the session ends, a moment before ssh
    // exits, so waiting on them (not polling the child) keeps quick commands
    // quick.
    let deadline = limit.map(|limit| Instant::now() + limit);
    let outputs = receive_by(&stdout, deadline).zip(receive_by(&stderr, deadline));
    let status = match outputs {
        Some(_) => wait_until(
            &mut child,
            deadline.map(|deadline| deadline.max(Instant::now()) + OUTPUT_DRAIN_GRACE),
        ),
        None => None,
    };
    match (status, outputs) {
        (Some(status), Some((stdout, stderr))) => Ok(Finished::Exited {
            status,
            stdout,
            stderr,
        }),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Ok(Finished::TimedOut)
        }
    }
}

/// The output a reader thread collected, unless `deadline` passes first.
fn receive_by(output: &mpsc::Receiver<Vec<u8>>, deadline: Option<Instant>) -> Option<Vec<u8>> {
    match deadline {
        Some(deadline) => output
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok(),
        None => output.recv().ok(),
    }
}

fn read_in_background(
    pipe: Option<impl Read + Send + 'static>,
    tee: Option<&OutputSink>,
    stream: OutputStream,
) -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    let tee = tee.cloned();
    thread::spawn(move || {
        let mut buffer = Vec::new();
        if let Some(mut pipe) = pipe {
            match tee {
                None => {
                    let _ = pipe.read_to_end(&mut buffer);
                }
                Some(tee) => {
                    let mut chunk = [0u8; 8192];
                    loop {
                        match pipe.read(&mut chunk) {
                            Ok(0) => break,
                            Ok(n) => {
                                tee.send(stream, &chunk[..n]);
                                buffer.extend_from_slice(&chunk[..n]);
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(_) => break,
                        }
                    }
                }
            }
        }
        let _ = sender.send(buffer);
    });
    receiver
}

/// Waits for `child` to exit, polling so the wait can end at `deadline`;
/// the pause grows from 1 ms so quick commands stay quick.
fn wait_until(child: &mut Child, deadline: Option<Instant>) -> Option<ExitStatus> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return child.wait().ok(),
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return None;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// The distro `os_case` matches against: `ID`, or when kiln knows no family
/// for it, the first `ID_LIKE` entry it does know ("myos" like "rhel" -> "rhel").
pub fn distro_from_os_release(text: &str) -> Option<String> {
    let value = |key: &str| {
        text.lines().find_map(|line| {
            let (name, value) = line.trim().split_once('=')?;
            (name == key).then(|| {
                value
                    .trim()
                    .trim_matches(|c| c == '"' || c == '\'')
                    .to_string()
            })
        })
    };
    let id = value("ID")
        .filter(|id| !id.is_empty())?
        .to_ascii_lowercase();
    if family_of(&id).is_some() {
        return Some(id);
    }
    let like = value("ID_LIKE").unwrap_or_default().to_ascii_lowercase();
    let known_like = like
        .split_whitespace()
        .find(|candidate| family_of(candidate).is_some());
    Some(known_like.map(str::to_string).unwrap_or(id))
}

/// The last few non-empty lines of ssh's or a command's stderr, on one line.
fn last_lines(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        "no message".to_string()
    } else {
        tail.join(" / ")
    }
}

/// The first line of a script, shortened, for messages.
fn summarize(script: &str) -> String {
    let first = script.lines().next().unwrap_or("").trim();
    let mut summary: String = first.chars().take(60).collect();
    if summary.len() < first.len() || script.trim().lines().count() > 1 {
        summary.push_str(" ...");
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> HostSpec {
        text.parse()
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn host_specs_parse_user_host_and_port() {
        assert_eq!(spec("web1"), HostSpec::new("web1"));
        assert_eq!(
            spec("root@10.0.0.5:2222"),
            HostSpec {
                user: Some("root".into()),
                host: "10.0.0.5".into(),
                port: Some(2222)
            }
        );
        assert_eq!(
            spec("[::1]:2200"),
            HostSpec {
                user: None,
                host: "::1".into(),
                port: Some(2200)
            }
        );
        assert_eq!(
            spec("admin@[fe80::1%eth0]"),
            HostSpec {
                user: Some("admin".into()),
                host: "fe80::1%eth0".into(),
                port: None
            }
        );
        assert_eq!(spec("fe80::1"), HostSpec::new("fe80::1"));
    }

    #[test]
    fn host_specs_print_back_the_same() {
        for text in ["web1", "root@10.0.0.5:2222", "[::1]:2200", "u@fe80::1"] {
            assert_eq!(spec(text).to_string(), text);
        }
    }

    #[test]
    fn bad_host_specs_say_why() {
        for (text, why) in [
            ("", "empty"),
            ("-oProxyCommand=x", "starts with `-`"),
            ("web1:0", "not a port"),
            ("web1:http", "not a port"),
            ("[::1", "closing"),
            ("[::1]22", "`:PORT`"),
            ("@web1", "user name"),
            ("a b", "contains"),
            ("x;reboot", "contains"),
        ] {
            let error = text.parse::<HostSpec>().expect_err(text).to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn distro_prefers_id_then_a_known_id_like() {
        assert_eq!(
            distro_from_os_release("NAME=\"Debian\"\nID=debian\n").as_deref(),
            Some("debian")
        );
        assert_eq!(
            distro_from_os_release("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"").as_deref(),
            Some("rocky")
        );
        assert_eq!(
            distro_from_os_release("ID=myos\nID_LIKE=\"frob rhel fedora\"").as_deref(),
            Some("rhel")
        );
        assert_eq!(distro_from_os_release("ID=myos\n").as_deref(), Some("myos"));
        assert_eq!(distro_from_os_release("NAME=x\n"), None);
    }

    #[test]
    fn root_commands_go_through_sudo_and_timeout() {
        let mut command = RemoteCommand::new("apt-get install -y \"$p\"");
        command.env.push(("p".into(), "x'$(id)".into()));
        let plain = command.to_shell_line();
        assert_eq!(remote_line(&command, None, true, true), plain);
        assert_eq!(
            remote_line(&command, None, true, false),
            format!("sudo -n -- {plain}")
        );
        let limit = Some(Duration::from_millis(1500));
        assert_eq!(
            remote_line(&command, limit, true, false),
            format!("sudo -n -- timeout -k 5 7 {plain}")
        );
        assert_eq!(remote_line(&command, limit, false, true), plain);
    }

    #[test]
    fn stderr_tails_fit_on_one_line() {
        assert_eq!(last_lines(b"a\r\n\r\nb\nc\nd\n"), "b / c / d");
        assert_eq!(last_lines(b""), "no message");
        assert_eq!(
            summarize("apt-get install -y foo\nmore"),
            "apt-get install -y foo ..."
        );
    }
}

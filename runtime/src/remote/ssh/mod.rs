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
//!
//! Output is bounded on both ends: kiln stops reading at a command's output
//! limit and kills its client, and the target cuts each stream with `head -c`
//! so the command dies of SIGPIPE there. File calls are one round trip each,
//! their checks (regular file, symlinks on an exact path) made on the target.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::remote::distro::OsRelease;
use crate::remote::{
    shell_quote, CommandOutput, FileKind, FileMetadata, FileRead, FileWrite, OutputSink,
    OutputStream, Remote, RemoteCommand, RemoteError, COMMAND_OUTPUT,
};

/// The flag kiln's CLI offers for trusting unknown host keys on first use;
/// named in the message that refuses an unknown key.
pub const ACCEPT_NEW_HOST_KEYS_FLAG: &str = "--accept-new-host-keys";

/// The file calls' remote scripts exit with this (sysexits' EX_NOINPUT) when
/// nothing is at the path, which `cat`, `head` and `stat` never do.
const MISSING_FILE_EXIT: i32 = 66;

/// The remote scripts of exact-path file calls exit with this (printing the
/// link they met) when a symlink is on the way; `kiln_walk` hard-codes it.
const SYMLINK_EXIT: i32 = 67;

/// `read_file`'s remote script exits with this (printing what the path is)
/// when the path is not a regular file.
const NOT_REGULAR_EXIT: i32 = 68;

/// The most output kiln holds from its own scripts (the connect probe, file
/// calls' error messages): they print little, a hostile host may not.
const INTERNAL_OUTPUT_LIMIT: usize = 1 << 20;

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
    /// Its stdout plus stderr passed the output limit.
    TooLarge,
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
        self.distro = OsRelease::parse(&os_release.join("\n"))
            .distro()
            .ok_or_else(|| SshError::Probe {
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
        let limits = (Some(self.login_deadline()), Some(INTERNAL_OUTPUT_LIMIT));
        self.execute(&line, None, limits, script)
            .map_err(|error| SshError::Unreachable {
                host: self.spec.to_string(),
                detail: error.to_string(),
            })
    }

    fn command_limit(&self, command: &RemoteCommand) -> Option<Duration> {
        command.timeout.or(self.options.command_timeout)
    }

    /// Runs `command` as root, feeding `stdin` to it and holding at most
    /// `output_limit` bytes of its stdout plus stderr.
    fn run_as_root(
        &mut self,
        command: &RemoteCommand,
        stdin: Option<&[u8]>,
        output_limit: Option<usize>,
    ) -> Result<CommandOutput, RemoteError> {
        let limit = self.command_limit(command);
        let streams = self.streaming.is_some();
        let line = remote_line(
            command,
            limit,
            self.has_timeout,
            self.login_is_root,
            streams,
        );
        self.execute(&line, stdin, (limit, output_limit), &command.script)
    }

    /// Runs one remote line over the shared connection, reconnecting first
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
                    command: summarize(script),
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

    /// Closes the master politely (`ssh -O exit`), then makes sure.
    fn close_master(&mut self) {
        let Some(mut master) = self.master.take() else {
            return;
        };
        if matches!(master.try_wait(), Ok(None)) {
            let mut command = self.ssh_command(Role::Control);
            command.arg("-O").arg("exit").arg("--").arg(&self.spec.host);
            let _ = run_child(command, None, Some(MASTER_EXIT_GRACE), None, None);
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
        let _ = self.run_as_root(&command, None, Some(INTERNAL_OUTPUT_LIMIT));
    }
}

impl Drop for SshRemote {
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

impl Remote for SshRemote {
    fn name(&self) -> String {
        format!("host {}", self.spec)
    }

    fn distro(&mut self) -> Result<String, RemoteError> {
        Ok(self.distro.clone())
    }

    fn run(&mut self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError> {
        let output = self.run_as_root(command, None, command.output_limit);
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
        // `mv -T` (GNU coreutils) renames onto a final symlink even when it
        // points at a directory; plain `mv` would move the file into it.
        // `chown` comes before `chmod` because it clears setuid bits.
        let mut command = RemoteCommand::new(format!(
            r#"set -e
{WALK_FUNCTION}
p=$KILN_PATH
[ "$KILN_EXACT" != 1 ] || kiln_walk "$p" parents
if [ -d "$p" ] && [ ! -L "$p" ]; then echo "$p is a directory" >&2; exit 1; fi
mode=$KILN_MODE
owner=$KILN_UID
group=$KILN_GID
if [ -f "$p" ] && [ ! -L "$p" ]; then
  set -- $(stat -c '%a %u %g' -- "$p")
  mode=${{mode:-$1}}
  owner=${{owner:-$2}}
  group=${{group:-$3}}
fi
tmp=$(mktemp "$(dirname -- "$p")/.kiln-write.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chown "${{owner:-0}}:${{group:-0}}" "$tmp"
chmod "${{mode:-644}}" "$tmp"
mv -f -T "$tmp" "$p""#
        ));
        let number = |value: Option<u32>| value.map(|v| v.to_string()).unwrap_or_default();
        command.env = vec![
            ("KILN_PATH".into(), path.into()),
            ("KILN_EXACT".into(), flag(write.exact_path)),
            (
                "KILN_MODE".into(),
                write
                    .mode
                    .map(|mode| format!("{:o}", mode & 0o7777))
                    .unwrap_or_default(),
            ),
            ("KILN_UID".into(), number(write.uid)),
            ("KILN_GID".into(), number(write.gid)),
        ];
        command.timeout = write.timeout;
        let output =
            self.run_as_root(&command, Some(write.contents), Some(INTERNAL_OUTPUT_LIMIT))?;
        match output.exit_code {
            0 => Ok(()),
            SYMLINK_EXIT => Err(self.symlink_refusal(path, &output.stdout)),
            _ => Err(self.failed(format!(
                "cannot write {path}: {}",
                last_lines(&output.stderr)
            ))),
        }
    }

    /// Checks the path and reads it in one round trip; `head -c` on the
    /// target keeps a huge file from ever crossing the wire.
    fn read_file(&mut self, read: &FileRead<'_>) -> Result<Option<Vec<u8>>, RemoteError> {
        let path = read.path;
        // `[ -f ]` turns away directories, devices (/dev/zero), FIFOs (which
        // would block the read) and sockets before anything opens the path.
        // Swapping the file for a FIFO between the test and `head` is left
        // to the timeout.
        let mut command = RemoteCommand::new(format!(
            r#"{WALK_FUNCTION}
p=$KILN_PATH
[ "$KILN_EXACT" != 1 ] || kiln_walk "$p" self
[ -e "$p" ] || exit {MISSING_FILE_EXIT}
if [ ! -f "$p" ]; then
  if [ -d "$p" ]; then echo a directory
  elif [ -c "$p" ]; then echo a character device
  elif [ -b "$p" ]; then echo a block device
  elif [ -p "$p" ]; then echo a FIFO
  elif [ -S "$p" ]; then echo a socket
  else echo something else
  fi
  exit {NOT_REGULAR_EXIT}
fi
[ -z "$KILN_HEAD" ] || exec head -c "$KILN_HEAD" -- "$p"
exec cat -- "$p""#
        ));
        command.env = vec![
            ("KILN_PATH".into(), path.into()),
            ("KILN_EXACT".into(), flag(read.exact_path)),
            (
                "KILN_HEAD".into(),
                read.max_bytes
                    .map(|max| max.saturating_add(1).to_string())
                    .unwrap_or_default(),
            ),
        ];
        command.timeout = read.timeout;
        let held = read
            .max_bytes
            .map(|max| max.saturating_add(1).saturating_add(INTERNAL_OUTPUT_LIMIT));
        let too_large = |target: &Self, limit| RemoteError::TooLarge {
            target: target.name(),
            what: path.to_string(),
            limit,
        };
        let output = match self.run_as_root(&command, None, held) {
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
                last_lines(&output.stderr)
            ))),
        }
    }

    /// `stat -c` without `-L` is an lstat. The format letters used (`%f`
    /// raw mode in hex, `%s`, `%u`, `%g`) mean the same in GNU coreutils
    /// and busybox; `%F` would not (its wording differs), so the kind comes
    /// from the raw mode.
    fn metadata(&mut self, read: &FileRead<'_>) -> Result<Option<FileMetadata>, RemoteError> {
        let path = read.path;
        let mut command = RemoteCommand::new(format!(
            r#"{WALK_FUNCTION}
p=$KILN_PATH
[ "$KILN_EXACT" != 1 ] || kiln_walk "$p" parents
[ -e "$p" ] || [ -L "$p" ] || exit {MISSING_FILE_EXIT}
exec stat -c '%f %s %u %g' -- "$p""#
        ));
        command.env = vec![
            ("KILN_PATH".into(), path.into()),
            ("KILN_EXACT".into(), flag(read.exact_path)),
        ];
        command.timeout = read.timeout;
        let output = self.run_as_root(&command, None, Some(INTERNAL_OUTPUT_LIMIT))?;
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
                last_lines(&output.stderr)
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

/// A shell function for exact-path calls: walks `$1` from the root and
/// exits with [`SYMLINK_EXIT`], printing "COMPONENT -> WHERE", at the first
/// component that is a symlink; `$2` is `self` to check the last component
/// too, `parents` to stop before it. Each component is tested once its
/// parents are known not to be links, so `[ -L ]` sees the real thing.
const WALK_FUNCTION: &str = r#"kiln_walk() {
  case $1 in /*) cur= ;; *) cur=. ;; esac
  rest=${1#/}
  while [ -n "$rest" ]; do
    case $rest in
      */*) part=${rest%%/*}; rest=${rest#*/} ;;
      *) part=$rest; rest=; [ "$2" = self ] || return 0 ;;
    esac
    [ -n "$part" ] || continue
    cur=$cur/$part
    if [ -L "$cur" ]; then
      printf '%s -> %s\n' "$cur" "$(readlink -- "$cur")"
      exit 67
    fi
  done
}"#;

/// `"1"` or `"0"`, for a flag passed in the environment.
fn flag(value: bool) -> String {
    if value { "1" } else { "0" }.to_string()
}

/// Parses `stat -c '%f %s %u %g'`.
fn parse_stat(text: &str) -> Option<FileMetadata> {
    let mut fields = text.split_whitespace();
    let raw = u32::from_str_radix(fields.next()?, 16).ok()?;
    let size = fields.next()?.parse().ok()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some(FileMetadata {
        kind: FileKind::from_mode(raw),
        size,
        mode: raw & 0o7777,
        uid,
        gid,
    })
}

/// The line the remote login shell runs for `command`: the command's own
/// quoted line, bounded to its output limit, under `timeout` when limited
/// (and the host has it), under `sudo -n` unless the login user is root.
/// `timeout` goes inside sudo so that it may signal the command.
fn remote_line(
    command: &RemoteCommand,
    limit: Option<Duration>,
    has_timeout: bool,
    login_is_root: bool,
    streams: bool,
) -> String {
    let mut line = command.to_shell_line();
    if let Some(output_limit) = command.output_limit {
        line = bounded_line(&line, output_limit, streams);
    }
    if let (Some(limit), true) = (limit, has_timeout) {
        let seconds = (limit + REMOTE_TIMEOUT_GRACE).as_secs_f64().ceil() as u64;
        line = format!("timeout -k 5 {seconds} {line}");
    }
    if !login_is_root {
        line = format!("sudo -n -- {line}");
    }
    line
}

/// `line` with its stdout and stderr each passed through `head -c
/// LIMIT+1` on the target: once kiln has seen more than it will hold, the
/// command dies of SIGPIPE on its next write even if the session (held
/// open by the ssh master) lingers after kiln killed its client. The
/// command's exit status comes back through fd 5 (POSIX sh has no
/// `pipefail`); fds 3 to 5 are closed for the command so it cannot write
/// around the `head`s or hold the status pipe open.
///
/// `head` writes through stdio, so into a pipe it passes output on only in
/// 4 KiB blocks or at the end; while the output streams (`-vv`) it runs
/// under `stdbuf -o0` where the target has it, so each line arrives as the
/// command writes it.
fn bounded_line(line: &str, output_limit: usize, streams: bool) -> String {
    let bytes = output_limit.saturating_add(1);
    let head = if streams {
        "kiln_head() { if command -v stdbuf >/dev/null 2>&1; then stdbuf -o0 head \"$@\"; else head \"$@\"; fi; }\n"
    } else {
        "kiln_head() { head \"$@\"; }\n"
    };
    let wrapper = format!(
        "{head}exec 3>&1 4>&2\n\
         status=$( {{ {{ {{ {line} 3>&- 4>&- 5>&-; echo \"$?\" >&5; }} | kiln_head -c {bytes} >&3; }} 2>&1 | kiln_head -c {bytes} >&4; }} 5>&1 )\n\
         exit \"${{status:-1}}\""
    );
    format!("/bin/sh -c {}", shell_quote(&wrapper))
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
/// With `output_limit`, the readers share one count of stdout plus stderr
/// bytes and stop where it passes the limit; the ssh client is then killed,
/// so no more than the limit (plus one read chunk per stream) is ever held.
fn run_child(
    mut command: Command,
    stdin: Option<&[u8]>,
    limit: Option<Duration>,
    output_limit: Option<usize>,
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
    let (sender, collected) = mpsc::channel();
    let counted = Arc::new(AtomicUsize::new(0));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let readers = Readers {
        sender: &sender,
        counted: &counted,
        output_limit,
        tee,
    };
    readers.spawn(stdout, Stream::Stdout);
    readers.spawn(stderr, Stream::Stderr);
    drop(sender);
    // The output pipes close when the session ends, a moment before ssh
    // exits, so waiting on them (not polling the child) keeps quick commands
    // quick. Either reader may report the overflow first, so both report on
    // one channel.
    let deadline = limit.map(|limit| Instant::now() + limit);
    let (mut stdout, mut stderr) = (None, None);
    while stdout.is_none() || stderr.is_none() {
        let received = match deadline {
            Some(deadline) => {
                collected.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            }
            None => collected
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        let Ok(Collected { stream, bytes }) = received else {
            return Ok(end_child(child, Finished::TimedOut));
        };
        let Ok(bytes) = bytes else {
            // The mux client passed its pipes to the master, which keeps
            // writing into them until the session ends: killing the client
            // ends its session, and the remote side is bounded on its own
            // (see `bounded_line`).
            return Ok(end_child(child, Finished::TooLarge));
        };
        match stream {
            Stream::Stdout => stdout = Some(bytes),
            Stream::Stderr => stderr = Some(bytes),
        }
    }
    let status = wait_until(
        &mut child,
        deadline.map(|deadline| deadline.max(Instant::now()) + OUTPUT_DRAIN_GRACE),
    );
    match (status, stdout, stderr) {
        (Some(status), Some(stdout), Some(stderr)) => Ok(Finished::Exited {
            status,
            stdout,
            stderr,
        }),
        _ => Ok(end_child(child, Finished::TimedOut)),
    }
}

/// Kills an ssh child kiln gave up on and reaps it.
fn end_child(mut child: Child, finished: Finished) -> Finished {
    let _ = child.kill();
    let _ = child.wait();
    finished
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_output(self) -> OutputStream {
        match self {
            Stream::Stdout => OutputStream::Stdout,
            Stream::Stderr => OutputStream::Stderr,
        }
    }
}

/// What one reader thread collected: the stream's bytes, or `Err` when the
/// shared count passed the output limit.
struct Collected {
    stream: Stream,
    bytes: Result<Vec<u8>, ()>,
}

/// How much a reader thread reads at once: the most it holds past the limit.
const READ_CHUNK: usize = 64 * 1024;

/// What the two reader threads of one command share.
struct Readers<'a> {
    sender: &'a mpsc::Sender<Collected>,
    counted: &'a Arc<AtomicUsize>,
    output_limit: Option<usize>,
    tee: Option<&'a OutputSink>,
}

impl Readers<'_> {
    fn spawn(&self, pipe: Option<impl Read + Send + 'static>, stream: Stream) {
        let sender = self.sender.clone();
        let counted = Arc::clone(self.counted);
        let output_limit = self.output_limit;
        let tee = self.tee.cloned();
        thread::spawn(move || {
            let bytes = match pipe {
                Some(pipe) => read_bounded(pipe, &counted, output_limit, |chunk| {
                    if let Some(tee) = &tee {
                        tee.send(stream.as_output(), chunk);
                    }
                }),
                None => Ok(Vec::new()),
            };
            // Dropping the pipe here (at the limit) makes further writes by
            // the ssh master fail instead of filling kiln's memory.
            let _ = sender.send(Collected { stream, bytes });
        });
    }
}

/// Reads `pipe` to its end, adding what arrives to the count shared with
/// the other stream; `Err` as soon as that count passes `output_limit`.
/// Never holds more than the limit, plus the one chunk being read.
fn read_bounded(
    mut pipe: impl Read,
    counted: &AtomicUsize,
    output_limit: Option<usize>,
    mut tee: impl FnMut(&[u8]),
) -> Result<Vec<u8>, ()> {
    let limit = output_limit.unwrap_or(usize::MAX);
    let mut buffer = Vec::new();
    let mut chunk = vec![0; READ_CHUNK];
    loop {
        if counted.load(Ordering::Relaxed) > limit {
            return Err(());
        }
        let read = match pipe.read(&mut chunk) {
            Ok(0) => return Ok(buffer),
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(buffer),
        };
        let before = counted.fetch_add(read, Ordering::Relaxed);
        if before.saturating_add(read) > limit {
            return Err(());
        }
        tee(&chunk[..read]);
        // Grown by hand so the capacity never passes the limit: doubling
        // could reserve nearly twice what the limit allows.
        let needed = buffer.len() + read;
        if needed > buffer.capacity() {
            let grown = (buffer.capacity() * 2).max(needed).min(limit.max(needed));
            buffer.reserve_exact(grown - buffer.len());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
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
    fn root_commands_go_through_sudo_and_timeout() {
        let mut command = RemoteCommand::new("apt-get install -y \"$p\"");
        command.env.push(("p".into(), "x'$(id)".into()));
        let plain = command.to_shell_line();
        assert_eq!(remote_line(&command, None, true, true, false), plain);
        assert_eq!(
            remote_line(&command, None, true, false, false),
            format!("sudo -n -- {plain}")
        );
        let limit = Some(Duration::from_millis(1500));
        assert_eq!(
            remote_line(&command, limit, true, false, false),
            format!("sudo -n -- timeout -k 5 7 {plain}")
        );
        assert_eq!(remote_line(&command, limit, false, true, false), plain);
    }

    /// Runs a bounded line under the local /bin/sh, as the target would.
    fn run_bounded(script: &str, limit: usize) -> std::process::Output {
        let mut command = RemoteCommand::new(script);
        command.env.push(("V".into(), "it's".into()));
        command.output_limit = Some(limit);
        let line = remote_line(&command, None, false, true, false);
        Command::new("/bin/sh")
            .arg("-c")
            .arg(line)
            .output()
            .unwrap()
    }

    #[test]
    fn a_streaming_bounded_line_passes_each_line_on_as_it_is_written() {
        use std::io::BufRead;
        let mut command = RemoteCommand::new("echo first; sleep 3; echo second");
        command.output_limit = Some(1000);
        let line = remote_line(&command, None, false, true, true);
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(line)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(first, "first\n");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        child.wait().unwrap();
    }

    #[test]
    fn bounded_lines_keep_streams_and_status_and_cut_floods() {
        let output = run_bounded(r#"printf '%s' "$V"; echo err >&2; exit 3"#, 100);
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"it's");
        assert_eq!(output.stderr, b"err\n");
        // A flood on either stream stops one byte past the limit: the
        // command dies of SIGPIPE instead of running on.
        let output = run_bounded("yes", 1000);
        assert_eq!(output.stdout.len(), 1001);
        assert_eq!(output.status.code(), Some(128 + libc::SIGPIPE));
        let output = run_bounded("yes >&2", 1000);
        assert_eq!((output.stdout.len(), output.stderr.len()), (0, 1001));
        // The command cannot write around the `head`s.
        let output = run_bounded("yes >&3", 1000);
        assert!(output.stdout.is_empty(), "{}", output.stdout.len());
    }

    fn sh(script: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(script);
        command
    }

    #[test]
    fn output_past_the_limit_stops_the_child() {
        let limit = Some(1 << 20);
        let started = Instant::now();
        let finished = run_child(sh("exec yes"), None, None, limit, None).unwrap();
        assert!(matches!(finished, Finished::TooLarge));
        assert!(started.elapsed() < Duration::from_secs(10));
        // stdout and stderr count together.
        let both = "head -c 600000 /dev/zero; head -c 600000 /dev/zero >&2";
        let finished = run_child(sh(both), None, None, limit, None).unwrap();
        assert!(matches!(finished, Finished::TooLarge));
        let under = "head -c 500000 /dev/zero; head -c 500000 /dev/zero >&2; exit 4";
        match run_child(sh(under), None, None, limit, None).unwrap() {
            Finished::Exited {
                status,
                stdout,
                stderr,
            } => {
                assert_eq!(status.code(), Some(4));
                assert_eq!((stdout.len(), stderr.len()), (500_000, 500_000));
                assert!(stdout.capacity() <= 1 << 20, "{}", stdout.capacity());
            }
            _ => panic!("output under the limit must come back whole"),
        }
    }

    #[test]
    fn stat_output_parses_into_metadata() {
        assert_eq!(
            parse_stat("81a4 5 33 34\n"),
            Some(FileMetadata {
                kind: FileKind::Regular,
                size: 5,
                mode: 0o644,
                uid: 33,
                gid: 34
            })
        );
        let kind = |text: &str| parse_stat(text).map(|m| (m.kind, m.mode));
        assert_eq!(kind("43ed 4096 0 0"), Some((FileKind::Directory, 0o1755)));
        assert_eq!(kind("a1ff 4 0 0"), Some((FileKind::Symlink, 0o777)));
        assert_eq!(kind("21b6 0 0 0"), Some((FileKind::Other, 0o666)));
        assert_eq!(kind("89ed 0 0 0"), Some((FileKind::Regular, 0o4755)));
        assert_eq!(parse_stat("stat: cannot stat"), None);
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

//! How [`SshRemote`] uses its [`Session`]: starting the loop (as the login
//! user for the connect probe, under `sudo -n` once for everything after
//! when the login user is not root), sending a call as one request with
//! the deadline and output bounds it must be answered within, and turning
//! whatever went wrong into a [`RemoteError`] naming the host. A session
//! that broke (timed out, closed, garbage, an oversized reply) is killed;
//! the next call starts another, over a fresh login if the connection
//! itself dropped, once, as commands always did.

use std::time::{Duration, Instant};

use super::frame::{Request, Step, LOOP};
use super::remote_side::{remote_seconds, KILL_AFTER};
use super::remote_side::{session_line, write_command, Origin, SYMLINK_EXIT};
use super::session::{Bounds, Reply, Session, SessionError};
use super::{Role, SshRemote, ERROR_LINES};
use crate::remote::{
    shell_quote, CommandOutput, FileWrite, Remote, RemoteCommand, RemoteError, COMMAND_OUTPUT,
};
use crate::text::{last_lines, script_summary};

/// How long after a command's remote `timeout(1)` should have fired (and
/// its `-k` kill after that) kiln still waits for the reply before it gives
/// the session up.
const REPLY_GRACE: Duration = Duration::from_secs(1);

/// One call as the session carries it.
pub(super) struct Call<'a> {
    pub request: Request<'a>,
    /// The wall-clock time the host was given for the call's lines.
    pub limit: Option<Duration>,
    pub output_limit: Option<usize>,
    /// What the error messages call the call.
    pub script: &'a str,
}

impl SshRemote {
    /// The remote command line that starts the loop, under `sudo -n` when
    /// the calls need root and the login user is not root.
    fn loop_line(&self, nonce: &str) -> String {
        let sudo = if self.session_needs_sudo {
            "sudo -n -- "
        } else {
            ""
        };
        format!(
            "exec {sudo}/bin/sh -c {} kiln-loop {nonce}",
            shell_quote(LOOP)
        )
    }

    /// The live session, started (over a fresh login if the connection
    /// dropped) when there is none.
    fn session(&mut self) -> Result<&mut Session, RemoteError> {
        // A session outlives its master only for a moment, and is of no
        // use then.
        let usable = self.master_alive() && self.session.as_mut().is_some_and(Session::alive);
        if !usable {
            self.session = None;
            self.ensure_master()?;
            let nonce = nonce();
            let mut command = self.ssh_command(Role::Client);
            command
                .arg("-T")
                .arg("--")
                .arg(&self.spec.host)
                .arg(self.loop_line(&nonce));
            let deadline = Instant::now() + self.login_deadline();
            let session = Session::start(command, nonce, deadline)
                .map_err(|error| self.session_failure(error))?;
            self.session = Some(session);
        }
        Ok(self.session.as_mut().expect("started above"))
    }

    /// Ends the session: the next call starts a new one.
    pub(super) fn drop_session(&mut self) {
        if let Some(mut session) = self.session.take() {
            session.close();
        }
    }

    /// Sends `call` over the session and waits for its reply, within the
    /// call's time (plus the remote `timeout`'s kill delay and a grace) and
    /// holding at most its output limit.
    pub(super) fn call_framed(&mut self, call: &Call<'_>) -> Result<Reply, RemoteError> {
        let started = Instant::now();
        let wait = call
            .limit
            .map(|limit| remote_seconds(limit) + KILL_AFTER + REPLY_GRACE);
        let bounds = Bounds {
            deadline: wait.map(|wait| started + wait),
            idle: self.login_deadline(),
            output_limit: call.output_limit,
            // The host's `head -c LIMIT+1` on each stream bounds what an
            // honest reply past the limit can hold.
            drain_limit: call.output_limit.map(|l| 2 * (l as u64 + 1)),
        };
        let result = self.session()?.call(&call.request, &bounds);
        let reply = match result {
            Ok(reply) => reply,
            Err(error) => {
                if !error.leaves_session_usable() {
                    self.drop_session();
                }
                return Err(self.call_failure(error, call));
            }
        };
        // A reply after the limit is a timeout whatever its status (the
        // host's `timeout` fires only at the next whole second, with 124);
        // the session read it whole and serves the next call.
        if call.limit.is_some_and(|limit| started.elapsed() > limit) {
            return Err(self.timeout(call));
        }
        Ok(reply)
    }

    fn timeout(&self, call: &Call<'_>) -> RemoteError {
        RemoteError::Timeout {
            target: self.name(),
            command: script_summary(call.script),
            seconds: call.limit.unwrap_or_default().as_secs_f64(),
        }
    }

    fn call_failure(&mut self, error: SessionError, call: &Call<'_>) -> RemoteError {
        match error {
            SessionError::TimedOut => self.timeout(call),
            SessionError::TooLarge { .. } => RemoteError::TooLarge {
                target: self.name(),
                what: COMMAND_OUTPUT.into(),
                limit: call.output_limit.unwrap_or_default(),
            },
            SessionError::Nul(nul) => self.failed(nul.to_string()),
            other => self.session_failure(other),
        }
    }

    /// A session that ended or broke: the host is unreachable when the
    /// connection itself dropped, else this call failed (the next starts
    /// a new session).
    fn session_failure(&mut self, error: SessionError) -> RemoteError {
        if self.connection_lost() {
            let stderr = match &error {
                SessionError::Closed { stderr } => stderr.clone(),
                _ => String::new(),
            };
            return self.unreachable(format!(
                "the connection dropped: {}",
                self.drop_reason(stderr.as_bytes())
            ));
        }
        match error {
            SessionError::Closed { stderr }
                if self.session_needs_sudo && stderr.contains("sudo") =>
            {
                self.unreachable(format!("`sudo -n` refused the session: {stderr}"))
            }
            other => self.failed(other.to_string()),
        }
    }
}

impl SshRemote {
    /// The upload and the command in one request: the loop runs the
    /// command only when the write's script exited 0.
    pub(super) fn upload_and_run(
        &mut self,
        write: &FileWrite<'_>,
        command: &RemoteCommand,
    ) -> Result<CommandOutput, RemoteError> {
        if self.streaming.is_some() {
            self.write_file(write)?;
            return self.run(command);
        }
        self.note_upload(write.path);
        let upload = write_command(write);
        let (upload_limit, run_limit) = (self.command_limit(&upload), self.command_limit(command));
        let upload_line = session_line(&upload, Origin::Kiln, upload_limit, self.has_timeout);
        let run_line = session_line(command, Origin::Validator, run_limit, self.has_timeout);
        let call = Call {
            request: Request {
                line: &upload_line,
                stdin: write.contents,
                then: Some(&run_line),
            },
            limit: upload_limit.zip(run_limit).map(|(a, b)| a + b),
            output_limit: command.output_limit,
            script: &command.script,
        };
        let reply = self.call_framed(&call)?;
        if !reply.is_about_the_second_line() {
            let output = reply.into_output();
            self.write_outcome(write.path, &output)?;
            return Err(self.failed(format!("cannot write {}: no command ran", write.path)));
        }
        let output = reply.into_output();
        self.scripts
            .retain(|path| !command.script.contains(path.as_str()));
        Ok(output)
    }

    /// What the write call's script exiting with `output` means.
    pub(super) fn write_outcome(
        &self,
        path: &str,
        output: &CommandOutput,
    ) -> Result<(), RemoteError> {
        match output.exit_code {
            0 => Ok(()),
            SYMLINK_EXIT => Err(self.symlink_refusal(path, &output.stdout)),
            _ => Err(self.failed(format!(
                "cannot write {path}: {}",
                last_lines(&output.stderr, ERROR_LINES)
            ))),
        }
    }
}

/// A token for the session's frames: no stray output carries it by chance.
fn nonce() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "{:x}{:08x}{:x}",
        std::process::id(),
        now.subsec_nanos(),
        now.as_secs()
    )
}

impl Reply {
    /// The reply as a command's output; a reply about the first line of a
    /// two-line request is not one (the caller reads that as the upload's).
    pub(super) fn into_output(self) -> CommandOutput {
        CommandOutput {
            exit_code: self.status,
            stdout: self.stdout,
            stderr: self.stderr,
        }
    }

    pub(super) fn is_about_the_second_line(&self) -> bool {
        self.step == Step::Then
    }
}

//! One long-lived session per host: a single ssh client process (a
//! multiplexed client of the host's master) running the loop of
//! [`super::frame`] on the host, to which every command and file call is a
//! request written to its stdin and a reply read from its stdout. No
//! process is spawned per command on either side, and nothing is
//! installed on the host: the loop's text travels as the session's
//! command line.
//!
//! Every wait has a deadline: writes and reads go through `poll(2)` on
//! non-blocking pipes, a reply's header must arrive by the request's
//! deadline, and its payload must keep coming. A reply is checked before
//! anything is held: its sequence number must match, and its length must be
//! within what the caller will hold, so a garbage, lying or oversized frame
//! costs at most one header line of memory; the session is then dead (the
//! caller kills it and starts another for the next command). The session's
//! stderr is kept only as its last few KiB, for error messages.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::frame::{self, ReplyHeader, Request, Step, MAX_HEADER, READY};

/// How much stray output (a noisy shell rc file) may precede the ready line.
const MAX_PREAMBLE: usize = 64 * 1024;

/// How much of the session's stderr is kept for messages.
const STDERR_TAIL: usize = 4 * 1024;

/// How long a closing session may take to exit before it is killed.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How much is read from the session's stdout at once.
const READ_CHUNK: usize = 64 * 1024;

/// Why a session could not answer a request.
#[derive(Debug, thiserror::Error)]
pub(super) enum SessionError {
    #[error("no answer in time")]
    TimedOut,
    #[error("the session ended{}", tail_suffix(.stderr))]
    Closed { stderr: String },
    #[error("the host broke the session's protocol: {0}")]
    Protocol(String),
    /// The reply's output passed what the caller would hold; `drained`
    /// says whether the session can serve the next request.
    #[error("the reply holds {len} bytes, past the limit of {limit}")]
    TooLarge {
        len: u64,
        limit: usize,
        drained: bool,
    },
    #[error(transparent)]
    Nul(#[from] frame::NulInCommand),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: std::io::Error,
    },
}

fn tail_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl SessionError {
    /// Whether the session can still serve requests after this error.
    pub(super) fn leaves_session_usable(&self) -> bool {
        matches!(
            self,
            SessionError::Nul(_) | SessionError::TooLarge { drained: true, .. }
        )
    }
}

/// What a request came back with.
#[derive(Debug)]
pub(super) struct Reply {
    pub step: Step,
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// When a request must be answered, and how much of its reply kiln holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// The reply's header must arrive by then; `None` waits as long as the
    /// connection lives (keepalives notice a dead one).
    pub deadline: Option<Instant>,
    /// Writing the request and reading the payload may stall this long
    /// between two chunks.
    pub idle: Duration,
    /// The most bytes of stdout plus stderr held.
    pub output_limit: Option<usize>,
    /// A reply past `output_limit` but within this is read and dropped
    /// (the host's own `head -c` cut it), keeping the session; past it the
    /// session is given up without reading on.
    pub drain_limit: Option<u64>,
}

/// A running loop on the far end of one ssh client.
pub(super) struct Session {
    child: Child,
    /// `None` once the session is closing: the loop then reads EOF.
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    /// Bytes read past the last header line, not yet consumed.
    buffered: Vec<u8>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    nonce: String,
    next_seq: u64,
}

impl Session {
    /// Spawns `command` (which must run [`frame::LOOP`] with `nonce` as
    /// its `$1`) and waits until the loop says it is ready.
    pub(super) fn start(
        mut command: Command,
        nonce: String,
        deadline: Instant,
    ) -> Result<Session, SessionError> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| SessionError::Io {
            context: "starting the session",
            source,
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SessionError::Protocol("the session has no pipes".into()));
        };
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        keep_tail(stderr, stderr_tail.clone());
        let mut session = Session {
            child,
            stdin: Some(stdin),
            stdout,
            buffered: Vec::new(),
            stderr_tail,
            nonce,
            next_seq: 1,
        };
        let ready = session
            .set_nonblocking()
            .and_then(|()| session.await_ready(deadline));
        match ready {
            Ok(()) => Ok(session),
            Err(error) => {
                session.kill();
                Err(session.with_stderr(error))
            }
        }
    }

    fn set_nonblocking(&self) -> Result<(), SessionError> {
        let stdin = self.stdin.as_ref().map(AsRawFd::as_raw_fd);
        for fd in stdin.into_iter().chain([self.stdout.as_raw_fd()]) {
            // SAFETY: fcntl on a descriptor this session owns.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
            {
                return Err(SessionError::Io {
                    context: "setting up the session's pipes",
                    source: std::io::Error::last_os_error(),
                });
            }
        }
        Ok(())
    }

    /// Skips what precedes the ready line (bounded), then checks its nonce.
    fn await_ready(&mut self, deadline: Instant) -> Result<(), SessionError> {
        let marker = format!("\n{READY}{}\n", self.nonce).into_bytes();
        loop {
            if let Some(at) = find(&self.buffered, &marker) {
                self.buffered.drain(..at + marker.len());
                return Ok(());
            }
            if self.buffered.len() > MAX_PREAMBLE {
                return Err(SessionError::Protocol(format!(
                    "more than {MAX_PREAMBLE} bytes before the session started"
                )));
            }
            self.fill(Some(deadline))?;
        }
    }

    /// Whether the ssh client is still running.
    pub(super) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `request` and reads its reply within `bounds`. On any error but
    /// those [`SessionError::leaves_session_usable`] says, the caller must
    /// [`Session::kill`] the session: it is out of step with the loop.
    pub(super) fn call(
        &mut self,
        request: &Request<'_>,
        bounds: &Bounds,
    ) -> Result<Reply, SessionError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = frame::encode(request, seq, &self.nonce)?;
        let result = self
            .send(&bytes, bounds)
            .and_then(|()| self.receive(seq, bounds));
        result.map_err(|error| self.with_stderr(error))
    }

    fn send(&mut self, bytes: &[u8], bounds: &Bounds) -> Result<(), SessionError> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(closed());
        };
        let mut written = 0;
        while written < bytes.len() {
            let stall = Instant::now() + bounds.idle;
            wait_for(stdin.as_raw_fd(), libc::POLLOUT, Some(stall))?;
            match stdin.write(&bytes[written..]) {
                Ok(0) => return Err(closed()),
                Ok(n) => written += n,
                Err(error) if retry(&error) => {}
                Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                    return Err(closed())
                }
                Err(source) => {
                    return Err(SessionError::Io {
                        context: "writing to the session",
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    fn receive(&mut self, seq: u64, bounds: &Bounds) -> Result<Reply, SessionError> {
        let line = self.read_line(bounds)?;
        let header = ReplyHeader::parse(&line).ok_or_else(|| {
            SessionError::Protocol(format!(
                "expected a reply header, got {:?}",
                String::from_utf8_lossy(&line)
            ))
        })?;
        if header.seq != seq {
            return Err(SessionError::Protocol(format!(
                "a reply to request {} where {seq} was due",
                header.seq
            )));
        }
        let len = header.output_len();
        if let Some(limit) = bounds.output_limit {
            if len > limit as u64 {
                let drained = bounds.drain_limit.is_some_and(|most| len <= most)
                    && self.skip(len, bounds).is_ok();
                return Err(SessionError::TooLarge {
                    len,
                    limit,
                    drained,
                });
            }
        }
        let stdout = self.take(header.stdout_len, bounds)?;
        let stderr = self.take(header.stderr_len, bounds)?;
        Ok(Reply {
            step: header.step,
            status: header.status,
            stdout,
            stderr,
        })
    }

    /// One header line, never more than [`MAX_HEADER`] bytes of it held.
    fn read_line(&mut self, bounds: &Bounds) -> Result<Vec<u8>, SessionError> {
        loop {
            if let Some(at) = self.buffered.iter().position(|&b| b == b'\n') {
                let line = self.buffered[..at].to_vec();
                self.buffered.drain(..=at);
                return Ok(line);
            }
            if self.buffered.len() > MAX_HEADER {
                return Err(SessionError::Protocol(format!(
                    "a reply header longer than {MAX_HEADER} bytes: {:?}",
                    String::from_utf8_lossy(&self.buffered[..MAX_HEADER])
                )));
            }
            self.fill(bounds.deadline)?;
        }
    }

    /// Exactly `len` payload bytes, gathered as they arrive (memory grows
    /// with what came, never with what the header claimed).
    fn take(&mut self, len: u64, bounds: &Bounds) -> Result<Vec<u8>, SessionError> {
        let mut out = Vec::new();
        self.consume(len, bounds, |chunk| out.extend_from_slice(chunk))?;
        Ok(out)
    }

    fn skip(&mut self, len: u64, bounds: &Bounds) -> Result<(), SessionError> {
        self.consume(len, bounds, |_| {})
    }

    fn consume(
        &mut self,
        mut len: u64,
        bounds: &Bounds,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<(), SessionError> {
        while len > 0 {
            if self.buffered.is_empty() {
                let stall = Instant::now() + bounds.idle;
                self.fill(Some(stall))?;
            }
            let n = self.buffered.len().min(len as usize);
            sink(&self.buffered[..n]);
            self.buffered.drain(..n);
            len -= n as u64;
        }
        Ok(())
    }

    /// Reads what is available (at least one byte) into `buffered`.
    fn fill(&mut self, deadline: Option<Instant>) -> Result<(), SessionError> {
        let mut chunk = vec![0; READ_CHUNK];
        loop {
            wait_for(self.stdout.as_raw_fd(), libc::POLLIN, deadline)?;
            match self.stdout.read(&mut chunk) {
                Ok(0) => return Err(closed()),
                Ok(n) => {
                    self.buffered.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(error) if retry(&error) => {}
                Err(source) => {
                    return Err(SessionError::Io {
                        context: "reading from the session",
                        source,
                    })
                }
            }
        }
    }

    /// Adds the session's last stderr lines to an error that ended it.
    fn with_stderr(&self, error: SessionError) -> SessionError {
        match error {
            SessionError::Closed { .. } => SessionError::Closed {
                stderr: self.stderr_tail(),
            },
            other => other,
        }
    }

    /// The last lines the session's ssh client or loop printed on stderr.
    pub(super) fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        if tail.iter().all(u8::is_ascii_whitespace) {
            return String::new();
        }
        crate::text::last_lines(&tail, 3)
    }

    /// Ends the session politely: the loop reads EOF, removes its
    /// directory and exits, and the ssh client with it; killed if slow.
    pub(super) fn close(&mut self) {
        self.stdin = None;
        let deadline = Instant::now() + CLOSE_GRACE;
        while self.alive() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        self.kill();
    }

    /// Ends the ssh client (the master then closes the host's side).
    pub(super) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill();
    }
}

fn closed() -> SessionError {
    SessionError::Closed {
        stderr: String::new(),
    }
}

fn retry(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
    )
}

/// Waits until `fd` is ready for `events` or `deadline` passes; hang-ups
/// and errors count as ready (the read or write then says what happened).
fn wait_for(
    fd: RawFd,
    events: libc::c_short,
    deadline: Option<Instant>,
) -> Result<(), SessionError> {
    loop {
        let timeout = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(SessionError::TimedOut);
                }
                left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int
            }
            None => -1,
        };
        let mut poll = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one pollfd on the stack, for a descriptor we own.
        let ready = unsafe { libc::poll(&mut poll, 1, timeout) };
        if ready > 0 {
            return Ok(());
        }
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() != std::io::ErrorKind::Interrupted {
                return Err(SessionError::Io {
                    context: "waiting on the session",
                    source: error,
                });
            }
        }
    }
}

/// Keeps the last [`STDERR_TAIL`] bytes of `pipe` in `tail`, on a thread
/// that ends with the pipe.
fn keep_tail(mut pipe: impl Read + Send + 'static, tail: Arc<Mutex<Vec<u8>>>) {
    thread::spawn(move || {
        let mut chunk = [0; 4096];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            let mut kept = tail.lock().unwrap_or_else(|p| p.into_inner());
            kept.extend_from_slice(&chunk[..n]);
            let excess = kept.len().saturating_sub(STDERR_TAIL);
            kept.drain(..excess);
        }
    });
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::super::remote_side::{session_line, Origin};
    use super::*;

    const NONCE: &str = "0123abcd";

    /// The loop under the local `/bin/sh`, as a host runs it; `path`
    /// replaces `$PATH` when given.
    fn local_loop(path: Option<&str>) -> Session {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(frame::LOOP)
            .arg("kiln-loop")
            .arg(NONCE);
        if let Some(path) = path {
            command.env("PATH", path);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        Session::start(command, NONCE.into(), deadline).unwrap()
    }

    /// A fake host: prints the ready line, then runs `script`.
    fn hostile(script: &str) -> Session {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(format!("printf '\\nKILN-READY {NONCE}\\n'; {script}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        Session::start(command, NONCE.into(), deadline).unwrap()
    }

    fn bounds(limit: Option<usize>) -> Bounds {
        Bounds {
            deadline: Some(Instant::now() + Duration::from_secs(20)),
            idle: Duration::from_secs(5),
            output_limit: limit,
            drain_limit: limit.map(|l| 2 * (l as u64 + 1)),
        }
    }

    fn call(session: &mut Session, line: &str, stdin: &[u8]) -> Reply {
        let request = Request {
            line,
            stdin,
            then: None,
        };
        session.call(&request, &bounds(None)).unwrap()
    }

    fn binary() -> Vec<u8> {
        (0..=255u8).cycle().take(200_000).collect()
    }

    fn many_requests_round_trip(session: &mut Session) {
        for n in 0..50 {
            let reply = call(
                session,
                &format!("echo {n}; echo e >&2; exit {}", n % 7),
                b"",
            );
            assert_eq!(
                (reply.status, reply.stdout, reply.stderr),
                (n % 7, format!("{n}\n").into_bytes(), b"e\n".to_vec())
            );
        }
        // Any bytes, NULs included, both ways; stdin ends where it should.
        let data = binary();
        let reply = call(session, "cat; cat", &data);
        assert_eq!(reply.stdout, data);
        // A command that ignores its stdin leaves the stream in step.
        assert_eq!(call(session, "echo ignored", &data).stdout, b"ignored\n");
        // Output without a final newline, and a line that is all quotes.
        assert_eq!(call(session, "printf 'a\\n\\n'", b"").stdout, b"a\n\n");
        assert_eq!(call(session, "printf %s \"'\\\"\"", b"").stdout, b"'\"");
        // The command cannot read the loop's own requests.
        assert_eq!(call(session, "cat", b"").stdout, b"");
        assert_eq!(call(session, "echo after", b"").stdout, b"after\n");
    }

    #[test]
    fn requests_and_replies_carry_any_bytes() {
        let mut session = local_loop(None);
        many_requests_round_trip(&mut session);
    }

    /// busybox `head -c` reads through stdio, so from a pipe it takes more
    /// than it prints: the loop notices and reads with `dd bs=1` instead.
    #[test]
    fn an_over_reading_head_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/usr/bin/busybox", dir.path().join("head")).unwrap();
        let over_reads = Command::new("/bin/sh")
            .arg("-c")
            .arg("printf ab | { head -c 1 >/dev/null; head -c 1; }")
            .env("PATH", dir.path())
            .output()
            .unwrap();
        assert_eq!(over_reads.stdout, b"", "busybox head should over-read here");
        let path = format!("{}:/usr/bin:/bin", dir.path().display());
        let mut session = local_loop(Some(&path));
        let data: Vec<u8> = binary().into_iter().take(5000).collect();
        let reply = call(&mut session, "cat", &data);
        assert_eq!(reply.stdout, data);
        assert_eq!(call(&mut session, "echo next", b"").stdout, b"next\n");
    }

    /// A shell rc file that prints (a banner, a stray `echo`) before the
    /// loop starts is skipped; the ready line must carry the nonce.
    #[test]
    fn output_before_the_loop_is_skipped() {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(format!(
            "echo 'Welcome'; echo 'KILN-READY wrong'; exec /bin/sh -c {} kiln-loop {NONCE}",
            crate::remote::shell_quote(frame::LOOP)
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut session = Session::start(command, NONCE.into(), deadline).unwrap();
        assert_eq!(call(&mut session, "echo ok", b"").stdout, b"ok\n");
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg("echo 'KILN-READY wrong'; sleep 30");
        let deadline = Instant::now() + Duration::from_millis(500);
        let error = Session::start(command, NONCE.into(), deadline)
            .err()
            .unwrap();
        assert!(matches!(error, SessionError::TimedOut), "{error}");
    }

    #[test]
    fn the_second_line_runs_only_after_the_first_succeeded() {
        let mut session = local_loop(None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s");
        let write = format!("cat > {}", file.display());
        let run = format!("sh {}", file.display());
        let request = Request {
            line: &write,
            stdin: b"echo from the script\n",
            then: Some(&run),
        };
        let reply = session.call(&request, &bounds(None)).unwrap();
        assert_eq!(reply.step, Step::Then);
        assert_eq!(
            (reply.status, reply.stdout),
            (0, b"from the script\n".to_vec())
        );
        let request = Request {
            line: "echo refused >&2; exit 67",
            stdin: b"x",
            then: Some("echo must not run"),
        };
        let reply = session.call(&request, &bounds(None)).unwrap();
        assert_eq!((reply.step, reply.status), (Step::First, 67));
        assert_eq!(
            (reply.stdout, reply.stderr),
            (vec![], b"refused\n".to_vec())
        );
    }

    #[test]
    fn a_flood_cut_on_the_host_is_too_large_and_the_session_lives_on() {
        use crate::remote::RemoteCommand;
        let mut session = local_loop(None);
        let mut flood = RemoteCommand::new("yes");
        flood.output_limit = Some(100_000);
        let line = session_line(&flood, Origin::Validator, None, false);
        let request = Request {
            line: &line,
            stdin: b"",
            then: None,
        };
        let error = session.call(&request, &bounds(Some(100_000))).unwrap_err();
        assert!(
            matches!(
                error,
                SessionError::TooLarge {
                    drained: true,
                    len: 100_001,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.leaves_session_usable());
        assert_eq!(call(&mut session, "echo next", b"").stdout, b"next\n");
    }

    /// A bounded line keeps its status and both streams, and each stream
    /// is cut on the host one byte past the limit.
    #[test]
    fn bounded_lines_keep_status_and_streams() {
        use crate::remote::RemoteCommand;
        let mut session = local_loop(None);
        let mut command = RemoteCommand::new("echo out; echo err >&2; exit 3");
        command.output_limit = Some(1000);
        let line = session_line(&command, Origin::Validator, None, false);
        let reply = call(&mut session, &line, b"");
        assert_eq!(
            (reply.status, reply.stdout, reply.stderr),
            (3, b"out\n".to_vec(), b"err\n".to_vec())
        );
        command.script = "yes >&2 & yes".into();
        let line = session_line(&command, Origin::Validator, None, false);
        let reply = call(&mut session, &line, b"");
        assert_eq!((reply.stdout.len(), reply.stderr.len()), (1001, 1001));
        assert_eq!(call(&mut session, "echo next", b"").stdout, b"next\n");
    }

    /// A request cut short (the connection dropped mid-frame) runs
    /// nothing: neither a line missing its trailer nor one whose stdin
    /// came short.
    #[test]
    fn a_truncated_request_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let touch = format!("touch {}", marker.display());
        let requests = [
            format!("1 1 0 0\n{touch}\n"),
            format!("1 2 0 0\n{touch}\n#kiln-{NONCE}\n"),
            format!("1 1 5 0\n{touch}\n#kiln-{NONCE}\nab"),
            format!("1 1 2 0\n{touch}\n#kiln-{NONCE}\nab#kiln-wrong\n"),
        ];
        let run = |request: &str| {
            let mut child = Command::new("/bin/sh")
                .arg("-c")
                .arg(frame::LOOP)
                .arg("kiln-loop")
                .arg(NONCE)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(request.as_bytes()).unwrap();
            drop(stdin);
            child.wait().unwrap()
        };
        for request in requests {
            assert!(!run(&request).success(), "{request:?}");
            assert!(!marker.exists(), "{request:?} ran");
        }
        // The same request whole does run.
        run(&format!(
            "1 1 2 0\n{touch}\n#kiln-{NONCE}\nab#kiln-{NONCE}\n"
        ));
        assert!(marker.exists());
    }

    #[test]
    fn a_command_under_timeout_answers_at_its_deadline() {
        let mut session = local_loop(None);
        let started = Instant::now();
        let reply = call(&mut session, "timeout -k 1 1 sleep 30", b"");
        assert_eq!(reply.status, 124);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(call(&mut session, "echo next", b"").stdout, b"next\n");
    }

    #[test]
    fn a_hostile_host_is_an_error_never_a_hang() {
        let request = Request {
            line: "true",
            stdin: b"",
            then: None,
        };
        let quick = || Bounds {
            deadline: Some(Instant::now() + Duration::from_secs(1)),
            ..bounds(Some(1000))
        };
        type Expect = fn(&SessionError) -> bool;
        let cases: [(&str, Expect); 6] = [
            ("echo garbage; sleep 30", |e| {
                matches!(e, SessionError::Protocol(_))
            }),
            ("head -c 1000 /dev/zero; sleep 30", |e| {
                matches!(e, SessionError::Protocol(_))
            }),
            ("sleep 30", |e| matches!(e, SessionError::TimedOut)),
            ("exit 0", |e| matches!(e, SessionError::Closed { .. })),
            // Closes mid-frame.
            ("read x; printf 'KILN-REPLY 1 1 0 10 0\\nabc'", |e| {
                matches!(e, SessionError::Closed { .. })
            }),
            // Claims far more than the limit: not read at all.
            (
                "read x; echo 'KILN-REPLY 1 1 0 999999999999 0'; sleep 30",
                |e| matches!(e, SessionError::TooLarge { drained: false, .. }),
            ),
        ];
        for (script, expected) in cases {
            let mut session = hostile(script);
            let started = Instant::now();
            let error = session.call(&request, &quick()).unwrap_err();
            assert!(expected(&error), "{script}: {error}");
            assert!(!error.leaves_session_usable(), "{script}");
            assert!(started.elapsed() < Duration::from_secs(5), "{script}");
        }
        // A reply to another request is out of step.
        let mut session = hostile("read x; echo 'KILN-REPLY 9 1 0 0 0'; sleep 30");
        let error = session.call(&request, &quick()).unwrap_err();
        assert!(matches!(error, SessionError::Protocol(_)), "{error}");
    }
}

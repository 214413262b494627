//! The child-process side of the SSH remote: running one ssh client to
//! completion or a deadline with its output read on threads and bounded
//! (stdout plus stderr share one count), ending children kiln gave up on,
//! and the master connections' life cycle outside any one remote: their
//! private control directory, their spawning from a long-lived thread with
//! `PR_SET_PDEATHSIG`, and their ending on SIGINT/SIGTERM. None of it knows
//! what the commands mean; [`super::SshRemote`] decides that.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::SshError;
use crate::remote::{OutputSink, OutputStream};

/// How long ssh may take to exit once its output pipes have closed.
const OUTPUT_DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How an ssh child process ended.
pub(super) enum Finished {
    Exited {
        status: ExitStatus,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    TimedOut,
    /// Its stdout plus stderr passed the output limit.
    TooLarge,
}

/// Spawns a master from one thread that lives as long as the process:
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child ends,
/// and kiln's run and worker threads end long before their targets close.
/// The master gets its own process group (a Ctrl-C at the terminal is
/// kiln's to handle; kiln closes the master itself) and SIGTERM when kiln
/// dies, however it dies; ssh then exits and removes its socket.
pub(super) fn spawn_master(mut command: Command) -> std::io::Result<Child> {
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
pub(super) fn end_masters_on_interrupt() {
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

/// The control socket's directory: private, and short enough for a Unix
/// socket path (108 bytes), which a long `$TMPDIR` might not be.
pub(super) fn make_control_dir() -> Result<tempfile::TempDir, SshError> {
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
pub(super) fn run_child(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

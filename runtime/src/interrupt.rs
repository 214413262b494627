//! Ctrl-C and SIGTERM: how kiln stops when asked to.
//!
//! A signal handler may do almost nothing safely, and above all it must not
//! reach libguestfs: exiting the process from a signal thread while the main
//! thread sat inside `guestfs_launch` ran libguestfs's exit handler against
//! a handle still in use, which crashed with a double free or a SIGSEGV. So
//! the first SIGINT or SIGTERM is only recorded. A thread (signal-hook's
//! iterator; it runs outside the handler, so it may allocate and lock) then
//! runs the hooks the targets registered, which only end child processes (the
//! image target kills its appliances' qemu, so a blocked libguestfs call
//! returns with an error; the SSH target ends its ssh masters, which ends
//! every command in flight). The code that owns the work sees [`requested`]
//! at its next safe point, cleans up as after any error (overlays, temporary
//! files, remote scripts) on its own thread, and the command exits with
//! [`exit_code`].
//!
//! A second signal means the user will not wait: the hooks get one last call
//! to remove temporary files, and the process ends at once with `_exit`,
//! which skips the exit handlers that could race a libguestfs call.
//!
//! A run-wide deadline (`--timeout`, [`start_deadline`]) stops kiln the same
//! way, through the same hooks and the same safe points: when it passes, a
//! timer thread records a [`Stop::Timeout`] instead of a signal, so every
//! target cleans up exactly as after Ctrl-C and nothing is committed.

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// What a hook is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The first signal: end child processes so blocked calls return.
    Stop,
    /// The second signal: the process ends right after the hooks return;
    /// remove what would otherwise be left on disk.
    Exit,
}

/// Why kiln is stopping before its run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT or SIGTERM arrived.
    Signal(i32),
    /// The run-wide deadline (`--timeout`) passed.
    Timeout(Duration),
}

/// The exit status of a run stopped by its `--timeout`, as timeout(1) has it.
pub const TIMEOUT_EXIT_CODE: i32 = 124;

impl Stop {
    /// 130 for SIGINT, 143 for SIGTERM (as a shell reports a process those
    /// signals ended), [`TIMEOUT_EXIT_CODE`] for a deadline.
    pub fn exit_code(self) -> i32 {
        match self {
            Stop::Signal(signal) => exit_code(signal),
            Stop::Timeout(_) => TIMEOUT_EXIT_CODE,
        }
    }
}

impl std::fmt::Display for Stop {
    /// What stopped the run, as messages and reports say it: `interrupted`
    /// or `timed out after 90s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Signal(_) => f.write_str("interrupted"),
            Stop::Timeout(limit) => write!(f, "timed out after {}", show_duration(*limit)),
        }
    }
}

/// A duration as the operator would have written it: `2h`, `45m`, `90s`
/// (the largest unit that divides it), or milliseconds.
pub fn show_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if duration.subsec_nanos() != 0 {
        format!("{}ms", duration.as_millis())
    } else if seconds != 0 && seconds % 3600 == 0 {
        format!("{}h", seconds / 3600)
    } else if seconds != 0 && seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

/// The signal that asked kiln to stop, [`TIMED_OUT`] once the deadline
/// passed; 0 while nothing has.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// [`SIGNAL`]'s value for a passed deadline (no signal number is negative).
const TIMED_OUT: i32 = -1;

/// The `--timeout` that passed, for [`Stop::Timeout`].
static DEADLINE: OnceLock<Duration> = OnceLock::new();

static HOOKS: Mutex<Vec<fn(Stage)>> = Mutex::new(Vec::new());

/// Catches SIGINT and SIGTERM from now on (once per process; later calls
/// return the first call's result). Until this runs, the signals' default
/// action stands: the process dies, which is right while nothing needs
/// cleaning up.
pub fn install() -> io::Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals =
            signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(|e| e.to_string())?;
        thread::Builder::new()
            .name("kiln-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if SIGNAL
                        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok()
                    {
                        run_hooks(Stage::Stop);
                    } else {
                        run_hooks(Stage::Exit);
                        eprintln!("kiln: interrupted again; stopping at once");
                        // SAFETY: `_exit` ends the process without running
                        // exit handlers, which is the point: libguestfs's
                        // would close handles another thread may be using.
                        unsafe { libc::_exit(exit_code(signal)) };
                    }
                }
            })
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    installed
        .clone()
        .map_err(|message| io::Error::other(format!("catching SIGINT/SIGTERM: {message}")))
}

/// What asked kiln to stop (SIGINT, SIGTERM or the deadline), if anything has.
pub fn requested() -> Option<Stop> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        TIMED_OUT => Some(Stop::Timeout(DEADLINE.get().copied().unwrap_or_default())),
        signal => Some(Stop::Signal(signal)),
    }
}

/// What stopped the run, for a target's error (`interrupted`, `timed out
/// after 90s`); `interrupted` when nothing has.
pub fn reason() -> String {
    requested().map_or_else(|| "interrupted".to_string(), |stop| stop.to_string())
}

/// Stops the run `limit` from now, as a first signal would (the hooks end
/// child processes; the owners of the work see [`requested`] and clean up),
/// unless a signal came first. Once per process: the first deadline stands.
pub fn start_deadline(limit: Duration) -> io::Result<()> {
    if DEADLINE.set(limit).is_err() {
        return Ok(());
    }
    thread::Builder::new()
        .name("kiln-deadline".into())
        .spawn(move || {
            thread::sleep(limit);
            if SIGNAL
                .compare_exchange(0, TIMED_OUT, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                run_hooks(Stage::Stop);
            }
        })
        .map(|_| ())
}

/// The exit status for a run stopped by `signal`: 130 for SIGINT, 143 for
/// SIGTERM, as a shell reports a process those signals ended.
pub fn exit_code(signal: i32) -> i32 {
    128 + signal
}

/// Adds a hook the signal thread runs (see [`Stage`]). Hooks run outside
/// the signal handler but concurrently with everything else: they may only
/// end processes and remove files, never touch a libguestfs handle.
/// Register each hook once.
pub fn add_hook(hook: fn(Stage)) {
    HOOKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(hook);
}

fn run_hooks(stage: Stage) {
    let hooks = HOOKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    for hook in hooks {
        hook(stage);
    }
}

/// For tests only: when `KILN_TEST_PAUSE_AT` names `point`, says so on
/// stderr and waits (at most two minutes) for a signal, so a test can
/// interrupt kiln at an exact step. Does nothing when the variable is unset
/// or names another point.
#[doc(hidden)]
pub fn test_pause(point: &str) {
    if std::env::var("KILN_TEST_PAUSE_AT").ok().as_deref() != Some(point) {
        return;
    }
    eprintln!("kiln: test pause at {point}");
    let until = Instant::now() + Duration::from_secs(120);
    while requested().is_none() && Instant::now() < until {
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_say_what_stopped_them_and_exit_as_timeout_and_shells_do() {
        assert_eq!(show_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(show_duration(Duration::from_secs(45 * 60)), "45m");
        assert_eq!(show_duration(Duration::from_secs(90)), "90s");
        assert_eq!(show_duration(Duration::from_millis(1500)), "1500ms");
        let timeout = Stop::Timeout(Duration::from_secs(90));
        assert_eq!(timeout.to_string(), "timed out after 90s");
        assert_eq!(timeout.exit_code(), 124);
        let signal = Stop::Signal(libc::SIGTERM);
        assert_eq!(signal.to_string(), "interrupted");
        assert_eq!(signal.exit_code(), 143);
    }
}

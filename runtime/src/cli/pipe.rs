//! A closed pipe ends kiln quietly, as it ends `cat` or `grep`: no panic,
//! no backtrace, and the status of a process killed by SIGPIPE.
//!
//! kiln does not simply restore SIGPIPE's default action: that would kill
//! a pack or validate wherever it stands, with the appliance's overlay,
//! the scripts uploaded to hosts and the ssh masters left behind. Instead
//! a write to a closed stdout or stderr fails (Rust ignores SIGPIPE), the
//! failed `println!` panics, and the panic unwinds the run, so every
//! destructor cleans up as on any other early exit. Prints happen between
//! steps, never inside a commit, so an image is either committed or left
//! as it was. Only then, at the top, kiln dies of SIGPIPE. The panic
//! hook keeps these panics silent; any other panic is reported as usual.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write found its pipe closed.
static BROKEN: AtomicBool = AtomicBool::new(false);

/// Installs the panic hook that keeps broken-pipe panics silent.
pub fn install() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("");
        if mentions_broken_pipe(message) && output_closed() {
            BROKEN.store(true, Ordering::SeqCst);
            return;
        }
        // `std::thread::scope` re-raises a worker's panic with this text
        // (validate's hosts run in scoped threads).
        if BROKEN.load(Ordering::SeqCst) && message == "a scoped thread panicked" {
            return;
        }
        default(info)
    }));
}

/// Whether a panic came from a broken pipe (kiln's own state, set by the
/// hook), or an error is one.
pub fn broke() -> bool {
    BROKEN.load(Ordering::SeqCst)
}

pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// std's `failed printing to stdout: Broken pipe (os error 32)`, and the
/// `{:?}` of an io::Error (`kind: BrokenPipe`) that libraries `expect` on.
fn mentions_broken_pipe(message: &str) -> bool {
    message.contains("Broken pipe") || message.contains("BrokenPipe")
}

/// Whether stdout or stderr is a pipe (or socket) whose reader is gone:
/// `poll` reports POLLERR for such a descriptor, and never for a live
/// one, so a genuine panic that merely mentions a pipe is still shown.
fn output_closed() -> bool {
    [libc::STDOUT_FILENO, libc::STDERR_FILENO]
        .iter()
        .any(|&fd| {
            let mut poll = libc::pollfd {
                fd,
                events: 0,
                revents: 0,
            };
            // SAFETY: one valid pollfd, no timeout.
            let ready = unsafe { libc::poll(&mut poll, 1, 0) };
            ready > 0 && poll.revents & (libc::POLLERR | libc::POLLHUP) != 0
        })
}

/// Ends kiln as SIGPIPE ends other tools, so a shell or `set -o
/// pipefail` sees the same status (128 + 13) as for `yes | head -1`.
pub fn die_of_sigpipe() -> ! {
    // SAFETY: resetting a signal's disposition and raising it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE)
}

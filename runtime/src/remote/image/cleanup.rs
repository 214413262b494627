//! What must not outlive the process or a signal: the temporary files a
//! session creates (overlays, staged commits), which a second SIGINT/SIGTERM
//! removes before the process ends, and the list of live appliances, whose
//! qemu the first signal kills so that a blocked libguestfs call returns and
//! the session cleans up on its own thread. It is separate because the
//! signal thread (see [`crate::interrupt`]) reaches it from outside any
//! session: everything here is process-wide state behind a mutex.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::ImageError;
use crate::interrupt;

/// Every overlay and staged file currently on disk, so the signal thread can
/// remove them when a second signal ends the process at once.
static TEMP_PATHS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn temp_paths() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    TEMP_PATHS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A file path this process may create; removed on drop and on a second
/// SIGINT/SIGTERM.
pub(super) struct TempPath {
    pub(super) path: PathBuf,
}

impl TempPath {
    /// Registers the path before the file exists, so there is no moment when
    /// a signal could leave it behind.
    pub(super) fn register(path: PathBuf) -> TempPath {
        temp_paths().push(path.clone());
        TempPath { path }
    }

    /// The file was renamed into place: it is no longer ours to remove.
    pub(super) fn forget(self) {
        temp_paths().retain(|p| p != &self.path);
        std::mem::forget(self);
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        temp_paths().retain(|p| p != &self.path);
    }
}

/// Catches SIGINT/SIGTERM (see [`crate::interrupt`]) and, once per process,
/// registers what the signal thread does for images: kill every live
/// appliance's qemu at the first signal (so a blocked libguestfs call
/// returns and the session cleans up on its own thread), and also remove
/// the registered temporary files at the second, after which the process
/// ends at once. The original image is never among those files.
pub(super) fn prepare_for_interrupts() -> Result<(), ImageError> {
    static HOOKED: OnceLock<()> = OnceLock::new();
    HOOKED.get_or_init(|| {
        interrupt::add_hook(|stage| {
            kill_live_appliances();
            if stage == interrupt::Stage::Exit {
                for path in temp_paths().iter() {
                    let _ = fs::remove_file(path);
                }
            }
        })
    });
    interrupt::install().map_err(|source| ImageError::Io {
        context: "preparing for Ctrl-C".into(),
        source,
    })
}

/// [`ImageError::Interrupted`] once a signal has arrived.
pub(super) fn check_interrupt(image: &Path) -> Result<(), ImageError> {
    match interrupt::requested() {
        Some(_) => Err(ImageError::Interrupted {
            path: image.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// After a signal, whatever failed failed because of it (a killed
/// appliance, a killed `qemu-img`): say so instead.
pub(super) fn interrupted_or(image: &Path, error: ImageError) -> ImageError {
    match check_interrupt(image) {
        Err(interrupted) => interrupted,
        Ok(()) => error,
    }
}

/// The launch tokens of appliances booting or running now.
static LIVE_APPLIANCES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn live_appliances() -> std::sync::MutexGuard<'static, Vec<String>> {
    LIVE_APPLIANCES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An appliance's launch token, listed while the appliance may be running
/// so the signal thread can find its qemu.
pub(super) struct LiveToken(pub(super) String);

impl LiveToken {
    pub(super) fn new() -> LiveToken {
        let token = launch_token();
        live_appliances().push(token.clone());
        LiveToken(token)
    }
}

impl Drop for LiveToken {
    fn drop(&mut self) {
        live_appliances().retain(|t| t != &self.0);
    }
}

/// SIGKILLs the qemu of every live appliance. libguestfs notices the
/// appliance is gone and fails the call in progress; its handle is closed
/// later, on the thread that owns it. One still being built (supermin, no
/// qemu yet) is caught by its boot watchdog, which checks the flag too.
fn kill_live_appliances() {
    for token in live_appliances().iter() {
        if let Some(pid) = find_qemu(token) {
            // SAFETY: sending a signal to a process id; no memory involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn launch_token() -> String {
    format!("kiln_launch={}", unique_suffix())
}

/// The pid of the qemu process whose command line carries `token`.
pub(super) fn find_qemu(token: &str) -> Option<libc::pid_t> {
    let entries = fs::read_dir("/proc").ok()?;
    entries.flatten().find_map(|entry| {
        let pid: libc::pid_t = entry.file_name().to_str()?.parse().ok()?;
        let mut cmdline = Vec::new();
        File::open(entry.path().join("cmdline"))
            .ok()?
            .read_to_end(&mut cmdline)
            .ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline);
        (cmdline.contains("qemu") && cmdline.contains(token)).then_some(pid)
    })
}

pub(super) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

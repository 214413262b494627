//! Booting the libguestfs appliance: the choice between hardware
//! acceleration and software emulation (with `Auto`'s fallback, remembered
//! for the process and, in the cache root, until the machine reboots), the
//! handle's configuration (network, process group, backend settings, the
//! launch token on qemu's command line) and the boot watchdog that kills an
//! appliance which will never come up. It is separate because launching is
//! the one slow, host-dependent step of a session, and its policy (deadlines,
//! fallback, memo) is easier to judge read on its own.
//!
//! It also sizes a reconciling session's appliance ([`size_appliance`]) and
//! opens its writable drive with libguestfs's `cachemode: unsafe`
//! ([`drive_cachemode`]). That drive is always kiln's throwaway overlay:
//! it is committed only after every validator passed, by a clean appliance
//! shutdown (qemu writes out what it holds when it exits) and then
//! `qemu-img convert` plus kiln's own fsync of the result. A host or
//! appliance crash before that discards the overlay, so the guest's fsyncs
//! (dpkg issues one per unpacked file) buy no durability and qemu may
//! ignore them; virt-builder runs its appliance the same way.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::cleanup::{find_qemu, LiveToken};
use super::guestfs_quirks::{describe, silence_error_printing};
use super::{Accel, ImageError, ImageOptions};
use crate::interrupt;
use crate::text::first_line;

pub(super) struct Drive {
    pub(super) path: PathBuf,
    pub(super) format: String,
    pub(super) readonly: bool,
}

/// A healthy accelerated appliance boots in a few seconds; on hosts where
/// KVM is broken (nested, some CI) qemu boots the firmware and then hangs in
/// the kernel, so without a deadline `Auto` would wait forever.
/// A false alarm only costs speed (software emulation still works), so the
/// deadline is short.
const HARDWARE_BOOT_DEADLINE: Duration = Duration::from_secs(20);
/// Software emulation boots in 13–20 s on a 2-core host; this only catches
/// appliances that will never come up.
const SOFTWARE_BOOT_DEADLINE: Duration = Duration::from_secs(600);

/// Set once hardware acceleration failed in this process, so later sessions
/// do not pay the deadline again.
static HARDWARE_ACCEL_FAILED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Emulation {
    Hardware,
    Software,
}

pub(super) fn launch_appliance(
    image: &Path,
    drives: &[Drive],
    options: &ImageOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<(guestfs::Handle, LiveToken), ImageError> {
    let first = first_emulation(image, options.accel, progress)?;
    match launch_with(drives, options.network, first) {
        Ok(launched) => Ok(launched),
        // An interrupted boot says nothing about hardware acceleration.
        Err(_) if interrupt::requested().is_some() => Err(ImageError::Interrupted {
            path: image.to_path_buf(),
        }),
        Err(failure) if first == Emulation::Hardware && options.accel == Accel::Auto => {
            HARDWARE_ACCEL_FAILED.store(true, Ordering::Relaxed);
            remember_hardware_failure();
            progress(&format!(
                "hardware acceleration failed ({}); using software emulation",
                failure.reason
            ));
            launch_with(drives, options.network, Emulation::Software)
                .map_err(|f| f.into_error(image))
        }
        Err(failure) => Err(failure.into_error(image)),
    }
}

/// Which emulation to try first, reporting why hardware acceleration is
/// skipped when `Auto` skips it.
fn first_emulation(
    image: &Path,
    accel: Accel,
    progress: &mut dyn FnMut(&str),
) -> Result<Emulation, ImageError> {
    let kvm = kvm_usable();
    match accel {
        Accel::Tcg => Ok(Emulation::Software),
        Accel::Kvm => match kvm {
            Ok(()) => Ok(Emulation::Hardware),
            Err(reason) => Err(ImageError::NoHardwareAcceleration {
                path: image.to_path_buf(),
                reason,
            }),
        },
        Accel::Auto if user_forces_tcg() => Ok(Emulation::Software),
        Accel::Auto => {
            if let Err(reason) = kvm {
                progress(&format!(
                    "hardware acceleration unavailable ({reason}); using software emulation"
                ));
                Ok(Emulation::Software)
            } else if HARDWARE_ACCEL_FAILED.load(Ordering::Relaxed) {
                progress(
                    "hardware acceleration failed earlier in this run; using software emulation",
                );
                Ok(Emulation::Software)
            } else if let Some(memo) = remembered_hardware_failure() {
                progress(&format!(
                    "hardware acceleration failed earlier since this machine booted (remembered in {}); \
                     using software emulation (--accel kvm tries it again)",
                    memo.display()
                ));
                Ok(Emulation::Software)
            } else {
                Ok(Emulation::Hardware)
            }
        }
    }
}

/// Where a failed hardware launch is remembered until the machine reboots,
/// so that later runs do not each pay the boot deadline: the file holds the
/// kernel's boot id. It lives in kiln's one cache root
/// ([`crate::dirs::cache_root`]).
fn accel_memo_path() -> Option<PathBuf> {
    let cache = crate::dirs::cache_root()?;
    Some(cache.join("hardware-accel-failed"))
}

fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_string())
}

/// The memo file, when it says hardware acceleration failed since this boot.
fn remembered_hardware_failure() -> Option<PathBuf> {
    let path = accel_memo_path()?;
    let recorded = fs::read_to_string(&path).ok()?;
    (Some(recorded.trim().to_string()) == boot_id()).then_some(path)
}

/// Best effort: a memo that cannot be written only costs the next run the deadline.
fn remember_hardware_failure() {
    if let (Some(path), Some(id)) = (accel_memo_path(), boot_id()) {
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
        }
        let _ = fs::write(path, id + "\n");
    }
}

fn kvm_usable() -> Result<(), String> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(|_| ())
        .map_err(|e| format!("/dev/kvm: {e}"))
}

/// The user already asked libguestfs for software emulation.
fn user_forces_tcg() -> bool {
    std::env::var("LIBGUESTFS_BACKEND_SETTINGS")
        .map(|settings| settings.split(':').any(|s| s == "force_tcg"))
        .unwrap_or(false)
}

struct LaunchFailure {
    reason: String,
}

impl LaunchFailure {
    fn into_error(self, image: &Path) -> ImageError {
        ImageError::Launch {
            path: image.to_path_buf(),
            reason: self.reason,
        }
    }
}

fn launch_with(
    drives: &[Drive],
    network: bool,
    emulation: Emulation,
) -> Result<(guestfs::Handle, LiveToken), LaunchFailure> {
    let fail = |operation: &str, e: guestfs::Error| LaunchFailure {
        reason: format!("{operation}: {}", describe(&e)),
    };
    let handle = guestfs::Handle::create().map_err(|e| fail("create", e))?;
    silence_error_printing(&handle);
    let token = LiveToken::new();
    configure(&handle, drives, network, emulation, &token.0).map_err(|e| fail("configure", e))?;
    let deadline = match emulation {
        Emulation::Hardware => HARDWARE_BOOT_DEADLINE,
        Emulation::Software => SOFTWARE_BOOT_DEADLINE,
    };
    if interrupt::requested().is_some() {
        return Err(LaunchFailure {
            reason: interrupt::reason(),
        });
    }
    let watchdog = BootWatchdog::start(token.0.clone(), deadline);
    let launched = handle.launch();
    let overran = watchdog.stop();
    match launched {
        Ok(()) => Ok((handle, token)),
        Err(_) if overran => Err(LaunchFailure {
            reason: format!("appliance did not boot within {} s", deadline.as_secs()),
        }),
        Err(e) => Err(LaunchFailure {
            reason: summarize_launch_error(&describe(&e)),
        }),
    }
}

/// Configures the handle and adds `drives` in order: the guest sees them
/// as /dev/sda, /dev/sdb, … (an image batch launches once for several).
fn configure(
    handle: &guestfs::Handle,
    drives: &[Drive],
    network: bool,
    emulation: Emulation,
    token: &str,
) -> Result<(), guestfs::Error> {
    handle.set_network(network)?;
    // qemu (and supermin) in a process group of their own: Ctrl-C at the
    // terminal reaches kiln alone, which then kills the appliance itself
    // and closes the handle in order, instead of libguestfs finding its
    // qemu gone at some later call (`call launch before using this
    // function`). libguestfs's recovery process still kills qemu if kiln
    // itself is killed.
    handle.set_pgroup(true)?;
    // Closing a handle normally unmounts and syncs first; a read-only
    // session has nothing to keep, so its close just stops the appliance.
    handle.set_autosync(drives.iter().any(|drive| !drive.readonly))?;
    let mut settings = handle.get_backend_settings()?;
    settings.retain(|s| s != "force_tcg");
    if emulation == Emulation::Software {
        settings.push("force_tcg".into());
    }
    let settings: Vec<&str> = settings.iter().map(String::as_str).collect();
    handle.set_backend_settings(&settings)?;
    // The token lands on qemu's command line, which lets the watchdog find
    // this appliance's qemu among others the process may run.
    let append = match handle.get_append()? {
        Some(existing) => format!("{existing} {token}"),
        None => token.to_string(),
    };
    handle.set_append(Some(&append))?;
    if drives.iter().any(|drive| !drive.readonly) {
        size_appliance(handle)?;
    }
    for drive in drives {
        add_drive(handle, drive)?;
    }
    Ok(())
}

fn add_drive(handle: &guestfs::Handle, drive: &Drive) -> Result<(), guestfs::Error> {
    let path = drive.path.to_string_lossy();
    handle.add_drive(
        &path,
        guestfs::AddDriveOptArgs {
            readonly: Some(drive.readonly),
            format: Some(&drive.format),
            cachemode: drive_cachemode(drive),
            ..Default::default()
        },
    )
}

/// `unsafe` for the writable drive, which is always kiln's throwaway
/// overlay: qemu then ignores the guest's flushes (every fsync dpkg issues
/// per file), and what the guest wrote still reaches the overlay file when
/// qemu exits cleanly at shutdown, before the commit reads it. If the host
/// or the appliance dies first, the overlay is discarded anyway and the
/// image was never touched; the commit flushes the file it writes itself.
/// virt-builder runs its appliance the same way. A read-only drive keeps
/// libguestfs's default: it gets libguestfs's own snapshot overlay.
fn drive_cachemode(drive: &Drive) -> Option<&'static str> {
    (!drive.readonly).then_some("unsafe")
}

/// libguestfs's default appliance has one vCPU and 1280 MB (or what
/// `LIBGUESTFS_MEMSIZE` says). A reconciling session runs the package
/// manager, so it gets a vCPU per two host cores (up to [`MAX_VCPUS`]) and,
/// when the host has memory to spare, [`PACKING_MEMSIZE_MB`]. A test-only
/// session keeps libguestfs's defaults: it only checks.
fn size_appliance(handle: &guestfs::Handle) -> Result<(), guestfs::Error> {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    handle.set_smp(vcpus_for(cores))?;
    if std::env::var_os("LIBGUESTFS_MEMSIZE").is_none() {
        let current = handle.get_memsize()?;
        handle.set_memsize(memsize_for(current, host_memory_mb()))?;
    }
    Ok(())
}

/// Software emulation runs each vCPU as a host thread; when they outnumber
/// the cores left free, a vCPU holding a guest kernel lock waits for the
/// host to run it while the others spin. On a loaded 2-core host a second
/// vCPU made apt's work cost 11 % more CPU, and its wall time moved either
/// way (0.87x side by side with one vCPU, 2.2x in an unpaired run): what it
/// gains is CPU taken from the host's other work (BENCHMARKS.md, issue 14). Hence half the host's cores, and
/// beyond four the package manager has nothing to run on them.
const MAX_VCPUS: usize = 4;
/// apt's package cache is ~40 MB and dpkg's unpacking lives in the page
/// cache; 2 GB leaves both room without taking much from a shared host.
const PACKING_MEMSIZE_MB: i32 = 2048;

fn vcpus_for(host_cores: usize) -> i32 {
    (host_cores / 2).clamp(1, MAX_VCPUS) as i32
}

/// [`PACKING_MEMSIZE_MB`] when it is at most an eighth of the host's
/// memory, never less than libguestfs's own choice.
fn memsize_for(default_mb: i32, host_mb: Option<u64>) -> i32 {
    match host_mb {
        Some(host) if host / 8 >= PACKING_MEMSIZE_MB as u64 => default_mb.max(PACKING_MEMSIZE_MB),
        _ => default_mb,
    }
}

/// The host's total memory from /proc/meminfo, in MB.
fn host_memory_mb() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// Kills an appliance's qemu that has run longer than the deadline without
/// the launch completing, or once a signal asked kiln to stop (the signal
/// thread may have looked before qemu existed), so `launch` returns instead
/// of hanging.
struct BootWatchdog {
    stop: mpsc::Sender<()>,
    thread: thread::JoinHandle<bool>,
}

impl BootWatchdog {
    fn start(token: String, deadline: Duration) -> BootWatchdog {
        let (stop, stopped) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut first_seen: Option<Instant> = None;
            while let Err(mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_millis(250))
            {
                let Some(pid) = find_qemu(&token) else {
                    continue;
                };
                // The clock starts when qemu does: building the appliance
                // (supermin) before that can take a while on a first run.
                let since = *first_seen.get_or_insert_with(Instant::now);
                if interrupt::requested().is_some() {
                    // SAFETY: sending a signal to a process id; no memory involved.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return false;
                }
                if since.elapsed() > deadline {
                    // SAFETY: sending a signal to a process id; no memory involved.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return true;
                }
            }
            false
        });
        BootWatchdog { stop, thread }
    }

    /// Stops watching; true when the watchdog killed the appliance.
    fn stop(self) -> bool {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or(false)
    }
}

/// libguestfs's launch error is a paragraph of debugging advice; keep the
/// first line and point at the switch that shows the appliance log.
fn summarize_launch_error(message: &str) -> String {
    format!(
        "{} (set LIBGUESTFS_DEBUG=1 to see the appliance log)",
        first_line(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcpus_leave_half_the_host_free_up_to_four() {
        assert_eq!(vcpus_for(1), 1);
        assert_eq!(vcpus_for(2), 1);
        assert_eq!(vcpus_for(4), 2);
        assert_eq!(vcpus_for(8), 4);
        assert_eq!(vcpus_for(64), 4);
    }

    #[test]
    fn memory_grows_only_on_hosts_with_room_and_never_shrinks() {
        assert_eq!(memsize_for(1280, Some(24 * 1024)), 2048);
        assert_eq!(memsize_for(1280, Some(16 * 1024)), 2048);
        assert_eq!(memsize_for(1280, Some(8 * 1024)), 1280, "an eighth is 1 GB");
        assert_eq!(memsize_for(1280, None), 1280);
        assert_eq!(
            memsize_for(4096, Some(64 * 1024)),
            4096,
            "a larger default stays"
        );
    }

    #[test]
    fn only_the_writable_overlay_ignores_flushes() {
        let drive = |readonly| Drive {
            path: PathBuf::from("/x"),
            format: "qcow2".into(),
            readonly,
        };
        assert_eq!(drive_cachemode(&drive(false)), Some("unsafe"));
        assert_eq!(drive_cachemode(&drive(true)), None);
    }

    #[test]
    fn host_memory_is_read() {
        assert!(host_memory_mb().is_some_and(|mb| mb > 0));
    }
}

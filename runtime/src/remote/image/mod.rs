//! The disk-image target: an [`ImageRemote`] opens a qcow2 or raw machine
//! image through libguestfs (format detected with `qemu-img`, never probed by
//! qemu), boots the appliance with the network on, inspects the guest, mounts
//! its file systems and then serves the [`Remote`] calls as root inside it. This
//! module owns the promise that an image is never left half-changed: a
//! test-only session adds the image read-only (libguestfs then keeps the
//! session's writes, such as a validator's scratch files in /tmp, in a
//! throwaway overlay of its own), and a reconciling session writes
//! into a temporary qcow2 overlay that `commit` turns into the result with one
//! atomic `rename` (or that `discard`, `Drop`, an error or SIGINT/SIGTERM simply
//! deletes). The result keeps the input's format, compression and backing
//! file (what those are and how `qemu-img` keeps them lives in `layout`). A
//! signal (see [`crate::interrupt`]) kills the session's qemu, so whatever
//! libguestfs call is blocked returns, and every step checks the flag:
//! `open` and `commit` then fail with [`ImageError::Interrupted`], and a commit
//! either renames its result into place or leaves the original untouched. It
//! also owns the choice between hardware acceleration and
//! software emulation, and the lock that keeps two reconciling sessions off one
//! image. Finding the guest's OS lives in `inspect`, how a command
//! reaches the guest in `command`, and what `--selinux-relabel` decides in
//! `selinux`.

mod command;
mod inspect;
mod layout;
mod selinux;

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::interrupt;
use crate::remote::{
    CommandOutput, FileKind, FileMetadata, FileRead, FileWrite, Remote, RemoteCommand, RemoteError,
    COMMAND_OUTPUT,
};
pub use command::CommandChannel;
use command::{
    appliance_script, capture_script, parse_reply, setup_script, timed_out, ApplianceSide,
    ChrootSetup, Reply,
};
pub use inspect::Inspector;
use layout::ImageLayout;
pub use selinux::RelabelOutcome;

/// How the appliance's virtual machine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// Hardware acceleration when `/dev/kvm` is usable, software emulation
    /// when it is not or when the accelerated appliance fails to boot.
    #[default]
    Auto,
    /// Hardware acceleration only; a failure is an error.
    Kvm,
    /// Software emulation (TCG) only.
    Tcg,
}

/// What to open and how.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// The disk image (qcow2 or raw).
    pub image: PathBuf,
    /// The guest root file system to use (`/dev/sda1`) when the image holds
    /// several operating systems.
    pub root_filesystem: Option<String>,
    /// Open read-only: nothing the session does reaches the image. Writes
    /// still work inside the session; libguestfs discards them at close.
    pub test_only: bool,
    pub accel: Accel,
    /// Write the changed image here instead of replacing `image`.
    pub output: Option<PathBuf>,
    /// Give the appliance a network (needed for package installs).
    pub network: bool,
    /// How commands reach the guest (see [`CommandChannel`]).
    pub command_channel: CommandChannel,
    /// Always find the guest's OS with libguestfs's full inspection, never
    /// kiln's quick one (see [`Inspector`]).
    pub full_inspection: bool,
}

impl ImageOptions {
    /// Options for a reconciling session on `image` with the network on.
    pub fn new(image: impl Into<PathBuf>) -> Self {
        ImageOptions {
            image: image.into(),
            root_filesystem: None,
            test_only: false,
            accel: Accel::Auto,
            output: None,
            network: true,
            command_channel: CommandChannel::default(),
            full_inspection: false,
        }
    }
}

/// Why an image could not be opened, changed or written back. Every variant
/// names the image, and none of them leaves the image changed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: no such file", .path.display())]
    NotFound { path: PathBuf },
    #[error("{} is a directory, not a disk image", .path.display())]
    IsDirectory { path: PathBuf },
    #[error("{} is not a regular file", .path.display())]
    NotRegularFile { path: PathBuf },
    #[error("{}: {source}", .path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{} is already open in another kiln session that may change it; wait for it to finish", .path.display())]
    HeldByKiln { path: PathBuf },
    #[error("{} is in use by another process: {reason}", .path.display())]
    InUse { path: PathBuf, reason: String },
    #[error("{} is damaged or not a disk image: {reason}", .path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("no operating system found in {}", .path.display())]
    NoOperatingSystem { path: PathBuf },
    #[error("{} holds several operating systems ({}); choose one as the root file system", .path.display(), .roots.join(", "))]
    SeveralOperatingSystems { path: PathBuf, roots: Vec<String> },
    #[error("{} has no operating system on {wanted}; it has: {}", .path.display(), .roots.join(", "))]
    RootNotFound {
        path: PathBuf,
        wanted: String,
        roots: Vec<String>,
    },
    #[error("hardware acceleration is unavailable for {}: {reason}", .path.display())]
    NoHardwareAcceleration { path: PathBuf, reason: String },
    #[error("the libguestfs appliance for {} did not start: {reason}", .path.display())]
    Launch { path: PathBuf, reason: String },
    #[error("{}: libguestfs {operation} failed: {message}", .path.display())]
    Guestfs {
        path: PathBuf,
        operation: String,
        message: String,
    },
    #[error("{}: `{tool}` failed: {message}", .path.display())]
    Tool {
        path: PathBuf,
        tool: String,
        message: String,
    },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// `--selinux-relabel` changes the guest, which a test-only session
    /// never does.
    #[error("{}: an SELinux relabel changes the image; it does not go with a test-only run", .path.display())]
    RelabelInTestOnly { path: PathBuf },
    /// SIGINT or SIGTERM arrived, or `--timeout` passed (see
    /// [`crate::interrupt`]); nothing was written to the image.
    #[error("{}: {}", .path.display(), interrupt::reason())]
    Interrupted { path: PathBuf },
}

/// What `commit` produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitSummary {
    /// The file now holding the changed image; `None` for a test-only
    /// session, which has nothing to write.
    pub written: Option<PathBuf>,
    /// Its format ("qcow2", "raw").
    pub format: String,
    /// How long writing it took.
    pub elapsed: Duration,
}

/// An open image: a running appliance with the guest's file systems mounted.
pub struct ImageRemote {
    guest: Option<Guest>,
    image: PathBuf,
    layout: ImageLayout,
    distro: String,
    inspector: Inspector,
    writes: Option<PendingWrites>,
}

/// What a reconciling session holds until it commits or discards.
struct PendingWrites {
    overlay: TempPath,
    output: Option<PathBuf>,
    _lock: ImageLock,
}

impl ImageRemote {
    /// Opens `options.image`: checks the file, locks it (reconciling
    /// sessions), creates the overlay, boots the appliance and mounts the
    /// guest. `progress` receives one-line notes (acceleration fallback,
    /// file systems that could not be mounted).
    pub fn open(
        options: &ImageOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ImageRemote, ImageError> {
        prepare_for_interrupts()?;
        let image = checked_image_path(&options.image)?;
        Self::open_checked(options, image.clone(), progress)
            .map_err(|error| interrupted_or(&image, error))
    }

    fn open_checked(
        options: &ImageOptions,
        image: PathBuf,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ImageRemote, ImageError> {
        // The lock comes before anything else so that a refused session
        // touches nothing.
        let lock = if options.test_only {
            None
        } else {
            Some(ImageLock::acquire(&image)?)
        };
        let layout = detect_layout(&image)?;
        let format = layout.format.clone();
        check_interrupt(&image)?;
        let writes = match lock {
            None => None,
            Some(lock) => Some(PendingWrites {
                overlay: create_overlay(&image, &format, options.output.as_deref())?,
                output: output_path(&image, options.output.as_deref())?,
                _lock: lock,
            }),
        };
        let drive = match &writes {
            None => Drive {
                path: image.clone(),
                format: format.clone(),
                readonly: true,
            },
            Some(w) => Drive {
                path: w.overlay.path.clone(),
                format: "qcow2".into(),
                readonly: false,
            },
        };
        interrupt::test_pause("launch");
        check_interrupt(&image)?;
        let (handle, token) = launch_appliance(&image, &drive, options, progress)?;
        let guest = Guest {
            handle,
            _token: token,
            image: image.clone(),
            network: options.network,
            wanted_channel: options.command_channel,
            channel: RefCell::new(None),
        };
        check_interrupt(&image)?;
        let found = guest.inspect(options.root_filesystem.as_deref(), options.full_inspection)?;
        guest.mount_filesystems(found.mountpoints, progress)?;
        check_interrupt(&image)?;
        let distro = found.distro;
        let inspector = found.inspector;
        Ok(ImageRemote {
            guest: Some(guest),
            image,
            layout,
            distro,
            inspector,
            writes,
        })
    }

    /// Which inspection found the guest's OS.
    pub fn inspector(&self) -> Inspector {
        self.inspector
    }

    /// The image this session opened.
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// The channel commands went through, once the first one has run
    /// ([`CommandChannel::DaemonSh`] also when the appliance could not set
    /// up a session chroot).
    pub fn command_channel(&self) -> Option<CommandChannel> {
        let guest = self.guest.as_ref()?;
        let channel = guest.channel.borrow();
        match &*channel {
            None => None,
            Some(ActiveChannel::Chroot(_)) => Some(CommandChannel::SessionChroot),
            Some(ActiveChannel::DaemonSh) => Some(CommandChannel::DaemonSh),
        }
    }

    /// Whether changes can be committed (false for test-only sessions).
    pub fn is_reconciling(&self) -> bool {
        self.writes.is_some()
    }

    /// Shuts the appliance down and writes the result atomically: to
    /// `output` when given, otherwise over the original image. A test-only
    /// session has nothing to write and just closes. Interrupted before the
    /// final rename, it fails with [`ImageError::Interrupted`] and the
    /// original is untouched; once renamed, the result stands.
    pub fn commit(self) -> Result<CommitSummary, ImageError> {
        let image = self.image.clone();
        self.commit_checked()
            .map_err(|error| interrupted_or(&image, error))
    }

    fn commit_checked(mut self) -> Result<CommitSummary, ImageError> {
        let started = Instant::now();
        let guest = self.guest.take();
        let Some(writes) = self.writes.take() else {
            drop(guest);
            return Ok(CommitSummary {
                written: None,
                format: self.layout.format.clone(),
                elapsed: started.elapsed(),
            });
        };
        if let Some(guest) = guest {
            check_interrupt(&self.image)?;
            guest.shut_down()?;
        }
        check_interrupt(&self.image)?;
        let target = writes.output.clone().unwrap_or_else(|| self.image.clone());
        write_result(&self.image, &writes.overlay.path, &self.layout, &target)?;
        // `writes` drops here: the overlay is deleted and the lock released.
        Ok(CommitSummary {
            written: Some(target),
            format: self.layout.format.clone(),
            elapsed: started.elapsed(),
        })
    }

    /// `--selinux-relabel`: gives an SELinux guest's files their labels back
    /// the way virt-customize does (see [`selinux`]), and does nothing for a
    /// guest without an SELinux policy. For a reconciling session after its
    /// validators passed and before [`commit`](Self::commit): it ends the
    /// session's command channel, so no command runs after it.
    pub fn selinux_relabel(&mut self) -> Result<RelabelOutcome, ImageError> {
        if self.writes.is_none() {
            return Err(ImageError::RelabelInTestOnly {
                path: self.image.clone(),
            });
        }
        let Some(guest) = self.guest.as_ref() else {
            return Err(ImageError::Guestfs {
                path: self.image.clone(),
                operation: "selinux_relabel".into(),
                message: "the appliance is already closed".into(),
            });
        };
        check_interrupt(&self.image)?;
        // The relabel walks the guest's own file systems, without the
        // session chroot's bind mounts and with its own resolv.conf back.
        guest.close_channel()?;
        guest.selinux_relabel()
    }

    /// Closes the appliance and deletes the overlay; the image stays as it was.
    pub fn discard(self) {
        drop(self);
    }

    fn guest(&self) -> Result<&Guest, RemoteError> {
        let guest = self.guest.as_ref().ok_or_else(|| RemoteError::Failed {
            target: self.name(),
            message: "the session is closed".into(),
        })?;
        // libguestfs keeps the error handler per thread, and the
        // interpreter calls from a thread of its own.
        silence_error_printing(&guest.handle);
        Ok(guest)
    }

    fn remote_error(&self, error: impl Into<CallError>) -> RemoteError {
        let target = self.name();
        // The appliance was killed on purpose: that is the whole story.
        if interrupt::requested().is_some() {
            return RemoteError::Failed {
                target,
                message: interrupt::reason(),
            };
        }
        match error.into() {
            CallError::Image(error) => RemoteError::Failed {
                target,
                message: error.to_string(),
            },
            CallError::Refused(message) => RemoteError::Failed { target, message },
            CallError::TooLarge { what, limit } => RemoteError::TooLarge {
                target,
                what,
                limit,
            },
            CallError::Symlink { path, detail } => RemoteError::Symlink {
                target,
                path,
                detail,
            },
        }
    }
}

/// Why a [`Remote`] call on the guest failed: libguestfs trouble, a path
/// that is not what the call needs, or a bound the call asked for.
#[derive(Debug)]
enum CallError {
    Image(ImageError),
    /// One line naming the path (the session adds the image).
    Refused(String),
    TooLarge {
        what: String,
        limit: usize,
    },
    Symlink {
        path: String,
        detail: String,
    },
}

impl From<ImageError> for CallError {
    fn from(error: ImageError) -> Self {
        CallError::Image(error)
    }
}

impl Drop for ImageRemote {
    fn drop(&mut self) {
        // Closing the handle kills the appliance; then the overlay goes.
        self.guest.take();
        self.writes.take();
    }
}

impl Remote for ImageRemote {
    fn name(&self) -> String {
        let file = self
            .image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        format!(
            "image {}",
            file.unwrap_or_else(|| self.image.display().to_string())
        )
    }

    fn distro(&mut self) -> Result<String, RemoteError> {
        Ok(self.distro.clone())
    }

    fn run(&mut self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError> {
        let started = Instant::now();
        let output = self
            .guest()?
            .run(command)
            .map_err(|e| self.remote_error(e))?;
        if let Some(limit) = command.timeout {
            if timed_out(output.exit_code, started.elapsed(), limit) {
                return Err(RemoteError::Timeout {
                    target: self.name(),
                    command: summarize_script(&command.script),
                    seconds: limit.as_secs_f64(),
                });
            }
        }
        Ok(output)
    }

    // libguestfs calls cannot be interrupted, so the file calls do not
    // watch `timeout`: what bounds their time is what bounds their size (a
    // read checks the file's size and kind before it downloads anything and
    // never downloads past `max_bytes`; a write sends what the validator
    // already holds). Commands keep their own `timeout`.
    fn write_file(&mut self, write: &FileWrite<'_>) -> Result<(), RemoteError> {
        self.guest()?
            .write_file(write)
            .map_err(|e| self.remote_error(e))
    }

    fn read_file(&mut self, read: &FileRead<'_>) -> Result<Option<Vec<u8>>, RemoteError> {
        self.guest()?
            .read_file(read)
            .map_err(|e| self.remote_error(e))
    }

    fn metadata(&mut self, read: &FileRead<'_>) -> Result<Option<FileMetadata>, RemoteError> {
        self.guest()?
            .metadata(read)
            .map_err(|e| self.remote_error(e))
    }
}

// ---------------------------------------------------------------------------
// The image file: checks, format, lock, overlay and the atomic write-back.

/// Rejects what is not a readable regular file, with a one-line reason, and
/// returns the absolute path (the overlay's backing reference needs one).
fn checked_image_path(path: &Path) -> Result<PathBuf, ImageError> {
    let metadata = fs::metadata(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ImageError::NotFound {
            path: path.to_path_buf(),
        },
        _ => ImageError::Unreadable {
            path: path.to_path_buf(),
            source,
        },
    })?;
    if metadata.is_dir() {
        return Err(ImageError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if !metadata.is_file() {
        return Err(ImageError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    File::open(path).map_err(|source| ImageError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    fs::canonicalize(path).map_err(|source| ImageError::Unreadable {
        path: path.to_path_buf(),
        source,
    })
}

/// `/etc/selinux/config` is a few lines; a larger one is not read.
const SELINUX_CONFIG_LIMIT: usize = 64 * 1024;

/// A raw file smaller than this cannot hold a partition table and a file
/// system with an operating system; refusing it early saves an appliance boot.
const SMALLEST_RAW_IMAGE: u64 = 1024 * 1024;

/// The image's layout (format, compression, backing file) as `qemu-img`
/// reads it, checked for damage. Passing the format to libguestfs explicitly
/// keeps qemu from probing a raw image (whose first sector the guest controls).
fn detect_layout(image: &Path) -> Result<ImageLayout, ImageError> {
    let info = qemu_img_info(image, image)?;
    let check = match info["format"].as_str() {
        Some("raw") => {
            check_raw(image)?;
            None
        }
        Some("qcow2") => Some(check_qcow2(image)?),
        _ => None,
    };
    let mut layout = ImageLayout::from_reports(image, &info, check.as_ref()).map_err(|reason| {
        ImageError::Corrupt {
            path: image.to_path_buf(),
            reason,
        }
    })?;
    if let Some(backing) = layout.backing.as_mut().filter(|b| b.format.is_none()) {
        // An old header without the backing format: qemu probed it, and the
        // result records what it found.
        let found = qemu_img_info(image, &backing.path)?;
        backing.format = found["format"].as_str().map(str::to_string);
    }
    Ok(layout)
}

/// `qemu-img info --output=json FILE`, parsed; errors are about `image`.
fn qemu_img_info(image: &Path, file: &Path) -> Result<serde_json::Value, ImageError> {
    // Without `-U`, so that an image a running VM holds is refused here
    // with qemu's own lock message.
    let info = run_tool(image, "qemu-img", &["info", "--output=json"], &[file])?;
    let info = match info {
        Ok(stdout) => stdout,
        Err(stderr) => return Err(classify_qemu_img_failure(image, &stderr)),
    };
    serde_json::from_slice(&info).map_err(|e| ImageError::Tool {
        path: image.to_path_buf(),
        tool: "qemu-img info".into(),
        message: format!("unreadable output: {e}"),
    })
}

fn check_raw(image: &Path) -> Result<(), ImageError> {
    let size = fs::metadata(image)
        .map_err(|source| ImageError::Unreadable {
            path: image.to_path_buf(),
            source,
        })?
        .len();
    if size < SMALLEST_RAW_IMAGE {
        return Err(ImageError::Corrupt {
            path: image.to_path_buf(),
            reason: format!("no known image format, and {size} bytes are too few for a raw disk"),
        });
    }
    Ok(())
}

/// `qemu-img check` finds truncated and damaged qcow2 files in milliseconds;
/// without it a truncated image fails late, inside the appliance. Its report
/// also counts the compressed clusters.
fn check_qcow2(image: &Path) -> Result<serde_json::Value, ImageError> {
    let output = Command::new("qemu-img")
        .args(["check", "--output=json", "-f", "qcow2"])
        .arg(image)
        .output()
        .map_err(|source| ImageError::Io {
            context: "running qemu-img check".into(),
            source,
        })?;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    // Exit status 3 means leaked clusters only: wasted space, no damage.
    if matches!(output.status.code(), Some(0) | Some(3)) {
        return Ok(report);
    }
    let reason = match report["corruptions"].as_u64() {
        Some(count) if count > 0 => {
            let end = report["image-end-offset"].as_u64().unwrap_or(0);
            format!(
                "qcow2 check found {count} damaged clusters (truncated? the file ends at {} MiB)",
                end >> 20
            )
        }
        _ => first_line(&String::from_utf8_lossy(&output.stderr)).to_string(),
    };
    Err(ImageError::Corrupt {
        path: image.to_path_buf(),
        reason,
    })
}

fn classify_qemu_img_failure(image: &Path, stderr: &str) -> ImageError {
    let reason = first_line(stderr.trim_start_matches("qemu-img: ")).to_string();
    if stderr.contains("lock") {
        ImageError::InUse {
            path: image.to_path_buf(),
            reason,
        }
    } else {
        ImageError::Corrupt {
            path: image.to_path_buf(),
            reason,
        }
    }
}

/// Runs a tool; `Ok(Err(stderr))` when it ran and failed.
fn run_tool(
    image: &Path,
    tool: &str,
    args: &[&str],
    paths: &[&Path],
) -> Result<Result<Vec<u8>, String>, ImageError> {
    let output = Command::new(tool)
        .args(args)
        .args(paths)
        .output()
        .map_err(|source| ImageError::Io {
            context: format!(
                "running {tool} (is qemu-utils installed?) for {}",
                image.display()
            ),
            source,
        })?;
    if output.status.success() {
        Ok(Ok(output.stdout))
    } else {
        Ok(Err(String::from_utf8_lossy(&output.stderr).into_owned()))
    }
}

/// An exclusive `flock` on the image file itself, held by a reconciling
/// session so that a second one is refused instead of racing to commit.
struct ImageLock {
    _file: File,
}

impl ImageLock {
    fn acquire(image: &Path) -> Result<ImageLock, ImageError> {
        let file = File::open(image).map_err(|source| ImageError::Unreadable {
            path: image.to_path_buf(),
            source,
        })?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            return Err(ImageError::HeldByKiln {
                path: image.to_path_buf(),
            });
        }
        // A commit replaces the image by rename: if that happened between
        // our open and our flock we hold a lock on the old file, so the
        // session that just committed still counts as holding the image.
        let opened = file.metadata().map_err(|source| ImageError::Unreadable {
            path: image.to_path_buf(),
            source,
        })?;
        let current = fs::metadata(image).map_err(|source| ImageError::Unreadable {
            path: image.to_path_buf(),
            source,
        })?;
        if (opened.dev(), opened.ino()) != (current.dev(), current.ino()) {
            return Err(ImageError::HeldByKiln {
                path: image.to_path_buf(),
            });
        }
        Ok(ImageLock { _file: file })
    }
}

/// Where a commit writes: `None` for "over the image itself".
fn output_path(image: &Path, output: Option<&Path>) -> Result<Option<PathBuf>, ImageError> {
    let Some(output) = output else {
        return Ok(None);
    };
    if output.is_dir() {
        return Err(ImageError::IsDirectory {
            path: output.to_path_buf(),
        });
    }
    let absolute = std::path::absolute(output).map_err(|source| ImageError::Io {
        context: format!("resolving output path {}", output.display()),
        source,
    })?;
    let same_file = fs::canonicalize(&absolute)
        .map(|p| p == image)
        .unwrap_or(false);
    Ok(if same_file { None } else { Some(absolute) })
}

/// Creates the qcow2 overlay that takes every write of a reconciling session,
/// next to where the result will go (so the final rename stays on one file
/// system) or in the temp directory when that directory is not writable.
fn create_overlay(
    image: &Path,
    format: &str,
    output: Option<&Path>,
) -> Result<TempPath, ImageError> {
    let beside = output.unwrap_or(image);
    let mut last_error = String::new();
    for dir in [parent_dir(beside), std::env::temp_dir()] {
        let overlay = TempPath::register(sibling_name(&dir, image, "overlay", "qcow2"));
        let backing = image.to_string_lossy();
        let args = ["create", "-q", "-f", "qcow2", "-F", format, "-b", &backing];
        match run_tool(image, "qemu-img", &args, &[&overlay.path])? {
            Ok(_) => return Ok(overlay),
            Err(stderr) => last_error = first_line(&stderr).to_string(),
        }
    }
    Err(ImageError::Tool {
        path: image.to_path_buf(),
        tool: "qemu-img create".into(),
        message: last_error,
    })
}

/// Converts the overlay (image + changes) into a new file beside `target`
/// with the image's layout, flushes it, and renames it over `target`:
/// readers see the old image or the new one, never a mix. An image with a
/// backing file keeps it: the overlay is first rebased straight onto that
/// file (taking in the image's own clusters), so the result holds the image's
/// data and the session's changes on top of the same backing file.
fn write_result(
    image: &Path,
    overlay: &Path,
    layout: &ImageLayout,
    target: &Path,
) -> Result<(), ImageError> {
    let staged = TempPath::register(sibling_name(
        &parent_dir(target),
        target,
        "commit",
        &layout.format,
    ));
    if let Some(backing) = &layout.backing {
        let mut args: Vec<OsString> = vec!["rebase".into(), "-f".into(), "qcow2".into()];
        args.extend(["-b".into(), backing.path.clone().into_os_string()]);
        if let Some(format) = &backing.format {
            args.extend(["-F".into(), format.into()]);
        }
        args.push(overlay.into());
        run_interruptible(image, target, "qemu-img rebase", &args)?;
    }
    let mut args: Vec<OsString> = vec!["convert".into(), "-f".into(), "qcow2".into()];
    args.extend(
        layout
            .convert_options(target)
            .into_iter()
            .map(OsString::from),
    );
    args.extend([overlay.into(), staged.path.clone().into_os_string()]);
    run_interruptible(image, target, "qemu-img convert", &args)?;
    let io_context = |what: &str| format!("{what} {}", staged.path.display());
    copy_ownership_and_mode(image, &staged.path);
    File::open(&staged.path)
        .and_then(|f| f.sync_all())
        .map_err(|source| ImageError::Io {
            context: io_context("flushing"),
            source,
        })?;
    interrupt::test_pause("commit");
    // The last moment to stop: after the rename the result stands.
    check_interrupt(image)?;
    fs::rename(&staged.path, target).map_err(|source| ImageError::Io {
        context: format!(
            "replacing {} with {}",
            target.display(),
            staged.path.display()
        ),
        source,
    })?;
    staged.forget();
    // Make the rename itself durable; a failure here changes nothing visible.
    if let Ok(dir) = File::open(parent_dir(target)) {
        let _ = dir.sync_all();
    }
    interrupt::test_pause("committed");
    Ok(())
}

/// The new file replaces the image, so it keeps the image's mode and, when
/// we may, its owner.
fn copy_ownership_and_mode(from: &Path, to: &Path) {
    if let Ok(metadata) = fs::metadata(from) {
        let _ = fs::set_permissions(to, fs::Permissions::from_mode(metadata.mode() & 0o7777));
        let _ = std::os::unix::fs::chown(to, Some(metadata.uid()), Some(metadata.gid()));
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `.NAME.kiln-KIND-PID-N.EXT` in `dir`: hidden, unique in this process, and
/// traceable to the image it belongs to.
fn sibling_name(dir: &Path, image: &Path, kind: &str, ext: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(
        ".{name}.kiln-{kind}-{}-{n}.{ext}",
        std::process::id()
    ))
}

// ---------------------------------------------------------------------------
// Temporary files that must not outlive the process, even on SIGINT/SIGTERM.

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
struct TempPath {
    path: PathBuf,
}

impl TempPath {
    /// Registers the path before the file exists, so there is no moment when
    /// a signal could leave it behind.
    fn register(path: PathBuf) -> TempPath {
        temp_paths().push(path.clone());
        TempPath { path }
    }

    /// The file was renamed into place: it is no longer ours to remove.
    fn forget(self) {
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
fn prepare_for_interrupts() -> Result<(), ImageError> {
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
fn check_interrupt(image: &Path) -> Result<(), ImageError> {
    match interrupt::requested() {
        Some(_) => Err(ImageError::Interrupted {
            path: image.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// After a signal, whatever failed failed because of it (a killed
/// appliance, a killed `qemu-img`): say so instead.
fn interrupted_or(image: &Path, error: ImageError) -> ImageError {
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
struct LiveToken(String);

impl LiveToken {
    fn new() -> LiveToken {
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

/// A commit step (`qemu-img convert` or `rebase`, named by `tool`), in a
/// process group of its own (Ctrl-C at the terminal reaches kiln, which
/// decides) and killed when a signal arrives, so an interrupted commit stops
/// in a moment.
fn run_interruptible(
    image: &Path,
    target: &Path,
    tool: &str,
    args: &[OsString],
) -> Result<(), ImageError> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("qemu-img")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|source| ImageError::Io {
            context: format!(
                "running qemu-img (is qemu-utils installed?) for {}",
                image.display()
            ),
            source,
        })?;
    let mut stderr = child.stderr.take();
    let reader = thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });
    let status = loop {
        if interrupt::requested().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ImageError::Interrupted {
                path: image.to_path_buf(),
            });
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ImageError::Io {
                    context: format!("waiting for {tool}"),
                    source,
                });
            }
        }
    };
    let stderr = reader.join().unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(ImageError::Tool {
            path: target.to_path_buf(),
            tool: tool.into(),
            message: first_line(&stderr).to_string(),
        })
    }
}

// ---------------------------------------------------------------------------
// Launching the appliance, with the hardware-acceleration fallback.

struct Drive {
    path: PathBuf,
    format: String,
    readonly: bool,
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

fn launch_appliance(
    image: &Path,
    drive: &Drive,
    options: &ImageOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<(guestfs::Handle, LiveToken), ImageError> {
    let first = first_emulation(image, options.accel, progress)?;
    match launch_with(drive, options.network, first) {
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
            launch_with(drive, options.network, Emulation::Software)
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
/// kernel's boot id.
fn accel_memo_path() -> Option<PathBuf> {
    let cache = std::env::var_os("KILN_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("kiln")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kiln")))?;
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
    drive: &Drive,
    network: bool,
    emulation: Emulation,
) -> Result<(guestfs::Handle, LiveToken), LaunchFailure> {
    let fail = |operation: &str, e: guestfs::Error| LaunchFailure {
        reason: format!("{operation}: {}", describe(&e)),
    };
    let handle = guestfs::Handle::create().map_err(|e| fail("create", e))?;
    silence_error_printing(&handle);
    let token = LiveToken::new();
    configure(&handle, drive, network, emulation, &token.0).map_err(|e| fail("configure", e))?;
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

fn configure(
    handle: &guestfs::Handle,
    drive: &Drive,
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
    handle.set_autosync(!drive.readonly)?;
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
    let path = drive.path.to_string_lossy();
    handle.add_drive(
        &path,
        guestfs::AddDriveOptArgs {
            readonly: Some(drive.readonly),
            format: Some(&drive.format),
            ..Default::default()
        },
    )
}

/// libguestfs prints every failed call to stderr ("libguestfs: error: …",
/// often a paragraph of debugging advice) besides returning it; kiln reports
/// errors itself, in one line, so the printing is switched off. The messages
/// stay available to the `guestfs` crate through `guestfs_last_error`. The
/// setting is per thread (libguestfs keeps error state in thread-local
/// storage), so every thread that calls on a handle needs it.
fn silence_error_printing(handle: &guestfs::Handle) {
    #[link(name = "guestfs")]
    extern "C" {
        fn guestfs_set_error_handler(
            g: *mut std::ffi::c_void,
            cb: Option<
                extern "C" fn(
                    *mut std::ffi::c_void,
                    *mut std::ffi::c_void,
                    *const std::ffi::c_char,
                ),
            >,
            opaque: *mut std::ffi::c_void,
        );
    }
    // The crate keeps the `guestfs_h *` in its only field and offers no way
    // to set the handler. A struct exactly the size of its one pointer field
    // holds that field at offset 0, which this assertion pins down.
    const _: () = assert!(
        std::mem::size_of::<guestfs::Handle>() == std::mem::size_of::<*mut std::ffi::c_void>()
    );
    // SAFETY: per the assertion above, the handle's first (only) word is
    // the live `guestfs_h *` it owns; a null callback is documented as
    // "no handler" and the handle outlives this call.
    unsafe {
        let g = *(handle as *const guestfs::Handle as *const *mut std::ffi::c_void);
        guestfs_set_error_handler(g, None, std::ptr::null_mut());
    }
}

fn launch_token() -> String {
    format!("kiln_launch={}", unique_suffix())
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

/// The pid of the qemu process whose command line carries `token`.
fn find_qemu(token: &str) -> Option<libc::pid_t> {
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

/// libguestfs's launch error is a paragraph of debugging advice; keep the
/// first line and point at the switch that shows the appliance log.
fn summarize_launch_error(message: &str) -> String {
    format!(
        "{} (set LIBGUESTFS_DEBUG=1 to see the appliance log)",
        first_line(message)
    )
}

// ---------------------------------------------------------------------------
// The running guest.

/// The libguestfs handle of a launched appliance with the guest mounted.
struct Guest {
    /// Dropped first: closing the handle stops the appliance, and only then
    /// does the token leave the list of live appliances.
    handle: guestfs::Handle,
    _token: LiveToken,
    image: PathBuf,
    network: bool,
    wanted_channel: CommandChannel,
    /// Chosen (and set up) when the first command runs.
    channel: RefCell<Option<ActiveChannel>>,
}

/// The channel a session's commands use once the first one has run.
enum ActiveChannel {
    Chroot(ChrootSetup),
    DaemonSh,
}

// SAFETY: a libguestfs handle may be used from any thread as long as calls
// on it do not overlap (guestfs(3), "MULTIPLE HANDLES AND MULTIPLE
// THREADS"); `Guest` is only reached through `&mut ImageRemote` or by value,
// so calls never overlap.
unsafe impl Send for Guest {}

impl Guest {
    fn call<T>(
        &self,
        operation: &str,
        f: impl FnOnce(&guestfs::Handle) -> Result<T, guestfs::Error>,
    ) -> Result<T, ImageError> {
        f(&self.handle).map_err(|e| ImageError::Guestfs {
            path: self.image.clone(),
            operation: operation.to_string(),
            message: describe(&e),
        })
    }

    /// Mounts the guest's file systems as its fstab says, parents before
    /// children. Only the root is required: fstab entries for disks the
    /// image does not contain are reported and skipped, as virt-customize
    /// does.
    fn mount_filesystems(
        &self,
        mountpoints: HashMap<String, String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), ImageError> {
        for (mountpoint, device) in mount_order(mountpoints) {
            match self.call("mount", |g| g.mount(&device, &mountpoint)) {
                Ok(()) => {}
                Err(e) if mountpoint == "/" => return Err(e),
                Err(e) => progress(&format!(
                    "could not mount {device} on {mountpoint} (skipped): {e}"
                )),
            }
        }
        Ok(())
    }

    /// Runs the command as root inside the guest in one libguestfs round
    /// trip for normal-sized output. libguestfs's `sh` and `debug sh` fail
    /// on a non-zero exit, mix stderr into their reply or error and return
    /// text only, so a wrapper ([`appliance_script`] in a session chroot,
    /// [`capture_script`] under `sh`) captures the command's streams in
    /// files and replies with one frame: the exit status, then both streams
    /// base64-encoded. Output too large for one protocol message (or no
    /// `base64`) is downloaded from files in the guest instead. Output past
    /// the command's limit is cut there on the guest's side and never sent.
    fn run(&self, command: &RemoteCommand) -> Result<CommandOutput, CallError> {
        let capture = format!("/tmp/.kiln-run-{}", unique_suffix());
        let sent = if self.chroot_ready() {
            let script = appliance_script(command, &capture, &ApplianceSide::CHROOT);
            self.call("debug sh", |g| g.debug("sh", &[&script]))
        } else {
            let script = capture_script(command, &capture);
            self.call("sh", |g| g.sh(&script))
        };
        let reply = match sent {
            Ok(reply) => reply,
            Err(e) => {
                let _ = self.handle.rm_rf(&capture);
                return Err(e.into());
            }
        };
        let too_large = |limit| CallError::TooLarge {
            what: COMMAND_OUTPUT.into(),
            limit,
        };
        match (parse_reply(&reply), command.output_limit) {
            // Nothing is left in the guest: `sh`'s wrapper removed its
            // capture directory, and the appliance's never made one.
            (Reply::Inline(output), Some(limit))
                if output.stdout.len() + output.stderr.len() > limit =>
            {
                Err(too_large(limit))
            }
            (Reply::Inline(output), _) => Ok(output),
            (Reply::TooLarge, Some(limit)) => Err(too_large(limit)),
            (Reply::Files(exit_code), limit) => {
                let collected = self.collect(exit_code, &capture, limit);
                let _ = self.handle.rm_rf(&capture);
                collected
            }
            (Reply::Garbled | Reply::TooLarge, _) => {
                let _ = self.handle.rm_rf(&capture);
                Err(ImageError::Guestfs {
                    path: self.image.clone(),
                    operation: "sh".into(),
                    message: format!(
                        "the command left no exit status (got {:?})",
                        first_line(&reply)
                    ),
                }
                .into())
            }
        }
    }

    /// Whether commands go through the session chroot, setting it up if this
    /// is the first command. An appliance without `debug sh` falls back to
    /// libguestfs's `sh`.
    fn chroot_ready(&self) -> bool {
        let mut channel = self.channel.borrow_mut();
        if channel.is_none() {
            *channel = Some(match self.wanted_channel {
                CommandChannel::DaemonSh => ActiveChannel::DaemonSh,
                CommandChannel::SessionChroot => {
                    let backup = format!("/etc/.kiln-resolv.conf-{}", unique_suffix());
                    let script = setup_script(self.network, &backup);
                    match self.handle.debug("sh", &[&script]) {
                        Ok(reply) => match ChrootSetup::from_reply(&reply, &backup) {
                            Some(setup) => ActiveChannel::Chroot(setup),
                            None => ActiveChannel::DaemonSh,
                        },
                        Err(_) => ActiveChannel::DaemonSh,
                    }
                }
            });
        }
        matches!(*channel, Some(ActiveChannel::Chroot(_)))
    }

    /// The path the file calls should use for the guest's `path` (see
    /// [`ChrootSetup::file_path`]).
    fn file_path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        match &*self.channel.borrow() {
            Some(ActiveChannel::Chroot(setup)) => Cow::Owned(setup.file_path(path).to_string()),
            _ => Cow::Borrowed(path),
        }
    }

    /// Undoes the session chroot's set-up, so that what the appliance
    /// writes back holds the guest's own resolv.conf and no trace of kiln.
    /// A resolv.conf that cannot be put back fails the commit.
    fn close_channel(&self) -> Result<(), ImageError> {
        let Some(ActiveChannel::Chroot(setup)) = self.channel.borrow_mut().take() else {
            return Ok(());
        };
        let reply = self.call("debug sh", |g| g.debug("sh", &[&setup.teardown_script()]))?;
        if ChrootSetup::restored(&reply) {
            Ok(())
        } else {
            Err(ImageError::Guestfs {
                path: self.image.clone(),
                operation: "restoring /etc/resolv.conf".into(),
                message: format!(
                    "the guest's own resolver configuration could not be put back ({})",
                    first_line(&reply)
                ),
            })
        }
    }

    /// Downloads the capture files, never more than `limit` bytes of the
    /// two together (the wrapper checked the sizes, but a process the
    /// command left behind could still be appending to them).
    fn collect(
        &self,
        exit_code: i32,
        capture: &str,
        limit: Option<usize>,
    ) -> Result<CommandOutput, CallError> {
        let too_large = |limit| CallError::TooLarge {
            what: COMMAND_OUTPUT.into(),
            limit,
        };
        let Some(stdout) = self.download(&format!("{capture}/stdout"), limit)? else {
            return Err(too_large(limit.unwrap_or(0)));
        };
        let left = limit.map(|limit| limit - stdout.len());
        let Some(stderr) = self.download(&format!("{capture}/stderr"), left)? else {
            return Err(too_large(limit.unwrap_or(0)));
        };
        Ok(CommandOutput {
            exit_code,
            stdout,
            stderr,
        })
    }

    /// Downloads through a local file rather than `read_file`, whose
    /// result must fit in one protocol message (4 MB). With `max`, never
    /// more than `max + 1` bytes cross over, and `None` says the file holds
    /// more than `max`.
    fn download(&self, path: &str, max: Option<usize>) -> Result<Option<Vec<u8>>, ImageError> {
        let local = tempfile::NamedTempFile::new().map_err(|source| ImageError::Io {
            context: "creating a temporary file".into(),
            source,
        })?;
        let local_path = local.path().to_string_lossy().into_owned();
        match max {
            Some(max) => {
                let size = i64::try_from(max).unwrap_or(i64::MAX - 1) + 1;
                self.call("download_offset", |g| {
                    g.download_offset(path, &local_path, 0, size)
                })?
            }
            None => self.call("download", |g| g.download(path, &local_path))?,
        }
        let io_error = |source| ImageError::Io {
            context: format!("reading {local_path}"),
            source,
        };
        let held = local.as_file().metadata().map_err(io_error)?.len();
        if max.is_some_and(|max| held > max as u64) {
            return Ok(None);
        }
        fs::read(local.path()).map(Some).map_err(io_error)
    }

    /// Reads a regular file: its kind and size are checked before anything
    /// is downloaded, so a device, FIFO or directory is never opened and a
    /// file past `max_bytes` never crosses over.
    fn read_file(&self, read: &FileRead<'_>) -> Result<Option<Vec<u8>>, CallError> {
        require_absolute(&self.image, read.path)?;
        let path = &*self.file_path(read.path);
        if read.exact_path {
            self.refuse_symlinks(read.path, path, true)?;
        }
        // With exact_path no symlink is left on the way, so either stat
        // sees the same file; otherwise the read follows links, as open does.
        let stat = if read.exact_path {
            self.lstat(path)?
        } else {
            self.stat(path)?
        };
        let Some(stat) = stat else {
            return Ok(None);
        };
        if kind_of(stat.st_mode) != FileKind::Regular {
            return Err(CallError::Refused(format!(
                "{} is {}, not a regular file; it was not read",
                read.path,
                kind_name(stat.st_mode)
            )));
        }
        let too_large = |limit| CallError::TooLarge {
            what: read.path.to_string(),
            limit,
        };
        if let Some(max) = read.max_bytes {
            if u64::try_from(stat.st_size).unwrap_or(0) > max as u64 {
                return Err(too_large(max));
            }
        }
        match self.download(path, read.max_bytes)? {
            Some(bytes) => Ok(Some(bytes)),
            None => Err(too_large(read.max_bytes.unwrap_or(0))),
        }
    }

    /// Uploads to a temporary name beside `path`, sets the owner and then
    /// the mode (a chown clears setuid bits), then renames: the file never
    /// exists with the wrong owner, mode or partial content, and `rename`
    /// replaces a symlink at `path` instead of following it. Owner and mode
    /// left `None` are an existing regular file's, else root and 0o644.
    fn write_file(&self, write: &FileWrite<'_>) -> Result<(), CallError> {
        require_absolute(&self.image, write.path)?;
        let path = &*self.file_path(write.path);
        if write.exact_path {
            self.refuse_symlinks(write.path, path, false)?;
        }
        let existing = if write.mode.is_none() || write.uid.is_none() || write.gid.is_none() {
            self.lstat(path)?
                .filter(|stat| kind_of(stat.st_mode) == FileKind::Regular)
        } else {
            None
        };
        let kept = |field: fn(&guestfs::StatNS) -> i64| existing.as_ref().map(|s| field(s) as u32);
        let mode = write.mode.or(kept(|s| s.st_mode)).unwrap_or(0o644) & 0o7777;
        let uid = write.uid.or(kept(|s| s.st_uid)).unwrap_or(0);
        let gid = write.gid.or(kept(|s| s.st_gid)).unwrap_or(0);
        let mut local = tempfile::NamedTempFile::new().map_err(|source| ImageError::Io {
            context: "creating a temporary file".into(),
            source,
        })?;
        io::Write::write_all(&mut local, write.contents).map_err(|source| ImageError::Io {
            context: "writing a temporary file".into(),
            source,
        })?;
        let local_path = local.path().to_string_lossy().into_owned();
        let staged = format!("{}/.kiln-write-{}", guest_parent(path), unique_suffix());
        let written = self
            .call("upload", |g| g.upload(&local_path, &staged))
            .and_then(|()| self.call("lchown", |g| g.lchown(uid as i32, gid as i32, &staged)))
            .and_then(|()| self.call("chmod", |g| g.chmod(mode as i32, &staged)))
            .and_then(|()| self.call("rename", |g| g.rename(&staged, path)));
        if written.is_err() {
            let _ = self.handle.rm_f(&staged);
        }
        Ok(written?)
    }

    /// The path itself (`lstat`); a symlink is reported, not followed.
    fn metadata(&self, read: &FileRead<'_>) -> Result<Option<FileMetadata>, CallError> {
        require_absolute(&self.image, read.path)?;
        let path = &*self.file_path(read.path);
        if read.exact_path {
            self.refuse_symlinks(read.path, path, false)?;
        }
        Ok(self.lstat(path)?.map(|stat| FileMetadata {
            kind: kind_of(stat.st_mode),
            size: u64::try_from(stat.st_size).unwrap_or(0),
            mode: (stat.st_mode & 0o7777) as u32,
            uid: stat.st_uid as u32,
            gid: stat.st_gid as u32,
        }))
    }

    /// Refuses a symlink among `path`'s directories (and `path` itself when
    /// `including_self`). One round trip in the usual case: `realpath` of
    /// the checked part equal to itself means no symlink on the way (the
    /// daemon resolves in the guest's root). Otherwise, or when part of the
    /// path is missing, each prefix is `lstat`ed to find the link. `shown`
    /// is the path the caller named (the file calls may use another name
    /// for the guest's resolv.conf).
    fn refuse_symlinks(
        &self,
        shown: &str,
        path: &str,
        including_self: bool,
    ) -> Result<(), CallError> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let checked = if including_self {
            parts.len()
        } else {
            parts.len().saturating_sub(1)
        };
        if checked == 0 {
            return Ok(());
        }
        let whole = format!("/{}", parts[..checked].join("/"));
        if matches!(self.call("realpath", |g| g.realpath(&whole)), Ok(real) if real == whole) {
            return Ok(());
        }
        for n in 1..=checked {
            let prefix = format!("/{}", parts[..n].join("/"));
            let Some(stat) = self.lstat(&prefix)? else {
                // Nothing here, so nothing below can be a link either.
                return Ok(());
            };
            if kind_of(stat.st_mode) == FileKind::Symlink {
                let points_to = self
                    .call("readlink", |g| g.readlink(&prefix))
                    .unwrap_or_else(|_| "?".into());
                let link = if prefix == path { shown } else { &prefix };
                return Err(CallError::Symlink {
                    path: shown.to_string(),
                    detail: format!("{link} -> {points_to}"),
                });
            }
        }
        Ok(())
    }

    /// `lstat` of `path`; `None` when nothing is there (not even a
    /// dangling symlink), in one round trip.
    fn lstat(&self, path: &str) -> Result<Option<guestfs::StatNS>, ImageError> {
        let (dir, name) = match path.rfind('/') {
            Some(i) if i + 1 < path.len() => {
                (if i == 0 { "/" } else { &path[..i] }, &path[i + 1..])
            }
            // "/" itself (or a path ending in "/"): lstatns follows nothing there.
            _ => return self.call("lstatns", |g| g.lstatns(path)).map(Some),
        };
        match self.call("lstatnslist", |g| g.lstatnslist(dir, &[name])) {
            Ok(stats) => Ok(stats.into_iter().next().filter(|s| s.st_ino != -1)),
            // The directory is missing or not a directory: nothing is at `path`.
            Err(_)
                if !self.call("is_dir", |g| {
                    g.is_dir(
                        dir,
                        guestfs::IsDirOptArgs {
                            followsymlinks: Some(true),
                        },
                    )
                })? =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `stat` of `path`, following symlinks; `None` when nothing is there
    /// (a dangling symlink included).
    fn stat(&self, path: &str) -> Result<Option<guestfs::StatNS>, ImageError> {
        if !self.call("exists", |g| g.exists(path))? {
            return Ok(None);
        }
        self.call("statns", |g| g.statns(path)).map(Some)
    }

    /// The relabel itself (see [`ImageRemote::selinux_relabel`]).
    fn selinux_relabel(&self) -> Result<RelabelOutcome, ImageError> {
        let has_load_policy = self.is_file(selinux::LOAD_POLICY)?;
        let config = if self.is_file(selinux::CONFIG)? {
            // An oversized config is still an SELinux guest's: read as empty,
            // it names the default policy.
            let bytes = self.download(selinux::CONFIG, Some(SELINUX_CONFIG_LIMIT))?;
            Some(String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned())
        } else {
            None
        };
        let (policy, spec_file) = match selinux::Plan::for_guest(has_load_policy, config.as_deref())
        {
            selinux::Plan::NoPolicy => return Ok(RelabelOutcome::NoPolicy),
            selinux::Plan::Relabel { policy, spec_file } => (policy, spec_file),
        };
        match self.relabel_with(&spec_file) {
            Ok(()) => {
                // A relabel the guest scheduled itself is done now.
                self.call("rm_f", |g| g.rm_f(selinux::AUTORELABEL))?;
                Ok(RelabelOutcome::Relabelled { policy })
            }
            Err(reason) => {
                self.call("touch", |g| g.touch(selinux::AUTORELABEL))?;
                Ok(RelabelOutcome::AtFirstBoot { policy, reason })
            }
        }
    }

    /// setfiles (forced) over the whole guest with `spec_file`; `Err` says
    /// why it could not run, for the first-boot fallback.
    fn relabel_with(&self, spec_file: &str) -> Result<(), String> {
        if !self.is_file(spec_file).map_err(|e| e.to_string())? {
            return Err(format!("the guest has no {spec_file}"));
        }
        let available = self
            .call("feature_available", |g| {
                g.feature_available(&["selinuxrelabel"])
            })
            .map_err(|e| e.to_string())?;
        if !available {
            return Err("this libguestfs appliance has no setfiles".into());
        }
        self.call("selinux_relabel", |g| {
            g.selinux_relabel(
                spec_file,
                "/",
                guestfs::SelinuxRelabelOptArgs { force: Some(true) },
            )
        })
        .map_err(|e| match e {
            ImageError::Guestfs { message, .. } => message,
            other => other.to_string(),
        })
    }

    fn is_file(&self, path: &str) -> Result<bool, ImageError> {
        self.call("is_file", |g| {
            g.is_file(
                path,
                guestfs::IsFileOptArgs {
                    followsymlinks: Some(true),
                },
            )
        })
    }

    /// Unmounts and stops the appliance, which flushes every write into the
    /// overlay. Errors here mean the overlay may be incomplete, so the
    /// commit stops before touching the image.
    fn shut_down(self) -> Result<(), ImageError> {
        self.close_channel()?;
        self.call("umount_all", |g| g.umount_all())?;
        self.call("shutdown", |g| g.shutdown())
    }
}

/// The kind of file guestfs's `st_mode` names.
fn kind_of(st_mode: i64) -> FileKind {
    FileKind::from_mode(u32::try_from(st_mode & 0o170000).unwrap_or(0))
}

/// `st_mode`'s kind of file for messages ("a FIFO").
fn kind_name(st_mode: i64) -> &'static str {
    match st_mode & 0o170000 {
        0o100000 => "a regular file",
        0o040000 => "a directory",
        0o120000 => "a symlink",
        0o020000 => "a character device",
        0o060000 => "a block device",
        0o010000 => "a FIFO",
        0o140000 => "a socket",
        _ => "an unknown kind of file",
    }
}

fn require_absolute(image: &Path, path: &str) -> Result<(), ImageError> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(ImageError::Guestfs {
            path: image.to_path_buf(),
            operation: "path".into(),
            message: format!("guest paths must be absolute, got {path:?}"),
        })
    }
}

fn guest_parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "",
        Some(i) => &path[..i],
    }
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Picks the root to use from what inspection found.
fn pick_root(
    image: &Path,
    mut roots: Vec<String>,
    wanted: Option<&str>,
) -> Result<String, ImageError> {
    roots.sort();
    match (wanted, roots.len()) {
        (_, 0) => Err(ImageError::NoOperatingSystem {
            path: image.to_path_buf(),
        }),
        (Some(wanted), _) if roots.iter().any(|r| r == wanted) => Ok(wanted.to_string()),
        (Some(wanted), _) => Err(ImageError::RootNotFound {
            path: image.to_path_buf(),
            wanted: wanted.to_string(),
            roots,
        }),
        (None, 1) => Ok(roots.remove(0)),
        (None, _) => Err(ImageError::SeveralOperatingSystems {
            path: image.to_path_buf(),
            roots,
        }),
    }
}

/// Mountpoints sorted so parents mount before children ("/" before "/boot"
/// before "/boot/efi").
fn mount_order(mountpoints: HashMap<String, String>) -> Vec<(String, String)> {
    let mut ordered: Vec<(String, String)> = mountpoints.into_iter().collect();
    ordered.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    ordered
}

fn summarize_script(script: &str) -> String {
    let line = first_line(script);
    if line.chars().count() > 60 {
        format!("{}…", line.chars().take(60).collect::<String>())
    } else {
        line.to_string()
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// The message of a libguestfs error. The `guestfs` crate (0.1) keeps the
/// fields of its error private and implements only `Debug`, so the message
/// is read back out of the `Debug` text.
fn describe(error: &guestfs::Error) -> String {
    let debug = format!("{error:?}");
    message_from_debug(&debug).unwrap_or(debug)
}

fn message_from_debug(debug: &str) -> Option<String> {
    let start = debug.find("message: \"")? + "message: \"".len();
    let mut message = String::new();
    let mut chars = debug[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(message.trim().to_string()),
            '\\' => match chars.next()? {
                'n' => message.push('\n'),
                't' => message.push('\t'),
                'r' => message.push('\r'),
                '0' => message.push('\0'),
                'u' => {
                    let hex: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                    message.push(
                        u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .unwrap_or('?'),
                    );
                }
                other => message.push(other),
            },
            c => message.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guestfs_messages_are_read_from_debug_text() {
        let debug = r#"API(APIError { operation: "sh", message: "sh: line \"1\"\nnext \u{1b}x", errno: 0 })"#;
        assert_eq!(
            message_from_debug(debug).unwrap(),
            "sh: line \"1\"\nnext \u{1b}x"
        );
        assert_eq!(message_from_debug("Create"), None);
    }

    #[test]
    fn parents_mount_before_children() {
        let mountpoints = HashMap::from([
            ("/boot/efi".to_string(), "/dev/sda1".to_string()),
            ("/".to_string(), "/dev/sda3".to_string()),
            ("/boot".to_string(), "/dev/sda2".to_string()),
            ("/var".to_string(), "/dev/sda4".to_string()),
        ]);
        let order: Vec<String> = mount_order(mountpoints)
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        assert_eq!(order, ["/", "/var", "/boot", "/boot/efi"]);
    }

    #[test]
    fn root_choice_needs_exactly_one_or_a_name() {
        let image = Path::new("x.qcow2");
        let two = vec!["/dev/sdb1".to_string(), "/dev/sda1".to_string()];
        assert_eq!(
            pick_root(image, vec!["/dev/sda1".into()], None).unwrap(),
            "/dev/sda1"
        );
        assert_eq!(
            pick_root(image, two.clone(), Some("/dev/sdb1")).unwrap(),
            "/dev/sdb1"
        );
        let several = pick_root(image, two.clone(), None).unwrap_err().to_string();
        assert_eq!(several, "x.qcow2 holds several operating systems (/dev/sda1, /dev/sdb1); choose one as the root file system");
        assert!(pick_root(image, two, Some("/dev/sdc1"))
            .unwrap_err()
            .to_string()
            .contains("/dev/sda1, /dev/sdb1"));
        assert_eq!(
            pick_root(image, vec![], None).unwrap_err().to_string(),
            "no operating system found in x.qcow2"
        );
    }

    #[test]
    fn guest_parent_of_top_level_files_is_root() {
        assert_eq!(guest_parent("/etc/motd"), "/etc");
        assert_eq!(guest_parent("/motd"), "");
    }
}

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
//! either renames its result into place or leaves the original untouched.
//! An appliance that dies without a signal (its qemu killed or crashed, its
//! daemon gone) makes the session's calls fail with
//! [`RemoteError::Unreachable`], so the interpreter stops the run at once
//! and reports the target unreachable rather than failing each validator
//! left against a dead guest. The module also owns the choice between
//! hardware acceleration and software emulation, and the lock that keeps two reconciling sessions off one
//! image. This file holds the session itself (open, commit, discard, the
//! [`Remote`] calls and what their errors mean); the rest lives beside it:
//! the image file's checks, lock, overlay and write-back in `disk`, temporary
//! files and signal clean-up in `cleanup`, the appliance's boot in `launch`,
//! the calls on the running guest in `guest`, finding the guest's OS in
//! `inspect`, how a command reaches the guest in `command`, what
//! `--selinux-relabel` decides in `selinux`, and the workarounds for the
//! `guestfs` crate in `guestfs_quirks`.

mod batch;
mod cleanup;
mod command;
mod disk;
mod guest;
mod guestfs_quirks;
mod inspect;
mod launch;
mod layout;
mod selinux;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::interrupt;
use crate::remote::{
    CommandOutput, FileMetadata, FileRead, FileWrite, Remote, RemoteCommand, RemoteError,
};
use crate::text::script_summary;
pub use batch::{BatchMember, ImageBatch};
use cleanup::{check_interrupt, interrupted_or, prepare_for_interrupts, TempPath};
use command::timed_out;
pub use command::CommandChannel;
use disk::{
    checked_image_path, create_overlay, detect_layout, output_path, write_result, ImageLock,
};
use guest::{ActiveChannel, Guest};
use guestfs_quirks::silence_error_printing;
pub use inspect::Inspector;
use launch::{launch_appliance, Drive};
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
    /// The appliance stopped under a call (its qemu died or was killed,
    /// its daemon went away): the session cannot go on.
    #[error("{}: the libguestfs appliance stopped during {operation}: {message}", .path.display())]
    ApplianceGone {
        path: PathBuf,
        operation: String,
        message: String,
    },
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
    /// Several images of one batch hold LVM volume groups of one name,
    /// which one appliance cannot tell apart; nothing was run.
    #[error("LVM volume group `{group}` appears on more than one of the images {}; one appliance cannot tell same-named volume groups apart, so pack these images in separate runs", .images.iter().map(|i| i.display().to_string()).collect::<Vec<_>>().join(", "))]
    SharedVolumeGroup { group: String, images: Vec<PathBuf> },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// `--selinux-relabel` changes the guest, which a test-only session
    /// never does.
    #[error("{}: an SELinux relabel changes the image; it does not go with a test-only run", .path.display())]
    RelabelInTestOnly { path: PathBuf },
    /// The image cannot share an appliance with the others in its batch.
    #[error("{}: cannot be packed in one appliance with the other images: {reason}; pack it in a run of its own", .path.display())]
    NotSeparable { path: PathBuf, reason: String },
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

impl PendingWrites {
    /// Writes the overlay back atomically (see [`write_result`]); the
    /// appliance must have shut down. Dropping `self` afterwards deletes
    /// the overlay and releases the lock.
    fn write_back(&self, image: &Path, layout: &ImageLayout) -> Result<PathBuf, ImageError> {
        check_interrupt(image)?;
        let target = self.output.clone().unwrap_or_else(|| image.to_path_buf());
        write_result(image, &self.overlay.path, layout, &target)?;
        Ok(target)
    }
}

/// An image checked and ready to be added to an appliance: its layout, and
/// for a reconciling session its lock and overlay.
struct PreparedImage {
    layout: ImageLayout,
    writes: Option<PendingWrites>,
    drive: Drive,
}

impl PreparedImage {
    /// Locks `image` (reconciling only), reads its layout and creates its
    /// overlay. The lock comes before anything else so that a refused
    /// session touches nothing.
    fn prepare(
        image: &Path,
        test_only: bool,
        output: Option<&Path>,
    ) -> Result<PreparedImage, ImageError> {
        let lock = if test_only {
            None
        } else {
            Some(ImageLock::acquire(image)?)
        };
        let layout = detect_layout(image)?;
        let format = layout.format.clone();
        check_interrupt(image)?;
        let writes = match lock {
            None => None,
            Some(lock) => Some(PendingWrites {
                overlay: create_overlay(image, &format, output)?,
                output: output_path(image, output)?,
                _lock: lock,
            }),
        };
        let drive = match &writes {
            None => Drive {
                path: image.to_path_buf(),
                format,
                readonly: true,
            },
            Some(w) => Drive {
                path: w.overlay.path.clone(),
                format: "qcow2".into(),
                readonly: false,
            },
        };
        Ok(PreparedImage {
            layout,
            writes,
            drive,
        })
    }
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
        let prepared =
            PreparedImage::prepare(&image, options.test_only, options.output.as_deref())?;
        interrupt::test_pause("launch");
        check_interrupt(&image)?;
        let (handle, token) = launch_appliance(
            &image,
            std::slice::from_ref(&prepared.drive),
            options,
            progress,
        )?;
        let guest = Guest::new(handle, token, image.clone(), options);
        check_interrupt(&image)?;
        let found = guest.inspect(
            options.root_filesystem.as_deref(),
            options.full_inspection,
            None,
        )?;
        guest.mount_filesystems(found.mountpoints, progress)?;
        check_interrupt(&image)?;
        Ok(ImageRemote {
            guest: Some(guest),
            image,
            layout: prepared.layout,
            distro: found.distro,
            inspector: found.inspector,
            writes: prepared.writes,
        })
    }

    /// Which inspection found the guest's OS.
    pub fn inspector(&self) -> Inspector {
        self.inspector
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
        let target = writes.write_back(&self.image, &self.layout)?;
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

    /// The running guest, handed back to an [`ImageBatch`] once this
    /// image's run is over; `None` when the session had already closed it.
    fn take_guest(&mut self) -> Option<Guest> {
        self.guest.take()
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
            // Nothing more can reach this guest: the interpreter stops the
            // run at once and reports the target unreachable.
            CallError::Image(ImageError::ApplianceGone {
                operation, message, ..
            }) => RemoteError::Unreachable {
                target,
                reason: format!(
                    "the libguestfs appliance stopped during {operation} ({})",
                    message.trim_end_matches('.')
                ),
            },
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
                    command: script_summary(&command.script),
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

//! The running guest: [`Guest`] holds the libguestfs handle of a launched
//! appliance with the guest's file systems mounted, and turns the
//! [`Remote`](crate::remote::Remote) calls into libguestfs calls: mounting
//! in fstab order, commands through the chosen channel (see `command`), file
//! reads, writes and metadata with their kind, size and symlink checks, the
//! SELinux relabel, and the orderly shut-down before a commit. It is
//! separate from the session (`mod.rs`), which decides when a guest exists
//! and what its errors mean to the interpreter; this file only talks to it.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::cleanup::{unique_suffix, LiveToken};
use super::command::{
    appliance_script, capture_script, parse_reply, setup_script, ApplianceSide, ChrootSetup, Reply,
};
use super::guestfs_quirks::describe;
use super::{selinux, CallError, CommandChannel, ImageError, ImageOptions, RelabelOutcome};
use crate::remote::{
    CommandOutput, FileKind, FileMetadata, FileRead, FileWrite, RemoteCommand, COMMAND_OUTPUT,
};
use crate::text::first_line;

/// `/etc/selinux/config` is a few lines; a larger one is not read.
const SELINUX_CONFIG_LIMIT: usize = 64 * 1024;

/// The libguestfs handle of a launched appliance with the guest mounted.
pub(super) struct Guest {
    /// Dropped first: closing the handle stops the appliance, and only then
    /// does the token leave the list of live appliances.
    pub(super) handle: guestfs::Handle,
    _token: LiveToken,
    pub(super) image: PathBuf,
    network: bool,
    wanted_channel: CommandChannel,
    /// Chosen (and set up) when the first command runs.
    pub(super) channel: RefCell<Option<ActiveChannel>>,
}

/// The channel a session's commands use once the first one has run.
pub(super) enum ActiveChannel {
    Chroot(ChrootSetup),
    DaemonSh,
}

// SAFETY: a libguestfs handle may be used from any thread as long as calls
// on it do not overlap (guestfs(3), "MULTIPLE HANDLES AND MULTIPLE
// THREADS"); `Guest` is only reached through `&mut ImageRemote` or by value,
// so calls never overlap.
unsafe impl Send for Guest {}

impl Guest {
    /// The guest of a freshly launched appliance; its command channel is
    /// chosen when the first command runs.
    pub(super) fn new(
        handle: guestfs::Handle,
        token: LiveToken,
        image: PathBuf,
        options: &ImageOptions,
    ) -> Guest {
        Guest {
            handle,
            _token: token,
            image,
            network: options.network,
            wanted_channel: options.command_channel,
            channel: RefCell::new(None),
        }
    }

    pub(super) fn call<T>(
        &self,
        operation: &str,
        f: impl FnOnce(&guestfs::Handle) -> Result<T, guestfs::Error>,
    ) -> Result<T, ImageError> {
        f(&self.handle).map_err(|e| {
            let path = self.image.clone();
            let operation = operation.to_string();
            let message = describe(&e);
            if self.appliance_gone() {
                let message = first_line(&message).to_string();
                ImageError::ApplianceGone {
                    path,
                    operation,
                    message,
                }
            } else {
                ImageError::Guestfs {
                    path,
                    operation,
                    message,
                }
            }
        })
    }

    /// Whether the appliance has stopped: libguestfs leaves the ready state
    /// when it finds its qemu or daemon gone (a failed call on a live
    /// appliance leaves the handle ready), and only a relaunch, which a
    /// session never does, would bring it back.
    pub(super) fn appliance_gone(&self) -> bool {
        !self.handle.is_ready().unwrap_or(false)
    }

    /// Mounts the guest's file systems as its fstab says, parents before
    /// children. Only the root is required: fstab entries for disks the
    /// image does not contain are reported and skipped, as virt-customize
    /// does.
    pub(super) fn mount_filesystems(
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
    pub(super) fn run(&self, command: &RemoteCommand) -> Result<CommandOutput, CallError> {
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
    pub(super) fn close_channel(&self) -> Result<(), ImageError> {
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
    pub(super) fn download(
        &self,
        path: &str,
        max: Option<usize>,
    ) -> Result<Option<Vec<u8>>, ImageError> {
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
    pub(super) fn read_file(&self, read: &FileRead<'_>) -> Result<Option<Vec<u8>>, CallError> {
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
    pub(super) fn write_file(&self, write: &FileWrite<'_>) -> Result<(), CallError> {
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
    pub(super) fn metadata(&self, read: &FileRead<'_>) -> Result<Option<FileMetadata>, CallError> {
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
    pub(super) fn selinux_relabel(&self) -> Result<RelabelOutcome, ImageError> {
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
    pub(super) fn shut_down(self) -> Result<(), ImageError> {
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

/// Mountpoints sorted so parents mount before children ("/" before "/boot"
/// before "/boot/efi").
pub(super) fn mount_order(mountpoints: HashMap<String, String>) -> Vec<(String, String)> {
    let mut ordered: Vec<(String, String)> = mountpoints.into_iter().collect();
    ordered.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn guest_parent_of_top_level_files_is_root() {
        assert_eq!(guest_parent("/etc/motd"), "/etc");
        assert_eq!(guest_parent("/motd"), "");
    }
}

//! Many images, one appliance boot: an [`ImageBatch`] prepares every image
//! as a one-image session would (lock, layout, overlay; read-only for
//! test-only), adds all their drives before one launch (they appear as
//! /dev/sda, /dev/sdb, … in the order given), and then lends the appliance
//! to one image at a time. [`ImageBatch::open_image`] finds that image's OS
//! on its own drive only (see `inspect`), mounts its file systems at the
//! guest's root and returns an [`ImageRemote`] that the interpreter runs the
//! manifest through; [`ImageBatch::close_image`] takes the appliance back,
//! relabels if asked, closes the image's command channel and unmounts
//! everything, so the next image starts from an empty root.
//! [`ImageBatch::commit`] shuts the appliance down once and only then writes
//! back each passing image's overlay, each with the one-image commit's
//! atomic write-and-rename; failing images' overlays are deleted. If the
//! appliance dies before that orderly shut-down, no image is written, not
//! even those whose run had passed: their overlays were written by a qemu
//! that did not stop cleanly. Images whose LVM volume groups share a name
//! cannot share an appliance, and the batch refuses them before any image
//! runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::cleanup::{check_interrupt, interrupted_or, prepare_for_interrupts};
use super::disk::checked_image_path;
use super::guest::Guest;
use super::launch::launch_appliance;
use super::layout::ImageLayout;
use super::{
    CommitSummary, ImageError, ImageOptions, ImageRemote, PendingWrites, PreparedImage,
    RelabelOutcome,
};
use crate::interrupt;

/// Several images served by one appliance, one image at a time.
pub struct ImageBatch {
    /// `None` while an image has it, or once it stopped.
    guest: Option<Guest>,
    members: Vec<Member>,
    options: ImageOptions,
}

/// One image of the batch.
struct Member {
    image: PathBuf,
    layout: ImageLayout,
    /// `None` for test-only.
    writes: Option<PendingWrites>,
    /// The appliance's name for its drive (`/dev/sdb`).
    drive: String,
    /// Its run passed and it should be written back.
    keep: bool,
}

/// What became of one image at the batch's commit.
#[derive(Debug)]
pub struct BatchMember {
    pub image: PathBuf,
    /// `Ok(None)`: nothing was written (test-only, or its run did not pass).
    pub outcome: Result<Option<CommitSummary>, ImageError>,
}

impl ImageBatch {
    /// Checks, locks (reconciling) and prepares every image, then boots one
    /// appliance with all their drives. `options.image` and
    /// `options.output` are ignored: a batch writes each image in place.
    /// Any image that cannot be prepared refuses the whole batch before the
    /// launch, with nothing changed.
    pub fn open(
        images: &[PathBuf],
        options: &ImageOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ImageBatch, ImageError> {
        prepare_for_interrupts()?;
        let checked = images
            .iter()
            .map(|image| checked_image_path(image))
            .collect::<Result<Vec<_>, _>>()?;
        let first = checked.first().cloned().ok_or_else(|| ImageError::Io {
            context: "an image batch".into(),
            source: std::io::Error::other("no images given"),
        })?;
        Self::open_checked(checked, options, progress).map_err(|e| interrupted_or(&first, e))
    }

    fn open_checked(
        images: Vec<PathBuf>,
        options: &ImageOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ImageBatch, ImageError> {
        let mut members = Vec::with_capacity(images.len());
        let mut drives = Vec::with_capacity(images.len());
        for image in images {
            let prepared = PreparedImage::prepare(&image, options.test_only, None)?;
            drives.push(prepared.drive);
            members.push(Member {
                image,
                layout: prepared.layout,
                writes: prepared.writes,
                drive: String::new(),
                keep: false,
            });
        }
        let first = members[0].image.clone();
        interrupt::test_pause("launch");
        check_interrupt(&first)?;
        let (handle, token) = launch_appliance(&first, &drives, options, progress)?;
        let guest = Guest::new(handle, token, first.clone(), options);
        check_interrupt(&first)?;
        let devices = guest.call("list_devices", |g| g.list_devices())?;
        if devices.len() != members.len() {
            return Err(ImageError::Guestfs {
                path: first,
                operation: "list_devices".into(),
                message: format!(
                    "the appliance shows {} drives for {} images",
                    devices.len(),
                    members.len()
                ),
            });
        }
        for (member, device) in members.iter_mut().zip(devices) {
            member.drive = device;
        }
        refuse_shared_volume_groups(&guest, &members)?;
        Ok(ImageBatch {
            guest: Some(guest),
            members,
            options: options.clone(),
        })
    }

    /// The images, in the order given.
    pub fn images(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.image.clone()).collect()
    }

    /// Whether the appliance is still there to serve another image.
    pub fn appliance_alive(&self) -> bool {
        self.guest.as_ref().is_some_and(|g| !g.appliance_gone())
    }

    /// Finds image `index`'s OS on its own drive, mounts it at the guest's
    /// root and lends it the appliance. Give the session back with
    /// [`close_image`](Self::close_image) before opening the next one.
    pub fn open_image(
        &mut self,
        index: usize,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ImageRemote, ImageError> {
        let member = &self.members[index];
        let image = member.image.clone();
        let Some(guest) = self.guest.as_mut() else {
            return Err(appliance_stopped(&image, "opening the image"));
        };
        guest.image = image.clone();
        check_interrupt(&image)?;
        let wanted = self
            .options
            .root_filesystem
            .as_deref()
            .map(|root| on_drive(root, &member.drive));
        let mounted = guest
            .inspect(
                wanted.as_deref(),
                self.options.full_inspection,
                Some(&member.drive),
            )
            .and_then(|found| {
                guest.mount_filesystems(found.mountpoints, progress)?;
                Ok((found.distro, found.inspector))
            });
        let (distro, inspector) = match mounted {
            Ok(found) => found,
            Err(error) => {
                let _ = guest.handle.umount_all();
                return Err(interrupted_or(&image, error));
            }
        };
        let guest = self.guest.take();
        Ok(ImageRemote {
            guest,
            image,
            layout: member.layout.clone(),
            distro,
            inspector,
            writes: None,
        })
    }

    /// Takes the appliance back from image `index`'s session. With `keep`
    /// (its run passed) the image will be written at the commit, after an
    /// SELinux relabel when `relabel` asks for one; then its command channel
    /// is closed and its file systems unmounted. An error here drops the
    /// image from the commit.
    pub fn close_image(
        &mut self,
        index: usize,
        mut session: ImageRemote,
        keep: bool,
        relabel: bool,
    ) -> Result<Option<RelabelOutcome>, ImageError> {
        let image = self.members[index].image.clone();
        self.members[index].keep = false;
        let Some(guest) = session.take_guest() else {
            return Err(appliance_stopped(&image, "closing the image"));
        };
        let closed = release(&guest, keep && relabel && !self.options.test_only);
        if !guest.appliance_gone() {
            self.guest = Some(guest);
        }
        let relabelled = closed.map_err(|error| interrupted_or(&image, error))?;
        self.members[index].keep = keep;
        Ok(relabelled)
    }

    /// Shuts the appliance down once, then writes back every image whose
    /// run passed, in order; the others' overlays are deleted. `Err` when
    /// the appliance could not shut down cleanly (it died, or a signal
    /// stopped the batch): then no image was written.
    pub fn commit(mut self) -> Result<Vec<BatchMember>, ImageError> {
        let first = self.members[0].image.clone();
        let reconciling = self.members.iter().any(|m| m.writes.is_some());
        match self.guest.take() {
            Some(guest) if reconciling => {
                check_interrupt(&first).map_err(|e| interrupted_or(&first, e))?;
                guest
                    .shut_down()
                    .map_err(|error| interrupted_or(&first, error))?;
            }
            Some(guest) => drop(guest),
            None if reconciling => {
                return Err(appliance_stopped(&first, "the batch's shut-down"));
            }
            None => {}
        }
        Ok(self.members.drain(..).map(write_back).collect())
    }

    /// Stops the appliance and deletes every overlay; no image changes.
    pub fn discard(self) {
        drop(self);
    }
}

impl Drop for ImageBatch {
    fn drop(&mut self) {
        // The appliance stops before the overlays it writes go.
        self.guest.take();
        self.members.clear();
    }
}

/// Ends one image's use of the appliance: the relabel when asked, then its
/// command channel and its mounts.
fn release(guest: &Guest, relabel: bool) -> Result<Option<RelabelOutcome>, ImageError> {
    guest.close_channel()?;
    let relabelled = if relabel {
        Some(guest.selinux_relabel()?)
    } else {
        None
    };
    guest.call("umount_all", |g| g.umount_all())?;
    guest.call("sync", |g| g.sync())?;
    Ok(relabelled)
}

/// One image's commit after the appliance's shut-down.
fn write_back(member: Member) -> BatchMember {
    let started = Instant::now();
    let outcome = match (&member.writes, member.keep) {
        (Some(writes), true) => writes
            .write_back(&member.image, &member.layout)
            .map(|target| {
                Some(CommitSummary {
                    written: Some(target),
                    format: member.layout.format.clone(),
                    elapsed: started.elapsed(),
                })
            })
            .map_err(|error| interrupted_or(&member.image, error)),
        _ => Ok(None),
    };
    // `member.writes` drops here: the overlay goes and the lock is released.
    BatchMember {
        image: member.image,
        outcome,
    }
}

/// `--root-filesystem` names a device as a one-image session sees it
/// (/dev/sda2); in a batch the image's drive may be /dev/sdc.
fn on_drive(root: &str, drive: &str) -> String {
    match root.strip_prefix("/dev/sda") {
        Some(partition) if partition.chars().all(|c| c.is_ascii_digit()) => {
            format!("{drive}{partition}")
        }
        _ => root.to_string(),
    }
}

fn appliance_stopped(image: &Path, operation: &str) -> ImageError {
    ImageError::ApplianceGone {
        path: image.to_path_buf(),
        operation: operation.into(),
        message: "the appliance stopped earlier in the batch".into(),
    }
}

/// LVM names volume groups globally: two images with a `vg0` each would
/// show one appliance two groups of one name, and neither could be mounted
/// reliably.
fn refuse_shared_volume_groups(guest: &Guest, members: &[Member]) -> Result<(), ImageError> {
    if members.len() < 2 {
        return Ok(());
    }
    let groups = guest.call("vgs", |g| g.vgs()).unwrap_or_default();
    let mut seen = BTreeMap::new();
    for group in groups {
        *seen.entry(group).or_insert(0) += 1;
    }
    match seen.into_iter().find(|(_, count)| *count > 1) {
        None => Ok(()),
        Some((group, _)) => Err(ImageError::SharedVolumeGroup {
            group,
            images: members.iter().map(|m| m.image.clone()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::on_drive;

    #[test]
    fn a_root_file_system_is_named_as_in_a_one_image_session() {
        assert_eq!(on_drive("/dev/sda2", "/dev/sdc"), "/dev/sdc2");
        assert_eq!(on_drive("/dev/sda", "/dev/sdb"), "/dev/sdb");
        assert_eq!(on_drive("/dev/vg0/root", "/dev/sdb"), "/dev/vg0/root");
    }
}

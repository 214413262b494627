//! Finding the guest's operating system: its root file system, its distro
//! and what its fstab mounts where. libguestfs's `inspect_os` answers for
//! any guest (LVM, RAID, several systems, Windows, distros without
//! os-release) but probes every file system in depth — about 7 s of a
//! 25 s session under software emulation. [`Guest::quick_inspection`]
//! answers the common case itself in a few round trips: plain partitions
//! (or a whole-disk file system), exactly one ext2/3/4 or xfs file system
//! holding `/etc/os-release` with an ID whose name libguestfs reports
//! unchanged, and an fstab whose other entries name file systems by UUID or
//! LABEL. Whatever falls outside that goes to libguestfs's inspection,
//! so both paths give the same answer where the quick one answers at all.
//!
//! In an image batch (see `batch`) the appliance holds several images'
//! drives, so both inspections look only at one drive: the quick path
//! probes that drive's partitions and resolves fstab UUIDs and labels among
//! them (copies of one image share every UUID), and libguestfs's roots and
//! mount points must lie on it (an LVM logical volume counts as on the
//! drives holding its volume group's physical volumes).

use std::collections::HashMap;

use std::path::Path;

use super::{Guest, ImageError};
use crate::remote::distro::OsRelease;

/// Which inspection found the guest's OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inspector {
    /// kiln's own, for the common layouts the module header lists.
    Quick,
    /// libguestfs's `inspect_os`.
    Libguestfs,
}

/// What the session needs to know about the guest.
#[derive(Debug, PartialEq)]
pub(super) struct Inspection {
    /// The root file system's device (`/dev/sda1`).
    pub root: String,
    /// libguestfs's name for the distro (`debian`, `centos`, …).
    pub distro: String,
    /// Mount point → device, from the guest's fstab.
    pub mountpoints: HashMap<String, String>,
    pub inspector: Inspector,
}

/// File systems a root can be on, for the quick path.
const ROOT_TYPES: &[&str] = &["ext2", "ext3", "ext4", "xfs"];

/// Partition contents the quick path may pass over: no file system, swap,
/// an EFI system partition.
const IGNORABLE_TYPES: &[&str] = &["", "swap", "vfat"];

/// os-release IDs for which libguestfs reports the ID itself as the distro
/// (its `distro_of_os_release_id`, and the release files it falls back to
/// for these); other IDs go through libguestfs's inspection.
const SAME_NAME_IDS: &[&str] = &["debian", "ubuntu", "centos", "fedora", "rhel", "rocky"];

/// File system types that fstab entries kiln mounts may have; entries of
/// other types (swap, proc, tmpfs, nfs, bind mounts, …) are not block
/// file systems of the image and are left out, as libguestfs leaves them.
const MOUNTED_TYPES: &[&str] = &["ext2", "ext3", "ext4", "xfs", "vfat", "btrfs"];

impl Guest {
    /// The guest's OS through the quick path when it applies (and `full`
    /// is not asked for), otherwise through libguestfs's inspection.
    /// `drive` (`/dev/sdb`) limits the search to one of several drives;
    /// `None` looks at all of them (a session of one image).
    pub(super) fn inspect(
        &self,
        wanted_root: Option<&str>,
        full: bool,
        drive: Option<&str>,
    ) -> Result<Inspection, ImageError> {
        let quick = if full {
            None
        } else {
            self.quick_inspection(wanted_root, drive)
        };
        match quick {
            Some(found) => Ok(found),
            None => self.full_inspection(wanted_root, drive),
        }
    }

    fn full_inspection(
        &self,
        wanted_root: Option<&str>,
        drive: Option<&str>,
    ) -> Result<Inspection, ImageError> {
        let mut roots = self.call("inspect_os", |g| g.inspect_os())?;
        if let Some(drive) = drive {
            roots.retain(|root| self.is_on_drive(root, drive));
        }
        let root = pick_root(&self.image, roots, wanted_root)?;
        let mountpoints = self.call("inspect_get_mountpoints", |g| {
            g.inspect_get_mountpoints(&root)
        })?;
        if let Some(drive) = drive {
            if let Some(device) = mountpoints.values().find(|d| !self.is_on_drive(d, drive)) {
                return Err(ImageError::NotSeparable {
                    path: self.image.clone(),
                    reason: format!(
                        "its fstab names {device}, which is not on its own drive {drive} \
                         (another image in the batch has a file system with the same UUID or label)"
                    ),
                });
            }
        }
        let distro = self.call("inspect_get_distro", |g| g.inspect_get_distro(&root))?;
        Ok(Inspection {
            root,
            distro,
            mountpoints,
            inspector: Inspector::Libguestfs,
        })
    }

    /// The quick path; `None` whenever the guest is outside it (see the
    /// module header) or any step fails, leaving nothing mounted.
    fn quick_inspection(
        &self,
        wanted_root: Option<&str>,
        drive: Option<&str>,
    ) -> Option<Inspection> {
        let found = self.probe_for_root(wanted_root, drive);
        let _ = self.handle.umount_all();
        found
    }

    /// The partitions to probe (the drives themselves when there are none),
    /// only `drive`'s when given.
    fn candidate_devices(&self, drive: Option<&str>) -> Option<Vec<String>> {
        let mut partitions = self.handle.list_partitions().ok()?;
        if let Some(drive) = drive {
            partitions.retain(|p| self.handle.part_to_dev(p).ok().as_deref() == Some(drive));
            if partitions.is_empty() {
                return Some(vec![drive.to_string()]);
            }
        }
        if partitions.is_empty() {
            return self.handle.list_devices().ok();
        }
        Some(partitions)
    }

    /// Whether `device` (a partition, a whole drive or an LVM logical
    /// volume) lies on `drive`.
    pub(super) fn is_on_drive(&self, device: &str, drive: &str) -> bool {
        if device == drive {
            return true;
        }
        if let Ok(parent) = self.handle.part_to_dev(device) {
            return parent == drive;
        }
        self.logical_volume_drives(device)
            .is_some_and(|drives| drives.iter().all(|d| d == drive))
    }

    /// The drives holding an LVM logical volume's physical volumes.
    fn logical_volume_drives(&self, device: &str) -> Option<Vec<String>> {
        let canonical = self.handle.lvm_canonical_lv_name(device).ok()?;
        let group = canonical.strip_prefix("/dev/")?.split('/').next()?;
        let members = self.handle.vgpvuuids(group).ok()?;
        let mut drives = Vec::new();
        for pv in self.handle.pvs().ok()? {
            if members.contains(&self.handle.pvuuid(&pv).ok()?) {
                drives.push(self.handle.part_to_dev(&pv).unwrap_or(pv));
            }
        }
        (!drives.is_empty()).then_some(drives)
    }

    fn probe_for_root(&self, wanted_root: Option<&str>, drive: Option<&str>) -> Option<Inspection> {
        let devices = self.candidate_devices(drive)?;
        let mut candidates = Vec::new();
        for device in devices {
            let kind = self.handle.vfs_type(&device).unwrap_or_default();
            if ROOT_TYPES.contains(&kind.as_str()) {
                candidates.push(device);
            } else if !IGNORABLE_TYPES.contains(&kind.as_str()) {
                // LVM, RAID, encryption, btrfs subvolumes, other systems.
                return None;
            }
        }
        if let Some(wanted) = wanted_root {
            candidates.retain(|device| device == wanted);
        }
        let mut systems = Vec::new();
        for device in candidates {
            self.handle.mount_ro(&device, "/").ok()?;
            let system = self.read_system_files();
            self.handle.umount_all().ok()?;
            if let Some((os_release, fstab)) = system {
                systems.push((device, os_release, fstab));
            }
        }
        let [(root, os_release, fstab)] = <[_; 1]>::try_from(systems).ok()?;
        let distro = same_name_distro(&os_release)?;
        let mountpoints = self.mountpoints(&root, &fstab, drive)?;
        Some(Inspection {
            root,
            distro,
            mountpoints,
            inspector: Inspector::Quick,
        })
    }

    /// os-release and fstab of the file system mounted at /, if it holds a
    /// Linux system.
    fn read_system_files(&self) -> Option<(String, String)> {
        let os_release = ["/etc/os-release", "/usr/lib/os-release"]
            .iter()
            .find_map(|path| self.small_text_file(path))?;
        let fstab = self.small_text_file("/etc/fstab").unwrap_or_default();
        Some((os_release, fstab))
    }

    fn small_text_file(&self, path: &str) -> Option<String> {
        let is_file = self
            .handle
            .is_file(
                path,
                guestfs::IsFileOptArgs {
                    followsymlinks: Some(true),
                },
            )
            .ok()?;
        if !is_file {
            return None;
        }
        let bytes = self.handle.read_file(path).ok()?;
        String::from_utf8(bytes).ok()
    }

    /// Resolves the fstab's block file systems to devices; `None` when an
    /// entry names its device in a way the quick path does not translate
    /// (a guest device name like /dev/vda2), or when "/" is not `root`.
    fn mountpoints(
        &self,
        root: &str,
        fstab: &str,
        drive: Option<&str>,
    ) -> Option<HashMap<String, String>> {
        let mut mountpoints = HashMap::from([("/".to_string(), root.to_string())]);
        for entry in fstab_entries(fstab) {
            let device = self.find_file_system(&entry.source, drive)?;
            if entry.mountpoint == "/" && device != root {
                return None;
            }
            mountpoints.insert(entry.mountpoint.to_string(), device);
        }
        Some(mountpoints)
    }
}

impl Guest {
    /// The device holding the file system an fstab entry names. With a
    /// `drive`, only that drive's: `findfs` answers with any drive's match,
    /// and copies of one image share every UUID and label.
    fn find_file_system(&self, source: &Source<'_>, drive: Option<&str>) -> Option<String> {
        let found = match source {
            Source::Uuid(uuid) => self.handle.findfs_uuid(uuid).ok()?,
            Source::Label(label) => self.handle.findfs_label(label).ok()?,
            Source::Other(_) => return None,
        };
        let Some(drive) = drive else {
            return Some(found);
        };
        if self.is_on_drive(&found, drive) {
            return Some(found);
        }
        self.candidate_devices(Some(drive))?
            .into_iter()
            .find(|device| match source {
                Source::Uuid(uuid) => self.handle.vfs_uuid(device).ok().as_deref() == Some(uuid),
                Source::Label(label) => {
                    self.handle.vfs_label(device).ok().as_deref() == Some(label)
                }
                Source::Other(_) => false,
            })
    }
}

/// The distro name libguestfs would report, when the os-release ID is one
/// it reports unchanged.
fn same_name_distro(os_release: &str) -> Option<String> {
    let id = OsRelease::parse(os_release).id()?;
    SAME_NAME_IDS.contains(&id.as_str()).then_some(id)
}

/// How an fstab entry names its file system.
#[derive(Debug, PartialEq)]
enum Source<'a> {
    Uuid(&'a str),
    Label(&'a str),
    Other(&'a str),
}

#[derive(Debug, PartialEq)]
struct FstabEntry<'a> {
    source: Source<'a>,
    mountpoint: &'a str,
}

/// The fstab entries of block file systems that kiln mounts.
fn fstab_entries(fstab: &str) -> Vec<FstabEntry<'_>> {
    fstab
        .lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [source, mountpoint, kind, ..] = fields[..] else {
                return None;
            };
            if !MOUNTED_TYPES.contains(&kind) || !mountpoint.starts_with('/') {
                return None;
            }
            let source = if let Some(uuid) = source
                .strip_prefix("UUID=")
                .or_else(|| source.strip_prefix("/dev/disk/by-uuid/"))
            {
                Source::Uuid(uuid.trim_matches('"'))
            } else if let Some(label) = source
                .strip_prefix("LABEL=")
                .or_else(|| source.strip_prefix("/dev/disk/by-label/"))
            {
                Source::Label(label.trim_matches('"'))
            } else {
                Source::Other(source)
            };
            Some(FstabEntry { source, mountpoint })
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_libguestfs_reports_unchanged_take_the_quick_path() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";
        assert_eq!(same_name_distro(debian).as_deref(), Some("debian"));
        assert_eq!(
            same_name_distro("ID=\"centos\"\nID_LIKE=\"rhel fedora\"\n").as_deref(),
            Some("centos")
        );
        // libguestfs says "oraclelinux", "opensuse", "sles" …: its own
        // inspection answers for those.
        assert_eq!(same_name_distro("ID=\"ol\"\n"), None);
        assert_eq!(same_name_distro("ID=opensuse-leap\n"), None);
        assert_eq!(same_name_distro("NAME=x\n"), None);
    }

    #[test]
    fn fstab_entries_keep_block_file_systems_by_uuid_or_label() {
        let fstab = "\
# /etc/fstab: static file system information.
UUID=0b1c-aa / ext4 errors=remount-ro 0 1
LABEL=UEFI\t/boot/efi vfat umask=0077 0 1
/dev/disk/by-uuid/77-88 /srv xfs defaults 0 2
/dev/vda3 /var ext4 defaults 0 2
/swapfile none swap sw 0 0
proc /proc proc defaults 0 0
tmpfs /tmp tmpfs defaults 0 0
server:/export /mnt/nfs nfs defaults 0 0
";
        assert_eq!(
            fstab_entries(fstab),
            vec![
                FstabEntry {
                    source: Source::Uuid("0b1c-aa"),
                    mountpoint: "/"
                },
                FstabEntry {
                    source: Source::Label("UEFI"),
                    mountpoint: "/boot/efi"
                },
                FstabEntry {
                    source: Source::Uuid("77-88"),
                    mountpoint: "/srv"
                },
                FstabEntry {
                    source: Source::Other("/dev/vda3"),
                    mountpoint: "/var"
                },
            ]
        );
        assert_eq!(
            fstab_entries("# UNCONFIGURED FSTAB FOR BASE SYSTEM\n"),
            vec![]
        );
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
}

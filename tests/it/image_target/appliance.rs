//! How kiln starts the appliance, read off the running qemu itself (its
//! command line and open files in /proc): a reconciling session's overlay
//! drive is opened with `cache=unsafe`, so the guest's flushes (dpkg's fsync
//! per file) cost nothing, while the image under it stays open read-only;
//! a test-only session opens the image read-only and never for writing.
//! Neither changes the image.

use std::fs;
use std::path::{Path, PathBuf};

use super::{copy_of_demo, open, options, run, sha256};
use crate::support;

#[test]
fn overlay_drive_ignores_guest_flushes_and_the_image_stays_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let image = copy_of_demo(dir.path());
    let before = sha256(&image);

    let mut session = open(&options(&image, false));
    let overlay = overlay_in(dir.path());
    let qemus: Vec<_> = support::processes_mentioning(&overlay.to_string_lossy())
        .into_iter()
        .filter(|(_, command)| command.contains("qemu"))
        .collect();
    assert_eq!(qemus.len(), 1, "one appliance has the overlay: {qemus:?}");
    let (pid, command) = &qemus[0];
    let drive = drive_option(command, &overlay)
        .unwrap_or_else(|| panic!("no -drive file={} in {command}", overlay.display()));
    assert!(
        drive.split(',').any(|option| option == "cache=unsafe"),
        "the overlay drive ignores the guest's flushes: {drive}"
    );
    // The guest's own flushes still succeed; they just do not reach the disk.
    let (code, _, stderr) = run(&mut session, "echo kept > /etc/kiln-flushed && sync");
    assert_eq!(code, 0, "{stderr}");
    let modes = access_modes_of(*pid, &image);
    assert!(
        !modes.is_empty() && modes.iter().all(|m| *m == libc::O_RDONLY),
        "the reconciling appliance reads the image under its overlay read-only (modes {modes:?})"
    );
    session.discard();
    assert_eq!(sha256(&image), before);

    let session = open(&options(&image, true));
    let readers: Vec<_> = support::processes_mentioning("qemu")
        .into_iter()
        .map(|(pid, _)| access_modes_of(pid, &image))
        .filter(|modes| !modes.is_empty())
        .collect();
    assert_eq!(
        readers,
        vec![vec![libc::O_RDONLY]],
        "one appliance has the image open, read-only"
    );
    drop(session);
    assert_eq!(sha256(&image), before);
}

/// The overlay kiln created beside the image for a reconciling session.
fn overlay_in(dir: &Path) -> PathBuf {
    let overlays: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains(".kiln-overlay"))
        .collect();
    assert_eq!(overlays.len(), 1, "{overlays:?}");
    overlays.into_iter().next().unwrap()
}

/// The value of the `-drive` option that opens `path`, from a command line
/// whose arguments are separated by spaces.
fn drive_option<'a>(command: &'a str, path: &Path) -> Option<&'a str> {
    let file = format!("file={}", path.display());
    command
        .split(' ')
        .find(|argument| argument.split(',').next() == Some(file.as_str()))
}

/// The access mode (`O_RDONLY`, `O_WRONLY`, `O_RDWR`) of each of `pid`'s
/// open files that is `path`.
fn access_modes_of(pid: u32, path: &Path) -> Vec<i32> {
    let wanted = fs::canonicalize(path).unwrap();
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| fs::read_link(entry.path()).ok().as_deref() == Some(wanted.as_path()))
        .filter_map(|entry| {
            let info = fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                entry.file_name().to_string_lossy()
            ))
            .ok()?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
            let flags = i32::from_str_radix(flags, 8).ok()?;
            Some(flags & libc::O_ACCMODE)
        })
        .collect()
}

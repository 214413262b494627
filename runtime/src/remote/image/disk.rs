//! The image file on the host: the checks that refuse what is not a
//! readable disk image (with a one-line reason), format detection and the
//! damage check through `qemu-img`, the `flock` that keeps two reconciling
//! sessions off one image, the qcow2 overlay that takes a session's writes,
//! and the atomic write-back (rebase, convert, flush, one `rename`). It is
//! separate from the session because none of it needs a running appliance:
//! it is plain file and `qemu-img` work, and what makes the promise that an
//! image is never left half-changed. What the image's format, compression
//! and backing file are, and how `qemu-img` keeps them, lives in `layout`.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use super::cleanup::{check_interrupt, TempPath};
use super::layout::ImageLayout;
use super::ImageError;
use crate::interrupt;
use crate::text::first_line;

/// Rejects what is not a readable regular file, with a one-line reason, and
/// returns the absolute path (the overlay's backing reference needs one).
pub(super) fn checked_image_path(path: &Path) -> Result<PathBuf, ImageError> {
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

/// A raw file smaller than this cannot hold a partition table and a file
/// system with an operating system; refusing it early saves an appliance boot.
const SMALLEST_RAW_IMAGE: u64 = 1024 * 1024;

/// The image's layout (format, compression, backing file) as `qemu-img`
/// reads it, checked for damage. Passing the format to libguestfs explicitly
/// keeps qemu from probing a raw image (whose first sector the guest controls).
pub(super) fn detect_layout(image: &Path) -> Result<ImageLayout, ImageError> {
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
pub(super) struct ImageLock {
    _file: File,
}

impl ImageLock {
    pub(super) fn acquire(image: &Path) -> Result<ImageLock, ImageError> {
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
pub(super) fn output_path(
    image: &Path,
    output: Option<&Path>,
) -> Result<Option<PathBuf>, ImageError> {
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
pub(super) fn create_overlay(
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
pub(super) fn write_result(
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

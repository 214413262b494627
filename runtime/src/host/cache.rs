//! Compiled components kept on disk between runs, keyed by the SHA-256 of
//! the `.wasm` bytes and the engine's compatibility hash, so a second run
//! deserializes instead of compiling again.
//!
//! A `.cwasm` is machine code that wasmtime maps and runs without checking
//! it, so the pinned `.wasm` digest means nothing unless the cached code
//! provably came from those bytes. An entry is therefore used only when:
//! - the cache directory (opened once, all entries reached through that
//!   handle) is owned by the effective user and not writable by group or
//!   others, and its parent cannot be used by someone else to swap it (owned
//!   by the user or root; writable by others only with the sticky bit, as
//!   `/tmp`). Otherwise the cache is off for this host and
//!   [`CompileCache::warning`] says why, for the caller to print.
//! - `NAME.cwasm` and its sidecar `NAME.cwasm.sha256` open without following
//!   symlinks and are regular files owned by the effective user;
//! - the sidecar names the `.wasm` digest being loaded, this engine, and the
//!   SHA-256 of the `.cwasm` bytes, which are read into memory, hashed, and
//!   deserialized from that same buffer (nothing can change in between).
//!
//! Anything else is a miss: the component is compiled from the pinned bytes
//! and the entry rewritten. New files are created exclusively (`O_EXCL`,
//! `O_NOFOLLOW`, mode 0600) under a temporary name and renamed into place,
//! which replaces a planted symlink instead of writing through it.
//!
//! This protects against another local user (who can neither write the
//! directory nor plant links in it), an entry swapped for another (a
//! `.cwasm` alone, or with its sidecar, copied from another component), and
//! a damaged or truncated file. It does not protect against someone who
//! already runs as the user: without a secret to sign with they can write a
//! matching pair, and they could as well change kiln itself.

use std::collections::hash_map::DefaultHasher;
use std::ffi::CString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use super::hex;
use crate::text::escape_controls;

/// A cached `.cwasm` larger than this is treated as damaged (the built-ins
/// serialize to a few MiB).
const MAX_ENTRY_BYTES: u64 = 1 << 30;
/// A sidecar is three short lines.
const MAX_SIDECAR_BYTES: u64 = 4096;

pub(super) struct CompileCache {
    /// The cache directory, opened and checked; `None` when there is no cache.
    dir: Option<File>,
    engine_key: String,
    /// Why a configured cache directory is not used.
    warning: Option<String>,
}

impl CompileCache {
    pub(super) fn new(dir: Option<PathBuf>, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        let (dir, warning) = match dir.map(|path| (open_cache_dir(&path), path)) {
            None => (None, None),
            Some((Ok(handle), _)) => (Some(handle), None),
            Some((Err(reason), path)) => (
                None,
                Some(format!(
                    "not using the compile cache {}: {reason}",
                    escape_controls(&path.to_string_lossy())
                )),
            ),
        };
        CompileCache {
            dir,
            engine_key,
            warning,
        }
    }

    /// Why the configured cache directory is not used, for the caller to
    /// print once; `None` when it is used or none was configured.
    pub(super) fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// The component for `bytes` (whose SHA-256 is `digest`), from the cache
    /// when it holds a verified entry for them.
    pub(super) fn component(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<Component> {
        let Some(dir) = &self.dir else {
            return Component::new(engine, bytes);
        };
        let name = self.entry_name(digest);
        if let Some(serialized) = self.read_verified(dir, &name, digest) {
            // SAFETY: these bytes are, byte for byte, what the sidecar
            // records for `digest` and this engine, and both files are
            // regular files owned by this user in a directory only this user
            // can write (see the module header for what that leaves out).
            // wasmtime also checks the header against the engine.
            if let Ok(component) = unsafe { Component::deserialize(engine, &serialized) } {
                return Ok(component);
            }
        }
        let component = Component::new(engine, bytes)?;
        // A cache that cannot be written only costs the next run a compile.
        let _ = self.store(dir, &name, digest, &component);
        Ok(component)
    }

    fn entry_name(&self, digest: &str) -> String {
        format!("{digest}-{}.cwasm", self.engine_key)
    }

    fn sidecar_text(&self, digest: &str, serialized: &[u8]) -> String {
        format!(
            "wasm-sha256 {digest}\nengine {}\ncwasm-sha256 {}\n",
            self.engine_key,
            hex(&Sha256::digest(serialized))
        )
    }

    /// The entry's bytes when its sidecar vouches for them; `None` for a
    /// miss of any kind.
    fn read_verified(&self, dir: &File, name: &str, digest: &str) -> Option<Vec<u8>> {
        let sidecar = read_owned_file(dir, &sidecar_name(name), MAX_SIDECAR_BYTES).ok()?;
        let serialized = read_owned_file(dir, name, MAX_ENTRY_BYTES).ok()?;
        (sidecar == self.sidecar_text(digest, &serialized).as_bytes()).then_some(serialized)
    }

    fn store(&self, dir: &File, name: &str, digest: &str, component: &Component) -> io::Result<()> {
        let serialized = component.serialize().map_err(io::Error::other)?;
        // The `.cwasm` first: a reader that finds the new sidecar with the old
        // `.cwasm` (or the reverse) sees a mismatch and compiles.
        write_replacing(dir, name, &serialized)?;
        write_replacing(
            dir,
            &sidecar_name(name),
            self.sidecar_text(digest, &serialized).as_bytes(),
        )
    }
}

fn sidecar_name(name: &str) -> String {
    format!("{name}.sha256")
}

/// The temporary name `name` is written under before the rename.
fn temp_name(name: &str) -> String {
    format!(".{name}.{}.tmp", std::process::id())
}

/// Creates `path` (0700, as are any parents kiln creates) when missing, then
/// opens it and checks that only the effective user can change what it holds.
fn open_cache_dir(path: &Path) -> Result<File, String> {
    if let Err(e) = DirBuilder::new().recursive(true).mode(0o700).create(path) {
        return Err(format!("cannot create it: {e}"));
    }
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot open it: {e}"))?;
    let meta = dir
        .metadata()
        .map_err(|e| format!("cannot inspect it: {e}"))?;
    let shown = escape_controls(&path.to_string_lossy()).into_owned();
    let me = effective_uid();
    if meta.uid() != me {
        return Err(format!(
            "it is owned by uid {}, not by you (uid {me}); use a directory of your own",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("it is writable by other users (chmod 700 {shown})"));
    }
    // Whoever can write the parent can rename this directory away and put
    // their own in its place between runs.
    let parent = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Some(Path::new(".")),
        other => other,
    };
    if let Some(parent) = parent {
        let meta = std::fs::metadata(parent)
            .map_err(|e| format!("cannot inspect its parent directory: {e}"))?;
        let parent_shown = escape_controls(&parent.to_string_lossy()).into_owned();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(format!(
                "its parent directory {parent_shown} is owned by uid {}, who could replace it",
                meta.uid()
            ));
        }
        let sticky = meta.mode() & 0o1000 != 0;
        if meta.mode() & 0o022 != 0 && !sticky {
            return Err(format!(
                "its parent directory {parent_shown} is writable by other users (chmod 700 {parent_shown})"
            ));
        }
    }
    Ok(dir)
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Opens `name` in `dir` with `flags`, never following a symlink there.
fn open_at(dir: &File, name: &str, flags: libc::c_int, mode: libc::c_uint) -> io::Result<File> {
    let c_name = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: `dir` is an open directory and `c_name` a NUL-terminated name
    // that outlives the call; the returned descriptor is owned by the File.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c_name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The whole of `name` in `dir`, when it is a regular file owned by the
/// effective user, not writable by others, and at most `limit` bytes.
fn read_owned_file(dir: &File, name: &str, limit: u64) -> io::Result<Vec<u8>> {
    // O_NONBLOCK: opening a FIFO planted there must not hang.
    let file = open_at(dir, name, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file()
        || meta.uid() != effective_uid()
        || meta.mode() & 0o022 != 0
        || meta.len() > limit
    {
        return Err(io::Error::other("not a private regular file"));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::other("too large"));
    }
    Ok(bytes)
}

/// Writes `bytes` to a new private temporary file and renames it over
/// `name`, so a concurrent reader never sees half a file and whatever stood
/// at `name` (a symlink included) is replaced, not written through.
fn write_replacing(dir: &File, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temp = temp_name(name);
    let create = || {
        open_at(
            dir,
            &temp,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            0o600,
        )
    };
    let mut file = match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Left by a run with our pid that died, or planted: unlinkat
            // removes the entry itself (a symlink, not its target).
            unlink_at(dir, &temp)?;
            create()?
        }
        other => other?,
    };
    let written = file
        .write_all(bytes)
        .and_then(|()| rename_at(dir, &temp, name));
    if written.is_err() {
        let _ = unlink_at(dir, &temp);
    }
    written
}

fn unlink_at(dir: &File, name: &str) -> io::Result<()> {
    let c_name = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: as in `open_at`; unlinkat does not follow a final symlink.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c_name.as_ptr(), 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn rename_at(dir: &File, from: &str, to: &str) -> io::Result<()> {
    let (from, to) = (
        CString::new(from).map_err(io::Error::other)?,
        CString::new(to).map_err(io::Error::other)?,
    );
    let fd = dir.as_raw_fd();
    // SAFETY: as in `open_at`; rename replaces a symlink at `to` itself.
    if unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::sync::Arc;

    use super::*;
    use crate::host::{
        builtin_declarations, ComponentHost, ComponentSource, HostOptions, Outcome, ValidatorType,
    };

    fn host(dir: &Path) -> Arc<ComponentHost> {
        ComponentHost::new(HostOptions {
            cache_dir: Some(dir.to_path_buf()),
        })
        .expect("host starts")
    }

    fn load(host: &ComponentHost, name: &str) -> Arc<ValidatorType> {
        let declaration = builtin_declarations()
            .into_iter()
            .find(|d| d.name == name)
            .expect("a built-in");
        host.load(declaration).expect("loads")
    }

    fn builtin_digest(name: &str) -> String {
        match builtin_declarations()
            .into_iter()
            .find(|d| d.name == name)
            .expect("a built-in")
            .source
        {
            ComponentSource::Builtin(bytes) => hex(&Sha256::digest(bytes)),
            ComponentSource::File(_) => unreachable!("built-ins are embedded"),
        }
    }

    /// The path of the one cache entry compiled from the built-in `name`.
    fn entry(dir: &Path, name: &str) -> PathBuf {
        let digest = builtin_digest(name);
        let found: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with(&digest) && n.ends_with(".cwasm")
            })
            .collect();
        assert_eq!(found.len(), 1, "one entry for {name} in {found:?}");
        found.into_iter().next().unwrap()
    }

    fn sidecar(entry: &Path) -> PathBuf {
        PathBuf::from(format!("{}.sha256", entry.display()))
    }

    fn inode(path: &Path) -> u64 {
        std::fs::symlink_metadata(path).unwrap().ino()
    }

    /// What the `package` type says about a spec: `package less` when the
    /// component that runs really is `package` (`all` would say `all of 1`).
    fn package_summary(host: &ComponentHost) -> String {
        match load(host, "package").check(r#"["less"]"#) {
            Outcome::Returned(Ok(plan)) => plan.summary,
            other => panic!("check failed: {other:?}"),
        }
    }

    /// A cache with entries for `package` and `all`, and their paths.
    fn filled_cache() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("components");
        let host = host(&dir);
        assert_eq!(host.cache_warning(), None);
        load(&host, "package");
        load(&host, "all");
        let (package, all) = (entry(&dir, "package"), entry(&dir, "all"));
        (temp, package, all)
    }

    /// The entry is a regular file again, agrees with its sidecar, and holds
    /// `package`'s code, not `all`'s.
    fn assert_rewritten(package: &Path, all: &Path) {
        let meta = std::fs::symlink_metadata(package).unwrap();
        assert!(meta.file_type().is_file(), "{package:?} is a regular file");
        assert_eq!(meta.mode() & 0o777, 0o600);
        let bytes = std::fs::read(package).unwrap();
        assert_ne!(bytes, std::fs::read(all).unwrap());
        let side = std::fs::read_to_string(sidecar(package)).unwrap();
        assert!(side.contains(&format!("cwasm-sha256 {}\n", hex(&Sha256::digest(&bytes)))));
        let name = package.file_name().unwrap().to_string_lossy();
        assert!(side.starts_with(&format!("wasm-sha256 {}\n", &name[..64])));
    }

    #[test]
    fn a_verified_entry_is_used_as_it_is() {
        let (temp, package, _) = filled_cache();
        assert_eq!(
            std::fs::metadata(temp.path().join("components"))
                .unwrap()
                .mode()
                & 0o777,
            0o700
        );
        let before = (inode(&package), inode(&sidecar(&package)));
        assert_eq!(
            package_summary(&host(&temp.path().join("components"))),
            "package less"
        );
        assert_eq!(
            before,
            (inode(&package), inode(&sidecar(&package))),
            "not rewritten"
        );
    }

    #[test]
    fn a_swapped_cwasm_is_not_used() {
        let (temp, package, all) = filled_cache();
        std::fs::copy(&all, &package).unwrap();
        assert_eq!(
            package_summary(&host(&temp.path().join("components"))),
            "package less"
        );
        assert_rewritten(&package, &all);
    }

    #[test]
    fn a_swapped_cwasm_with_its_sidecar_is_not_used() {
        let (temp, package, all) = filled_cache();
        std::fs::copy(&all, &package).unwrap();
        std::fs::copy(sidecar(&all), sidecar(&package)).unwrap();
        assert_eq!(
            package_summary(&host(&temp.path().join("components"))),
            "package less"
        );
        assert_rewritten(&package, &all);
    }

    #[test]
    fn a_garbage_cwasm_is_compiled_again() {
        let (temp, package, all) = filled_cache();
        let garbage = b"\x7fELF but not really".repeat(100);
        std::fs::write(&package, &garbage).unwrap();
        assert_eq!(
            package_summary(&host(&temp.path().join("components"))),
            "package less"
        );
        assert_rewritten(&package, &all);
        // Garbage with a sidecar that vouches for it: wasmtime refuses it,
        // and the entry is rebuilt all the same.
        std::fs::write(&package, &garbage).unwrap();
        let side = std::fs::read_to_string(sidecar(&package)).unwrap();
        let (keep, _) = side.split_once("cwasm-sha256 ").unwrap();
        let forged = format!("{keep}cwasm-sha256 {}\n", hex(&Sha256::digest(&garbage)));
        std::fs::write(sidecar(&package), forged).unwrap();
        assert_eq!(
            package_summary(&host(&temp.path().join("components"))),
            "package less"
        );
        assert_rewritten(&package, &all);
    }

    #[test]
    fn a_symlink_at_the_entry_is_replaced_not_followed() {
        let (temp, package, all) = filled_cache();
        // The link points at a valid copy of the entry: were it followed, it
        // would be used and stay.
        let victim = temp.path().join("victim.cwasm");
        std::fs::rename(&package, &victim).unwrap();
        let victim_bytes = std::fs::read(&victim).unwrap();
        symlink(&victim, &package).unwrap();
        assert_eq!(
            package_summary(&host(&temp.path().join("components"))),
            "package less"
        );
        assert_rewritten(&package, &all);
        assert_eq!(std::fs::read(&victim).unwrap(), victim_bytes);
    }

    #[test]
    fn a_symlink_at_the_temporary_name_is_not_followed() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("components");
        let plain = ComponentHost::new(HostOptions::default()).unwrap();
        let name = CompileCache::new(None, plain.engine()).entry_name(&builtin_digest("package"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let victims: Vec<PathBuf> = [name.clone(), sidecar_name(&name)]
            .iter()
            .map(|n| {
                let victim = temp.path().join(format!("victim-{n}"));
                std::fs::write(&victim, "unchanged").unwrap();
                symlink(&victim, dir.join(temp_name(n))).unwrap();
                victim
            })
            .collect();
        assert_eq!(package_summary(&host(&dir)), "package less");
        for victim in &victims {
            assert_eq!(std::fs::read_to_string(victim).unwrap(), "unchanged");
        }
        let written = dir.join(&name);
        assert!(std::fs::symlink_metadata(&written)
            .unwrap()
            .file_type()
            .is_file());
        assert!(std::fs::symlink_metadata(dir.join(temp_name(&name))).is_err());
        let before = inode(&written);
        assert_eq!(package_summary(&host(&dir)), "package less");
        assert_eq!(inode(&written), before, "the entry written is used");
    }

    /// The warning a host gives for `dir`, and that it wrote nothing there.
    fn refused(dir: &Path) -> String {
        let host = host(dir);
        assert_eq!(package_summary(&host), "package less");
        let entries: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
        assert!(entries.is_empty(), "nothing cached in {dir:?}: {entries:?}");
        host.cache_warning().expect("a warning").to_string()
    }

    #[test]
    fn a_group_or_world_writable_cache_dir_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("components");
        std::fs::create_dir(&dir).unwrap();
        for mode in [0o770, 0o707, 0o777] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
            let shown = dir.display();
            assert_eq!(
                refused(&dir),
                format!("not using the compile cache {shown}: it is writable by other users (chmod 700 {shown})")
            );
        }
    }

    #[test]
    fn a_cache_dir_owned_by_someone_else_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("components");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let nobody = 65534;
        // SAFETY: a NUL-terminated path; chown has no other preconditions.
        let path = CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(
            unsafe { libc::chown(path.as_ptr(), nobody, nobody) },
            0,
            "the tests run as root: {}",
            io::Error::last_os_error()
        );
        assert_eq!(
            refused(&dir),
            format!(
                "not using the compile cache {}: it is owned by uid {nobody}, not by you (uid {}); use a directory of your own",
                dir.display(),
                effective_uid()
            )
        );
    }

    #[test]
    fn a_parent_others_could_swap_it_in_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let parent = temp.path().join("kiln");
        let dir = parent.join("components");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o775)).unwrap();
        let shown = parent.display();
        assert_eq!(
            refused(&dir),
            format!("not using the compile cache {}: its parent directory {shown} is writable by other users (chmod 700 {shown})", dir.display())
        );
        // The sticky bit (as on /tmp) keeps others from renaming it away.
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(host(&dir).cache_warning(), None);
    }

    #[test]
    fn directories_kiln_creates_are_private() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("cache").join("kiln").join("components");
        assert_eq!(host(&dir).cache_warning(), None);
        for created in [dir.parent().unwrap(), &dir] {
            let mode = std::fs::metadata(created).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{created:?}");
        }
    }
}

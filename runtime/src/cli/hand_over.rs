//! `kiln pack` in the `kiln` binary: hands the whole command line over to
//! `kiln-pack`, the same program with libguestfs linked, in the same
//! process (exec). `kiln` itself does not link libguestfs, so the verbs
//! that never open an image start about 20 ms sooner (BENCHMARKS.md,
//! "start-up"). The exec keeps the process id, the environment, the
//! terminal and the arguments word for word, so signals, exit codes and
//! messages are the ones `kiln-pack` gives; only `comm` changes.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::pack::PackArgs;
use super::{Common, Style};

/// The binary `kiln pack` runs, beside `kiln`.
pub const PACK_BINARY: &str = "kiln-pack";

/// Replaces this process with `kiln-pack` and the same arguments; returns
/// only when that cannot start. The parsed arguments are not used: they
/// were parsed only so that bad usage and `--help` are answered here.
#[allow(dead_code)] // kiln's PackVerb; kiln-pack runs pack::run instead
pub fn pack(_: &Common, _: Style, _: &PackArgs) -> Result<i32> {
    let binary = pack_binary()?;
    let mut words = std::env::args_os();
    let arg0 = words.next().unwrap_or_else(|| OsString::from("kiln"));
    let error = std::process::Command::new(&binary)
        .arg0(arg0)
        .args(words)
        .exec();
    if error.kind() == std::io::ErrorKind::NotFound {
        bail!("{}", missing(&binary));
    }
    Err(error).with_context(|| format!("cannot run {}", binary.display()))
}

/// `kiln-pack` in the directory `kiln` runs from (symlinks resolved, so
/// a link in PATH to an installed kiln finds its sibling).
fn pack_binary() -> Result<PathBuf> {
    let kiln =
        std::env::current_exe().context("finding the kiln binary (for kiln-pack beside it)")?;
    let dir = kiln.parent().unwrap_or(Path::new("/"));
    Ok(dir.join(PACK_BINARY))
}

fn missing(binary: &Path) -> String {
    format!(
        "`kiln pack` runs {PACK_BINARY} (kiln with the disk-image target, libguestfs), and there is none at {}: \
         install both binaries (`cargo install --path runtime`), or build with the default `image-target` feature (needs libguestfs-dev)",
        binary.display()
    )
}

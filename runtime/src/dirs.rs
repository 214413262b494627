//! Where kiln keeps what outlives a run: one cache root, `$KILN_CACHE_DIR`
//! (or `--cache-dir`), else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`.
//! Compiled components live in its `components/`, the image remote's memo of
//! a failed hardware launch beside them, and the scripts that build the
//! demo and test images keep their root filesystems there too. One root, so
//! that clearing kiln's cache, or moving it, is one path.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A root chosen on the command line (`--cache-dir`), which wins over the
/// environment for the rest of the process.
static CHOSEN_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Makes `root` the cache root for the rest of the process; the first call
/// wins.
pub fn choose_cache_root(root: &Path) {
    let _ = CHOSEN_ROOT.set(root.to_path_buf());
}

/// kiln's cache root; `None` when neither a root nor a home is known.
pub fn cache_root() -> Option<PathBuf> {
    if let Some(root) = CHOSEN_ROOT.get() {
        return Some(root.clone());
    }
    std::env::var_os("KILN_CACHE_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("kiln")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kiln")))
}

/// Where compiled components are cached below `root`.
pub fn components_dir(root: &Path) -> PathBuf {
    root.join("components")
}

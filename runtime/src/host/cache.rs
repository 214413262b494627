//! Compiled components kept on disk between runs, keyed by the SHA-256 of
//! the `.wasm` bytes and the engine's compatibility hash, so a second run
//! deserializes (well under a millisecond) instead of compiling again.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use wasmtime::component::Component;
use wasmtime::Engine;

pub(super) struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl CompileCache {
    pub(super) fn new(dir: Option<PathBuf>, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        CompileCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The component for `bytes`, from the cache when it holds it.
    pub(super) fn component(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<Component> {
        let Some(path) = self.path_for(digest) else {
            return Component::new(engine, bytes);
        };
        if path.is_file() {
            // SAFETY: the file was written by `store` below from wasmtime's own
            // serialization, under a name that binds it to these exact bytes
            // and this engine's configuration; wasmtime also checks its
            // header. A damaged file fails to deserialize and is rebuilt.
            if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
                return Ok(component);
            }
        }
        let component = Component::new(engine, bytes)?;
        // A cache that cannot be written only costs the next run a compile.
        let _ = self.store(&path, &component);
        Ok(component)
    }

    fn path_for(&self, digest: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{digest}-{}.cwasm", self.engine_key)))
    }

    fn store(&self, path: &PathBuf, component: &Component) -> std::io::Result<()> {
        let dir = path.parent().expect("cache files live in a directory");
        std::fs::create_dir_all(dir)?;
        let bytes = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // Write then rename, so a concurrent run never reads half a file.
        let tmp = dir.join(format!(
            ".{}.{}",
            std::process::id(),
            path.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }
}

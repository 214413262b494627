//! The library's front door, with the three operations Sahara plugins
//! offered: the arguments a plugin version takes (a loaded [`Manifest`]'s
//! `arguments`), packing an image ([`Kiln::run`] over a disk-image remote)
//! and validating instances ([`Kiln::run`] over SSH remotes). Remotes plug
//! in through [`Remote`]. The `kiln` command is built on it: one `Kiln` per
//! run holds the component host and the validator types every manifest of
//! the run can use.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::host::{ComponentHost, HostError, HostOptions, LoadError, TypeDeclaration};
use crate::interpreter::{self, Observer, RunSummary};
use crate::manifest::{self, LimitSettings, LoadOptions, Manifest, ManifestError, TypeRegistry};
use crate::remote::Remote;

/// Why kiln could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Type(#[from] LoadError),
    #[error("{0}")]
    Declaration(String),
}

/// A component host with the built-in validator types (and any third-party
/// types added for every run) loaded.
pub struct Kiln {
    host: Arc<ComponentHost>,
    types: TypeRegistry,
}

impl Kiln {
    pub fn new(options: HostOptions) -> Result<Kiln, SetupError> {
        let host = ComponentHost::new(options)?;
        let types = TypeRegistry::builtins(&host)?;
        Ok(Kiln { host, types })
    }

    /// Adds a third-party validator type for every manifest this kiln loads.
    pub fn add_type(&mut self, declaration: TypeDeclaration) -> Result<(), SetupError> {
        self.types
            .add(&self.host, declaration)
            .map_err(SetupError::Declaration)
    }

    /// Changes the limits of a type this kiln has, a built-in included
    /// (a config file's `[kiln_limits]`); its component and grants stay.
    pub fn set_limits(&mut self, name: &str, limits: &LimitSettings) -> Result<(), SetupError> {
        self.types
            .set_limits(&self.host, name, limits)
            .map_err(SetupError::Declaration)
    }

    pub fn host(&self) -> &Arc<ComponentHost> {
        &self.host
    }

    pub fn types(&self) -> &TypeRegistry {
        &self.types
    }

    /// Loads and checks a manifest; nothing touches a target.
    pub fn load(&self, path: &Path, options: &LoadOptions) -> Result<Manifest, ManifestError> {
        manifest::load(path, &self.host, &self.types, options)
    }

    /// Runs a manifest against one target: Sahara's `pack_image` when the
    /// remote is a disk image, `validate_images` for one instance over SSH.
    pub fn run<R: Remote + 'static>(
        &self,
        manifest: &Manifest,
        remote: R,
        arguments: &BTreeMap<String, String>,
        test_only: bool,
        observer: Box<dyn Observer>,
    ) -> (RunSummary, R) {
        interpreter::run(manifest, remote, arguments, test_only, observer)
    }
}

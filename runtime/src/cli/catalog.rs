//! The manifest catalog: the plugin versions under the manifest
//! directories, what `kiln list` shows and what `PLUGIN VERSION` names on
//! every verb (with Sahara's `v5_7_0` spelling of versions). A version is a
//! directory `PLUGIN/VERSION/` holding its own `image.yaml`, or a
//! `version.yaml` entry that names a manifest it shares with other versions
//! and the argument values it sets (`kiln::manifest::version_entry`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use kiln::manifest::VersionEntry;

/// The file a version directory holds its own manifest in.
pub const MANIFEST_FILE: &str = "image.yaml";
/// The file a version directory names a shared manifest in.
pub const ENTRY_FILE: &str = "version.yaml";

/// A plugin version found in a manifest directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginVersion {
    pub plugin: String,
    pub version: String,
    /// The file to load: the version's `image.yaml` or its `version.yaml`.
    pub manifest: PathBuf,
}

impl PluginVersion {
    /// Whether this version is a version entry naming a shared manifest.
    pub fn is_entry(&self) -> bool {
        self.manifest.file_name() == Some(std::ffi::OsStr::new(ENTRY_FILE))
    }

    /// The entry's chain, resolved (without loading the manifest), or why
    /// it cannot be; `None` for a version with its own manifest.
    pub fn entry(&self) -> Option<Result<VersionEntry, String>> {
        self.is_entry().then(|| {
            kiln::manifest::version_entry::shared_manifest(&self.manifest)
                .map_err(|e| e.to_string())
        })
    }
}

/// Every plugin version under the directories (the first directory that
/// has a plugin version wins). A directory with both an `image.yaml` and a
/// `version.yaml` is listed with its `image.yaml`; `find_plugin` refuses it.
pub fn discover(dirs: &[PathBuf]) -> Vec<PluginVersion> {
    let mut found: Vec<PluginVersion> = Vec::new();
    for dir in dirs {
        for plugin in sorted_subdirs(dir) {
            for version in sorted_subdirs(&plugin) {
                let Some(manifest) = [MANIFEST_FILE, ENTRY_FILE]
                    .iter()
                    .map(|name| version.join(name))
                    .find(|path| path.is_file())
                else {
                    continue;
                };
                let entry = PluginVersion {
                    plugin: file_name(&plugin),
                    version: display_version(&file_name(&version)),
                    manifest,
                };
                if !found
                    .iter()
                    .any(|f| f.plugin == entry.plugin && f.version == entry.version)
                {
                    found.push(entry);
                }
            }
        }
    }
    found
}

/// Finds `PLUGIN VERSION`, accepting Sahara's directory spelling (`v5_7_0`
/// for 5.7.0) as well as the plain one.
pub fn find_plugin(dirs: &[PathBuf], plugin: &str, version: &str) -> Result<PathBuf> {
    let all = discover(dirs);
    if let Some(found) = all
        .iter()
        .find(|p| p.plugin == plugin && p.version == display_version(version))
    {
        let dir = found.manifest.parent().unwrap_or(Path::new("."));
        if dir.join(MANIFEST_FILE).is_file() && dir.join(ENTRY_FILE).is_file() {
            bail!(
                "{} holds both {MANIFEST_FILE} and {ENTRY_FILE}; keep {MANIFEST_FILE} for a manifest of its own, or {ENTRY_FILE} to share another",
                dir.display()
            );
        }
        return Ok(found.manifest.clone());
    }
    let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let versions: Vec<&str> = all
        .iter()
        .filter(|p| p.plugin == plugin)
        .map(|p| p.version.as_str())
        .collect();
    if versions.is_empty() {
        let plugins: Vec<String> = all
            .iter()
            .map(|p| p.plugin.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        bail!(
            "no plugin `{plugin}` in {} (plugins: {}); see `kiln list`, or use --manifest FILE",
            if searched.is_empty() {
                "any manifest directory".to_string()
            } else {
                searched.join(", ")
            },
            if plugins.is_empty() {
                "none".to_string()
            } else {
                plugins.join(", ")
            }
        );
    }
    bail!(
        "plugin `{plugin}` has no version `{version}` (versions: {}); see `kiln list`",
        versions.join(", ")
    )
}

/// `v5_7_0` → `5.7.0`; other names unchanged.
fn display_version(name: &str) -> String {
    match name.strip_prefix('v') {
        Some(rest)
            if rest.chars().all(|c| c.is_ascii_digit() || c == '_') && rest.contains('_') =>
        {
            rest.replace('_', ".")
        }
        _ => name.to_string(),
    }
}

fn sorted_subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sahara_version_directories() {
        assert_eq!(display_version("v5_7_0"), "5.7.0");
        assert_eq!(display_version("5.7.0"), "5.7.0");
        assert_eq!(display_version("vanilla"), "vanilla");
    }
}

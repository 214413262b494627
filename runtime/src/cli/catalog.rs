//! The manifest catalog: the `PLUGIN/VERSION/image.yaml` files under the
//! manifest directories, what `kiln list` shows and what `PLUGIN VERSION`
//! names on every verb (with Sahara's `v5_7_0` spelling of versions).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// A plugin version found in a manifest directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginVersion {
    pub plugin: String,
    pub version: String,
    pub manifest: PathBuf,
}

/// Every `PLUGIN/VERSION/image.yaml` under the directories (the first
/// directory that has a plugin version wins).
pub fn discover(dirs: &[PathBuf]) -> Vec<PluginVersion> {
    let mut found: Vec<PluginVersion> = Vec::new();
    for dir in dirs {
        for plugin in sorted_subdirs(dir) {
            for version in sorted_subdirs(&plugin) {
                let manifest = version.join("image.yaml");
                if !manifest.is_file() {
                    continue;
                }
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

//! How a manifest is named on the command line: PLUGIN VERSION, a path to
//! its file, or `--manifest FILE`, and where the plugin's own words begin.
//! Every verb that takes a manifest reads the name the same way, so the
//! rule lives here once.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::{catalog, ManifestChoice};

/// One way of naming a manifest on the command line.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ManifestName {
    File(PathBuf),
    Plugin { plugin: String, version: String },
}

impl ManifestName {
    /// The manifest file, and how the user named it (for messages and
    /// the plugin's help).
    pub(super) fn locate(&self, dirs: &[PathBuf]) -> Result<(PathBuf, String)> {
        match self {
            ManifestName::File(path) => Ok((path.clone(), path.display().to_string())),
            ManifestName::Plugin { plugin, version } => Ok((
                catalog::find_plugin(dirs, plugin, version)?,
                format!("{plugin} {version}"),
            )),
        }
    }
}

/// Whether a word names a manifest file rather than a plugin: it has a
/// `/`, ends in `.yaml` or `.yml`, or is a file that exists. Plugin names
/// are directory names under a manifest directory, so none of these.
fn names_a_file(word: &OsStr) -> bool {
    let text = word.to_string_lossy();
    text.contains('/')
        || text.ends_with(".yaml")
        || text.ends_with(".yml")
        || Path::new(word).is_file()
}

/// The manifest named at the front of `words` and the words after it;
/// `None` when `words` is empty or starts with an option.
pub(super) fn take_name(words: &[OsString]) -> Result<Option<(ManifestName, &[OsString])>> {
    let Some(first) = words.first() else {
        return Ok(None);
    };
    if first.to_string_lossy().starts_with('-') {
        return Ok(None);
    }
    if names_a_file(first) {
        return Ok(Some((ManifestName::File(first.into()), &words[1..])));
    }
    let plugin = utf8(first)?;
    match words.get(1) {
        Some(version) if !version.to_string_lossy().starts_with('-') => Ok(Some((
            ManifestName::Plugin {
                plugin,
                version: utf8(version)?,
            },
            &words[2..],
        ))),
        _ => bail!(
            "`{plugin}` is no manifest file and no VERSION follows it; name a manifest as PLUGIN VERSION (see `kiln list`), a path to its .yaml file, or --manifest FILE"
        ),
    }
}

pub(super) fn utf8(word: &OsStr) -> Result<String> {
    word.to_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("`{}` is not UTF-8", word.to_string_lossy()))
}

/// Exactly one manifest, named by the words or by `--manifest`.
pub(super) fn one_name(words: &[OsString], manifest: &Option<PathBuf>) -> Result<ManifestName> {
    match (take_name(words)?, manifest) {
        (None, None) => bail!(
            "name a manifest: PLUGIN VERSION (see `kiln list`), a path to its .yaml file, or --manifest FILE"
        ),
        (None, Some(path)) => Ok(ManifestName::File(path.clone())),
        (Some((name, [])), None) => Ok(name),
        (Some((_, [extra, ..])), None) => bail!(
            "unexpected `{}`: name one manifest",
            extra.to_string_lossy()
        ),
        (Some(_), Some(path)) => bail!(
            "--manifest {} and `{}` both name a manifest; give one",
            path.display(),
            words[0].to_string_lossy()
        ),
    }
}

impl ManifestChoice {
    /// The manifest file, the words after its name (the plugin's
    /// arguments) and how it was named.
    pub(super) fn resolve(&self, dirs: &[PathBuf]) -> Result<(PathBuf, Vec<String>, String)> {
        let (path, rest, label) = match (take_name(&self.words)?, &self.manifest) {
            (Some((name, rest)), None) => {
                let (path, label) = name.locate(dirs)?;
                (path, rest, label)
            }
            (None, Some(path)) => (
                path.clone(),
                &self.words[..],
                format!("--manifest {}", path.display()),
            ),
            (Some(_), Some(path)) => bail!(
                "--manifest {} and `{}` both name a manifest; give one (plugin arguments are --NAME VALUE)",
                path.display(),
                self.words[0].to_string_lossy()
            ),
            (None, None) => bail!(
                "name a manifest: PLUGIN VERSION (see `kiln list`), a path to its .yaml file, or --manifest FILE"
            ),
        };
        let rest = rest.iter().map(|w| utf8(w)).collect::<Result<Vec<_>>>()?;
        Ok((path, rest, label))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<OsString> {
        text.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn a_manifest_is_named_by_a_path_or_plugin_version() {
        let w = words("demo 1.0 --tools full");
        let (name, rest) = take_name(&w).unwrap().unwrap();
        assert_eq!(
            name,
            ManifestName::Plugin {
                plugin: "demo".into(),
                version: "1.0".into()
            }
        );
        assert_eq!(rest, &w[2..]);
        for file in ["my/image.yaml", "image.yaml", "x.yml", "./anything"] {
            let w = words(&format!("{file} --tools full"));
            let (name, rest) = take_name(&w).unwrap().unwrap();
            assert_eq!(name, ManifestName::File(file.into()));
            assert_eq!(rest.len(), 2);
        }
        assert!(take_name(&words("--tools full")).unwrap().is_none());
        let error = take_name(&words("demo --tools")).unwrap_err().to_string();
        assert!(error.contains("no VERSION follows"), "{error}");
    }
}

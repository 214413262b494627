//! Version entries: the per-version glue Sahara's plugins kept in Python,
//! said in YAML. A plugin version that shares another version's manifest
//! is a `PLUGIN/VERSION/version.yaml` naming that manifest and the argument
//! values this version sets:
//!
//! ```yaml
//! manifest: ../image.yaml      # relative to this file: a manifest or another entry
//! set:                         # fixed for this version (Sahara's pack_image forced them)
//!   ambari_version: 2.4.3.0
//! defaults:                    # new defaults, which the command line may override
//!   java_distro: openjdk
//! ```
//!
//! This module reads an entry and the chain of entries it names (finding a
//! missing manifest or a cycle), and applies the values to the loaded
//! manifest (finding an unknown argument or a value outside the choices),
//! each problem at the entry's `FILE:LINE:COL`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Location, Manifest, ManifestError};
use crate::yaml::{self, Mark, Yaml, YamlKind, YamlLimits};

/// The longest chain of entries followed; real catalogs need one.
const MAX_CHAIN: usize = 16;

const KEYS: [&str; 3] = ["manifest", "set", "defaults"];

/// How a version entry gives an argument its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `set:`: the only value this version runs with; a different value on
    /// the command line is refused.
    Fixed,
    /// `defaults:`: the value when the command line gives none.
    Default,
}

impl ValueKind {
    /// The entry key that gives values of this kind.
    pub fn key(self) -> &'static str {
        match self {
            ValueKind::Fixed => "set",
            ValueKind::Default => "defaults",
        }
    }
}

/// One argument value a version entry gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionValue {
    pub argument: String,
    pub value: String,
    pub kind: ValueKind,
    /// Where the value is written (the argument's name in the entry).
    pub location: Location,
    /// The manifest's own default, which this value replaces.
    pub replaces: Option<String>,
}

/// A version entry, with the chain it follows resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    /// The `version.yaml` that was named.
    pub path: PathBuf,
    /// Every entry followed, this one first.
    pub chain: Vec<PathBuf>,
    /// The manifest the chain ends at.
    pub manifest: PathBuf,
    /// The values, the nearest entry's winning for each argument.
    pub values: Vec<VersionValue>,
}

impl VersionEntry {
    /// The value fixed for `argument`, if this version fixes one.
    pub fn fixed(&self, argument: &str) -> Option<&VersionValue> {
        self.values
            .iter()
            .find(|v| v.argument == argument && v.kind == ValueKind::Fixed)
    }
}

/// Whether a parsed document is a version entry rather than a manifest: a
/// map with a `manifest` key (a manifest has no such key).
pub(super) fn is_entry(document: &Yaml) -> bool {
    document.get("manifest").is_some()
}

/// Reads the entry at `path` (already parsed as `document`) and follows
/// its chain to the manifest.
pub(super) fn resolve(path: &Path, document: &Yaml) -> Result<VersionEntry, ManifestError> {
    let mut entry = VersionEntry {
        path: path.to_path_buf(),
        chain: Vec::new(),
        manifest: PathBuf::new(),
        values: Vec::new(),
    };
    let mut current = (path.to_path_buf(), document.clone());
    loop {
        let (file, document) = current;
        let at = location_in(&file);
        let target = read_one(&file, &document, &mut entry.values)?;
        entry.chain.push(file.clone());
        let (next_path, target_mark) = target;
        let next_bytes = std::fs::read(&next_path).map_err(|e| ManifestError::Spec {
            location: at(target_mark),
            message: format!(
                "version entry: `manifest: {}` cannot be read ({}): {e}",
                display_relative(&file, &next_path),
                next_path.display()
            ),
        })?;
        let next_document = match yaml::parse_bytes(&next_bytes, YamlLimits::default()) {
            Ok(Some(document)) if is_entry(&document) => document,
            // Not an entry: the manifest, whose own load reports its problems.
            _ => {
                entry.manifest = next_path;
                return Ok(entry);
            }
        };
        if let Some(seen) = entry.chain.iter().position(|p| same_file(p, &next_path)) {
            let mut names: Vec<String> = entry.chain[seen..]
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            names.push(next_path.display().to_string());
            return Err(ManifestError::Spec {
                location: at(target_mark),
                message: format!(
                    "version entry: the entries name each other in a cycle ({}); one of them must name a manifest",
                    names.join(" -> ")
                ),
            });
        }
        if entry.chain.len() >= MAX_CHAIN {
            return Err(ManifestError::Spec {
                location: at(target_mark),
                message: format!(
                    "version entry: more than {MAX_CHAIN} entries in a chain; name the manifest directly"
                ),
            });
        }
        current = (next_path, next_document);
    }
}

/// Reads one entry's keys: its values go into `values` (unless a nearer
/// entry gave that argument already); returns the path it names, and where.
fn read_one(
    file: &Path,
    document: &Yaml,
    values: &mut Vec<VersionValue>,
) -> Result<(PathBuf, Mark), ManifestError> {
    let at = location_in(file);
    let error = |mark: Mark, message: String| ManifestError::Spec {
        location: at(mark),
        message: format!("version entry: {message}"),
    };
    let YamlKind::Map(entries) = &document.kind else {
        unreachable!("is_entry checked for a map");
    };
    for (key, _) in entries {
        if !key.as_str().is_some_and(|k| KEYS.contains(&k)) {
            return Err(error(
                key.mark,
                format!(
                    "unknown key `{}` (known: {})",
                    key.as_str().unwrap_or("?"),
                    KEYS.join(", ")
                ),
            ));
        }
    }
    let (key, target) = entries
        .iter()
        .find(|(key, _)| key.as_str() == Some("manifest"))
        .expect("is_entry checked");
    let Some(name) = target.as_str().filter(|n| !n.trim().is_empty()) else {
        // An empty value has no place of its own: point at its key.
        return Err(error(
            key.mark,
            "`manifest` must name the shared manifest file, relative to this entry (e.g. `../image.yaml`)".into(),
        ));
    };
    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let next = normalize(&base.join(name));
    if !next.is_file() {
        return Err(error(
            target.mark,
            format!(
                "`manifest: {name}`: no such file ({}); name the shared manifest, relative to this entry",
                next.display()
            ),
        ));
    }
    let mut here: Vec<VersionValue> = Vec::new();
    for kind in [ValueKind::Fixed, ValueKind::Default] {
        let Some(section) = document.get(kind.key()) else {
            continue;
        };
        let pairs: &[(Yaml, Yaml)] = match &section.kind {
            YamlKind::Map(pairs) => pairs,
            YamlKind::Null => &[],
            _ => {
                return Err(error(
                    section.mark,
                    format!(
                        "`{}` must be a map from argument name to value, found {}",
                        kind.key(),
                        section.kind_name()
                    ),
                ))
            }
        };
        for (name, value) in pairs {
            let Some(argument) = name.as_str() else {
                return Err(error(name.mark, "an argument name must be a string".into()));
            };
            let Some(value) = value.as_str() else {
                return Err(error(
                    value.mark,
                    format!(
                        "`{}.{argument}` must be a single value, found {}",
                        kind.key(),
                        value.kind_name()
                    ),
                ));
            };
            if let Some(earlier) = here.iter().find(|v| v.argument == argument) {
                return Err(error(
                    name.mark,
                    format!(
                        "`{argument}` is given twice in this entry (also in `{}` at line {})",
                        earlier.kind.key(),
                        earlier.location.mark.line
                    ),
                ));
            }
            here.push(VersionValue {
                argument: argument.to_string(),
                value: value.to_string(),
                kind,
                location: at(name.mark),
                replaces: None,
            });
        }
    }
    // A nearer entry (read earlier) wins over this one.
    for value in here {
        if !values.iter().any(|v| v.argument == value.argument) {
            values.push(value);
        }
    }
    Ok((next, target.mark))
}

/// Gives the manifest the entry's values: a new default for each, checked
/// against the argument's declaration.
pub(super) fn apply(manifest: &mut Manifest, mut entry: VersionEntry) -> Result<(), ManifestError> {
    for value in &mut entry.values {
        let declared: Vec<String> = manifest.arguments.iter().map(|a| a.name.clone()).collect();
        let Some(argument) = manifest
            .arguments
            .iter_mut()
            .find(|a| a.name == value.argument)
        else {
            return Err(ManifestError::Spec {
                location: value.location.clone(),
                message: format!(
                    "version entry: `{}.{}`: {} declares no argument `{}` (it declares: {})",
                    value.kind.key(),
                    value.argument,
                    entry.manifest.display(),
                    value.argument,
                    if declared.is_empty() {
                        "none".to_string()
                    } else {
                        declared.join(", ")
                    }
                ),
            });
        };
        if !argument.allows(&value.value) {
            return Err(ManifestError::Spec {
                location: value.location.clone(),
                message: format!(
                    "version entry: `{}.{}`: `{}` is not one of the argument's choices ({})",
                    value.kind.key(),
                    value.argument,
                    value.value,
                    argument.choices.join(", ")
                ),
            });
        }
        value.replaces = argument.default.replace(value.value.clone());
    }
    manifest.version = Some(entry);
    Ok(())
}

fn location_in(file: &Path) -> impl Fn(Mark) -> Location {
    let file: Arc<Path> = Arc::from(file);
    move |mark| Location {
        file: file.clone(),
        mark,
    }
}

/// `a/b/../c` → `a/c`, without touching the file system, so messages and
/// `kiln list` show the shared manifest's path as a person would write it.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            // `/..` is `/`.
            Component::ParentDir if out.has_root() && out.parent().is_none() => {}
            other => out.push(other),
        }
    }
    out
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// `next` as the entry at `from` named it, for messages.
fn display_relative(from: &Path, next: &Path) -> String {
    from.parent()
        .and_then(|dir| next.strip_prefix(dir).ok())
        .unwrap_or(next)
        .display()
        .to_string()
}

/// The path a version entry names, without loading anything: for `kiln
/// list`, which shows which versions share which manifest.
pub fn shared_manifest(path: &Path) -> Result<VersionEntry, ManifestError> {
    let bytes = std::fs::read(path).map_err(|source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let at = location_in(path);
    let document = yaml::parse_bytes(&bytes, YamlLimits::default())
        .map_err(|e| ManifestError::Spec {
            location: at(e.mark),
            message: e.message,
        })?
        .filter(is_entry)
        .ok_or_else(|| ManifestError::Spec {
            location: at(Mark { line: 1, col: 1 }),
            message: "version entry: a version entry is a map with `manifest: FILE` (and `set:` or `defaults:`)".into(),
        })?;
    resolve(path, &document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_lexically() {
        assert_eq!(
            normalize(Path::new("m/ambari/2.3/../image.yaml")),
            Path::new("m/ambari/image.yaml")
        );
        assert_eq!(normalize(Path::new("../x/./y")), Path::new("../x/y"));
        assert_eq!(normalize(Path::new("/a/../../b")), Path::new("/b"));
    }
}

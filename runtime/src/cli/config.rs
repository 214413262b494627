//! Where manifests come from: `--config-file` INI files in the oslo style
//! Sahara used (later files win, unknown sections and keys ignored, so an
//! existing sahara.conf is accepted), the manifest directories they and the
//! command line name (the `PLUGIN VERSION` lookup inside them is `catalog`'s).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// What kiln reads from config files, in its `[kiln]` section.
#[derive(Debug, Default, Clone)]
pub struct Config {
    /// `manifest_dirs`: comma-separated directories of `PLUGIN/VERSION/image.yaml`.
    pub manifest_dirs: Vec<PathBuf>,
    /// `validator_dirs`: comma-separated directories of third-party validators.
    pub validator_dirs: Vec<PathBuf>,
    /// `resource_roots`: comma-separated extra resource roots.
    pub resource_roots: Vec<PathBuf>,
    /// `accel`: auto, kvm or tcg.
    pub accel: Option<String>,
}

impl Config {
    /// Reads the files in order; a later file's value for a key replaces an
    /// earlier one's. Relative paths are relative to the file that names them.
    pub fn load(files: &[PathBuf]) -> Result<Config> {
        let mut config = Config::default();
        for file in files {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read config file {}", file.display()))?;
            let base = file.parent().unwrap_or(Path::new("."));
            let sections = parse_ini(&text).map_err(|(line, message)| {
                anyhow::anyhow!("{}:{line}: {message}", file.display())
            })?;
            let Some(kiln) = sections.get("kiln") else {
                continue;
            };
            let paths = |value: &String| {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|p| base.join(p))
                    .collect()
            };
            if let Some(v) = kiln.get("manifest_dirs") {
                config.manifest_dirs = paths(v);
            }
            if let Some(v) = kiln.get("validator_dirs") {
                config.validator_dirs = paths(v);
            }
            if let Some(v) = kiln.get("resource_roots") {
                config.resource_roots = paths(v);
            }
            if let Some(v) = kiln.get("accel") {
                config.accel = Some(v.trim().to_string());
            }
        }
        Ok(config)
    }
}

type Sections = BTreeMap<String, BTreeMap<String, String>>;

/// oslo.config's INI: `[section]`, `key = value` or `key: value`, `#` and
/// `;` comments, indented lines continuing the previous value.
pub fn parse_ini(text: &str) -> Result<Sections, (usize, String)> {
    let mut sections = Sections::new();
    let mut section: Option<String> = None;
    let mut last_key: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            if let (Some(s), Some(k)) = (&section, &last_key) {
                let value = sections
                    .get_mut(s)
                    .and_then(|m| m.get_mut(k))
                    .expect("continued key exists");
                value.push('\n');
                value.push_str(trimmed);
                continue;
            }
        }
        if let Some(name) = trimmed.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or((line_no, format!("unclosed section header `{trimmed}`")))?;
            section = Some(name.trim().to_string());
            sections.entry(name.trim().to_string()).or_default();
            last_key = None;
            continue;
        }
        let Some(current) = &section else {
            return Err((line_no, "a key before any [section]".into()));
        };
        let split = trimmed.find(['=', ':']).ok_or((
            line_no,
            format!("expected `key = value`, found `{trimmed}`"),
        ))?;
        let (key, value) = (
            trimmed[..split].trim().to_string(),
            trimmed[split + 1..].trim().to_string(),
        );
        sections
            .get_mut(current)
            .expect("section exists")
            .insert(key.clone(), value);
        last_key = Some(key);
    }
    Ok(sections)
}

/// The manifest directories to search: those given, else the config's, else
/// `./manifests` and the manifests bundled with this kiln's source tree.
pub fn manifest_dirs(given: &[PathBuf], config: &Config) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given.to_vec();
    }
    if !config.manifest_dirs.is_empty() {
        return config.manifest_dirs.clone();
    }
    let mut dirs = vec![PathBuf::from("manifests")];
    // The manifests of the source tree this kiln was built from.
    if let Ok(bundled) = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../manifests")
        .canonicalize()
    {
        if Path::new("manifests").canonicalize().ok().as_ref() != Some(&bundled) {
            dirs.push(bundled);
        }
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_accepts_sahara_conf_shapes() {
        let text = "[DEFAULT]\ndebug = true\n# comment\n[database]\nconnection = mysql://x\n[kiln]\nmanifest_dirs = a, b\naccel: tcg\n  continued\n";
        let sections = parse_ini(text).unwrap();
        assert_eq!(sections["kiln"]["manifest_dirs"], "a, b");
        assert_eq!(sections["kiln"]["accel"], "tcg\ncontinued");
        assert_eq!(parse_ini("key = 1\n").unwrap_err().0, 1);
    }
}

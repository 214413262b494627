//! Where manifests come from: config files in the oslo style Sahara used
//! (`--config-file`s, then each `--config-dir`'s `*.conf` in sorted order,
//! else the default files; later files win; unknown sections and keys are
//! ignored, so an existing sahara.conf is accepted), parsed as oslo.config's
//! iniparser parses them; the manifest directories they and the command
//! line name, and the `PLUGIN VERSION` lookup inside them. The config file
//! also carries Sahara's `[DEFAULT] image` and `test_only`, and kiln's
//! per-type wall-clock limits (`[kiln_limits]`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

/// The files read when no `--config-file` or `--config-dir` is given, each
/// only if it exists: Sahara's own, then kiln's (which wins).
pub const DEFAULT_CONFIG_FILES: [&str; 2] = ["/etc/sahara/sahara.conf", "/etc/kiln/kiln.conf"];

/// Replaces [`DEFAULT_CONFIG_FILES`]: a `:`-separated list of files (empty:
/// none). For tests and for packagers who install kiln elsewhere.
pub const DEFAULT_CONFIG_ENV: &str = "KILN_DEFAULT_CONFIG";

/// What kiln reads from config files.
#[derive(Debug, Default, Clone)]
pub struct Config {
    /// `[kiln] manifest_dirs`: comma-separated directories of `PLUGIN/VERSION/image.yaml`.
    pub manifest_dirs: Vec<PathBuf>,
    /// `[kiln] validator_dirs`: comma-separated directories of third-party validators.
    pub validator_dirs: Vec<PathBuf>,
    /// `[kiln] resource_roots`: comma-separated extra resource roots.
    pub resource_roots: Vec<PathBuf>,
    /// `[kiln] accel`: auto, kvm or tcg.
    pub accel: Option<String>,
    /// `[DEFAULT] image`: sahara-image-pack's `--image`, as given (oslo
    /// does not resolve it against the file), for when the command line
    /// names none.
    pub image: Option<PathBuf>,
    /// `[DEFAULT] test_only`: sahara-image-pack's `--test-only`, for when
    /// the command line says neither `--test-only` nor `--notest-only`.
    pub test_only: Option<bool>,
    /// `[kiln_limits] TYPE = DURATION`: a wall-clock limit for every run of
    /// a validator type, a built-in included; with `FILE:LINE` for messages.
    pub limits: BTreeMap<String, (Duration, String)>,
}

/// The config files to read, in order: the `--config-file`s, then each
/// `--config-dir`'s `*.conf` files in sorted order (as oslo.config reads
/// them); when neither is given, the default files that exist.
pub fn config_files(files: &[PathBuf], dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if files.is_empty() && dirs.is_empty() {
        let defaults: Vec<PathBuf> = match std::env::var_os(DEFAULT_CONFIG_ENV) {
            Some(list) => std::env::split_paths(&list)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            None => DEFAULT_CONFIG_FILES.iter().map(PathBuf::from).collect(),
        };
        return Ok(defaults.into_iter().filter(|p| p.is_file()).collect());
    }
    let mut all = files.to_vec();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).with_context(|| {
            format!("--config-dir {}: cannot read the directory", dir.display())
        })?;
        let mut confs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
            .collect();
        confs.sort();
        all.extend(confs);
    }
    Ok(all)
}

impl Config {
    /// Reads the files in order; a later file's value for a key replaces an
    /// earlier one's. Relative paths are relative to the file that names them.
    pub fn load(files: &[PathBuf]) -> Result<Config> {
        let mut config = Config::default();
        for file in files {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read config file {}", file.display()))?;
            let sections = parse_ini(&text).map_err(|(line, message)| {
                anyhow::anyhow!("{}:{line}: {message}", file.display())
            })?;
            config.read(file, &sections).map_err(|(line, message)| {
                anyhow::anyhow!("{}:{line}: {message}", file.display())
            })?;
        }
        Ok(config)
    }

    /// Takes what kiln reads from one parsed file.
    fn read(&mut self, file: &Path, sections: &Sections) -> Result<(), (usize, String)> {
        let base = file.parent().unwrap_or(Path::new("."));
        let paths = |entry: &Entry| {
            entry
                .value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|p| base.join(p))
                .collect()
        };
        if let Some(kiln) = sections.get("kiln") {
            if let Some(entry) = kiln.get("manifest_dirs") {
                self.manifest_dirs = paths(entry);
            }
            if let Some(entry) = kiln.get("validator_dirs") {
                self.validator_dirs = paths(entry);
            }
            if let Some(entry) = kiln.get("resource_roots") {
                self.resource_roots = paths(entry);
            }
            if let Some(entry) = kiln.get("accel") {
                self.accel = Some(entry.value.trim().to_string());
            }
        }
        if let Some(default) = sections.get("DEFAULT") {
            if let Some(entry) = default.get("image") {
                self.image = Some(PathBuf::from(entry.value.trim()));
            }
            if let Some(entry) = default.get("test_only") {
                self.test_only = Some(kiln::yaml::parse_bool(&entry.value).ok_or((
                    entry.line,
                    format!(
                        "[DEFAULT] test_only must be true or false, found `{}`",
                        entry.value
                    ),
                ))?);
            }
        }
        if let Some(limits) = sections.get("kiln_limits") {
            for (name, entry) in limits {
                let limit = parse_duration(&entry.value)
                    .map_err(|message| (entry.line, format!("[kiln_limits] {name}: {message}")))?;
                let place = format!("{}:{}", file.display(), entry.line);
                self.limits.insert(name.clone(), (limit, place));
            }
        }
        Ok(())
    }
}

/// A duration as `--timeout` and `[kiln_limits]` take it: `90s`, `45m`,
/// `2h`, or plain seconds (`90`); more than zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => 0,
    };
    let number: u64 = number.parse().unwrap_or(0);
    match number.checked_mul(seconds_per) {
        Some(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(format!(
            "`{text}` is not a duration; write a whole number of seconds, minutes or hours above zero, e.g. 90s, 45m, 2h (or 90 for seconds)"
        )),
    }
}

/// A value and the line its key is on (for messages about the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub value: String,
    pub line: usize,
}

type Sections = BTreeMap<String, BTreeMap<String, Entry>>;

/// An INI file as oslo.config's iniparser reads it (sahara.conf's parser):
///
/// - `[section]`, its name as written between the brackets (not trimmed);
///   `[]` and a header without `]` are errors;
/// - `key = value` or `key: value`, split at whichever of `=` and `:` comes
///   first; an empty key is an error;
/// - one pair of matching quotes (`"..."` or `'...'`) around a value is
///   removed: `manifest_dirs = "mdir"` names `mdir`;
/// - an indented line continues the value above it (joined with a line
///   break), even when it starts with `#`; a blank line, a comment or a
///   new key ends the value, and an indented line with no value to
///   continue is an error;
/// - `#` and `;` start a comment only in the first column.
///
/// A key given twice in a section keeps its last value.
pub fn parse_ini(text: &str) -> Result<Sections, (usize, String)> {
    let mut sections = Sections::new();
    let mut section: Option<String> = None;
    // The section and key whose value indented lines continue.
    let mut open: Option<(String, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            open = None;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some((open_section, key)) = &open else {
                return Err((
                    line_no,
                    format!(
                        "unexpected continuation line `{}`: no value above it to continue",
                        line.trim_start()
                    ),
                ));
            };
            if let Some(entry) = sections.get_mut(open_section).and_then(|m| m.get_mut(key)) {
                entry.value.push('\n');
                entry.value.push_str(line.trim_start());
            }
            continue;
        }
        open = None;
        if line.starts_with('[') {
            let name = line
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .ok_or((
                    line_no,
                    format!("invalid section header `{line}` (it must end with `]`)"),
                ))?;
            if name.is_empty() {
                return Err((line_no, "empty section name `[]`".into()));
            }
            sections.entry(name.to_string()).or_default();
            section = Some(name.to_string());
            continue;
        }
        if line.starts_with(['#', ';']) {
            continue;
        }
        let (key, value) = split_assignment(line).ok_or((
            line_no,
            format!("expected `key = value` or `key: value`, found `{line}`"),
        ))?;
        if key.is_empty() {
            return Err((
                line_no,
                format!("empty key in `{line}`; write `key = value`"),
            ));
        }
        let Some(current) = &section else {
            return Err((
                line_no,
                "a key before any [section]; put it under [DEFAULT] or [kiln]".into(),
            ));
        };
        sections.entry(current.clone()).or_default().insert(
            key.to_string(),
            Entry {
                value,
                line: line_no,
            },
        );
        open = Some((current.clone(), key.to_string()));
    }
    Ok(sections)
}

/// `key = value` or `key: value`, split at the first `=` or `:`; the value
/// trimmed and, when one pair of the same quotes surrounds it, unquoted.
fn split_assignment(line: &str) -> Option<(&str, String)> {
    let split = line.find(['=', ':'])?;
    let key = line[..split].trim();
    let value = line[split + 1..].trim();
    // oslo removes one pair of equal quotes, a lone quote becoming empty.
    let first = value.chars().next();
    let value = match first {
        Some(quote @ ('"' | '\'')) if value.ends_with(quote) => {
            value.get(1..value.len() - 1).unwrap_or_default()
        }
        _ => value,
    };
    Some((key, value.to_string()))
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

    fn value(text: &str, section: &str, key: &str) -> String {
        parse_ini(text).unwrap()[section][key].value.clone()
    }

    #[test]
    fn ini_accepts_sahara_conf_shapes() {
        let text = "[DEFAULT]\ndebug = true\n# comment\n[database]\nconnection = mysql://x\n[kiln]\nmanifest_dirs = a, b\naccel: tcg\n  continued\n";
        let sections = parse_ini(text).unwrap();
        assert_eq!(sections["kiln"]["manifest_dirs"].value, "a, b");
        assert_eq!(sections["kiln"]["accel"].value, "tcg\ncontinued");
        assert_eq!(sections["kiln"]["accel"].line, 8);
        assert_eq!(parse_ini("key = 1\n").unwrap_err().0, 1);
    }

    #[test]
    fn ini_strips_one_pair_of_matching_quotes() {
        assert_eq!(value("[k]\na = \"mdir\"\n", "k", "a"), "mdir");
        assert_eq!(value("[k]\na = 'mdir'\n", "k", "a"), "mdir");
        assert_eq!(value("[k]\na = \"\"\n", "k", "a"), "");
        // Only a matching pair, and only around the whole value.
        assert_eq!(value("[k]\na = \"mdir'\n", "k", "a"), "\"mdir'");
        assert_eq!(value("[k]\na = x \"y\"\n", "k", "a"), "x \"y\"");
        assert_eq!(value("[k]\na = \"\"x\"\"\n", "k", "a"), "\"x\"");
    }

    #[test]
    fn ini_a_blank_line_ends_a_continuation() {
        let text = "[k]\na = one\n  two\n\n  three\n";
        let error = parse_ini(text).unwrap_err();
        assert_eq!(error.0, 5, "{error:?}");
        assert!(error.1.contains("continuation"), "{error:?}");
        assert_eq!(
            value("[k]\na = one\n  two\n\nb = 2\n", "k", "a"),
            "one\ntwo"
        );
        // A comment ends it too.
        assert!(parse_ini("[k]\na = one\n# c\n  two\n").is_err());
    }

    #[test]
    fn ini_comments_only_in_the_first_column() {
        // Indented under a value, `#` and `;` lines are part of the value.
        let text = "[k]\na = one\n  # two\n\t; three\n";
        assert_eq!(value(text, "k", "a"), "one\n# two\n; three");
        // With no value above, an indented comment is an error, as in oslo.
        assert!(parse_ini("[k]\n  # indented\n").is_err());
        let text = "# top\n; also\n[k]\n#a = 1\n;b = 2\nc = 3 # not a comment\n";
        let sections = parse_ini(text).unwrap();
        assert_eq!(sections["k"].len(), 1);
        assert_eq!(sections["k"]["c"].value, "3 # not a comment");
    }

    #[test]
    fn ini_refuses_empty_keys_and_bad_headers_with_their_line() {
        for (text, line, words) in [
            ("[k]\n= 1\n", 2, "empty key"),
            ("[k]\nok = 1\n: x\n", 3, "empty key"),
            ("[k]\n[]\n", 2, "empty section"),
            ("[k\n", 1, "must end with"),
            ("[k]\nnovalue\n", 2, "key = value"),
        ] {
            let error = parse_ini(text).unwrap_err();
            assert_eq!(error.0, line, "{text:?}: {error:?}");
            assert!(error.1.contains(words), "{text:?}: {error:?}");
        }
        // `=` or `:`, whichever comes first, splits.
        assert_eq!(value("[k]\nurl = http://x\n", "k", "url"), "http://x");
        assert_eq!(value("[k]\nurl: a=b\n", "k", "url"), "a=b");
    }

    #[test]
    fn durations_as_the_operator_writes_them() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("45m"), Ok(Duration::from_secs(45 * 60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration(" 90 "), Ok(Duration::from_secs(90)));
        for bad in [
            "",
            "0",
            "0s",
            "1.5h",
            "5x",
            "h",
            "-3s",
            "99999999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

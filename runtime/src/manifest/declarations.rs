//! The `validator_types` section: third-party validator types a manifest
//! brings, each a `.wasm` component with the grants it is given, and
//! limits-only declarations (`script: {limits: {seconds: 1800}}`, no
//! `wasm`) that change the limits of a type kiln already has, a built-in
//! included, and nothing else.
//!
//! ```yaml
//! validator_types:
//!   file_content:
//!     wasm: validators/file_content.wasm   # relative to the manifest
//!     sha256: 3f1c...                      # optional; a mismatch refuses the run
//!     grants: [exec, write-file, read-file]
//!     commands: ["systemctl **"]          # optional: narrows exec
//!     env: [PATH]                          # optional: sensitive env names it may pass
//!     paths:                               # optional: narrow read-file and write-file
//!       read: ["/etc/app/**"]
//!       write: ["/etc/app/*.conf"]
//!     overrides: false                     # may it replace a built-in?
//!     limits: {seconds: 60, memory_mib: 32, log_kib: 256, output_mib: 4,
//!              argument_kib: 64, nested_reruns: 4}
//! ```

use std::path::Path;
use std::time::Duration;

use crate::host::{ComponentSource, Grant, Grants, Limits, TypeDeclaration};
use crate::yaml::{Mark, Yaml, YamlKind};

type Problem = (Mark, String);

/// One entry of `validator_types`.
#[derive(Debug)]
pub(super) enum Declared {
    /// A type with its component: a new one, or a built-in's replacement.
    Type(TypeDeclaration),
    /// `NAME: {limits: {...}}` without `wasm`: new limits for a type kiln
    /// already has (a built-in, or one from `--validators`), with its
    /// component and grants unchanged.
    Limits { name: String, limits: LimitSettings },
}

/// Each declaration with the mark of its name.
pub(super) fn parse(section: &Yaml, base_dir: &Path) -> Result<Vec<(Mark, Declared)>, Problem> {
    let YamlKind::Map(entries) = &section.kind else {
        return Err((
            section.mark,
            "`validator_types` must be a map from type name to its declaration".into(),
        ));
    };
    entries
        .iter()
        .map(|(key, body)| {
            let name = key.as_str().ok_or((
                key.mark,
                "a validator type name must be a string".to_string(),
            ))?;
            let declared = match limits_only(name, body)? {
                Some(limits) => Declared::Limits {
                    name: name.to_string(),
                    limits,
                },
                None => Declared::Type(declaration(name, body, base_dir)?),
            };
            Ok((key.mark, declared))
        })
        .collect()
}

/// The limits of a declaration that has `limits` and no `wasm`. Such a
/// declaration can only tighten or loosen limits: anything that would
/// change what a type may do (its grants) needs a component of its own.
fn limits_only(name: &str, body: &Yaml) -> Result<Option<LimitSettings>, Problem> {
    let YamlKind::Map(entries) = &body.kind else {
        return Ok(None);
    };
    let key = |entry: &(Yaml, Yaml)| entry.0.as_str().unwrap_or("").to_string();
    if entries.iter().any(|e| key(e) == "wasm") {
        return Ok(None);
    }
    let Some((_, value)) = entries.iter().find(|e| key(e) == "limits") else {
        return Ok(None);
    };
    if let Some((other, _)) = entries.iter().find(|e| key(e) != "limits") {
        return Err((
            other.mark,
            format!(
                "validator type `{name}`: without `wasm`, a declaration sets only the `limits` of a type kiln already has, found `{}`; to change what a built-in may do, replace it (`wasm:` and `overrides: true`)",
                other.as_str().unwrap_or("?")
            ),
        ));
    }
    limits(value)
        .map(Some)
        .map_err(|(m, message)| (m, format!("validator type `{name}`: {message}")))
}

/// Parses one declaration body (also used for `--validators DIR` sidecars).
pub fn declaration(name: &str, body: &Yaml, base_dir: &Path) -> Result<TypeDeclaration, Problem> {
    let at = |m: Mark, message: String| (m, format!("validator type `{name}`: {message}"));
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || name.is_empty()
    {
        return Err(at(
            body.mark,
            "a type name uses letters, digits, `_` and `-`".into(),
        ));
    }
    let YamlKind::Map(entries) = &body.kind else {
        return Err(at(
            body.mark,
            format!(
                "the declaration must be a map with `wasm` and `grants`, found {}",
                body.kind_name()
            ),
        ));
    };
    let mut wasm = None;
    let mut sha256 = None;
    let mut overrides_builtin = false;
    let mut type_limits = Limits::THIRD_PARTY;
    let mut patterns = Vec::new();
    let mut env_names = Vec::new();
    let mut paths = (Vec::new(), Vec::new());
    let mut granted = Vec::new();
    for (key, value) in entries {
        match key.as_str().unwrap_or("") {
            "wasm" => wasm = Some(text(value).map_err(|m| at(value.mark, m))?),
            "sha256" => {
                let digest = text(value).map_err(|m| at(value.mark, m))?;
                if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(at(value.mark, "sha256 must be 64 hexadecimal digits".into()));
                }
                sha256 = Some(digest.to_ascii_lowercase());
            }
            "grants" => {
                for item in list(value).map_err(|m| at(value.mark, m))? {
                    let grant: Grant = text(item).and_then(|t| t.parse()).map_err(|m| at(item.mark, m))?;
                    granted.push(grant);
                }
            }
            "commands" => {
                for item in list(value).map_err(|m| at(value.mark, m))? {
                    patterns.push(text(item).map_err(|m| at(item.mark, m))?);
                }
            }
            "env" => {
                for item in list(value).map_err(|m| at(value.mark, m))? {
                    let name = text(item).map_err(|m| at(item.mark, m))?;
                    if !crate::host::grants::is_identifier(&name) {
                        return Err(at(item.mark, format!("`{name}` is not an environment name (letters, digits and `_`, not starting with a digit)")));
                    }
                    env_names.push(name);
                }
            }
            "paths" => paths = path_patterns(value).map_err(|(m, message)| at(m, message))?,
            "overrides" => {
                let word = text(value).map_err(|m| at(value.mark, m))?;
                overrides_builtin = crate::yaml::parse_bool(&word).ok_or_else(|| {
                    at(value.mark, format!("overrides must be true or false, found `{word}`"))
                })?;
            }
            "limits" => {
                type_limits = limits(value)
                    .map_err(|(m, message)| at(m, message))?
                    .apply(Limits::THIRD_PARTY)
            }
            other => {
                return Err(at(key.mark, format!("unknown key `{other}` (known: wasm, sha256, grants, commands, env, paths, overrides, limits)")))
            }
        }
    }
    let Some(wasm) = wasm else {
        return Err(at(
            body.mark,
            "needs `wasm: PATH` (the component file, relative to the manifest)".into(),
        ));
    };
    if !patterns.is_empty() && !granted.contains(&Grant::Exec) {
        return Err(at(
            body.mark,
            "`commands` narrows the `exec` grant, which is not granted".into(),
        ));
    }
    if !env_names.is_empty() && !granted.contains(&Grant::Exec) {
        return Err(at(
            body.mark,
            "`env` allows environment names for the `exec` grant, which is not granted".into(),
        ));
    }
    let (read_paths, write_paths) = paths;
    for (list, grant, key) in [
        (&read_paths, Grant::ReadFile, "read"),
        (&write_paths, Grant::WriteFile, "write"),
    ] {
        if !list.is_empty() && !granted.contains(&grant) {
            return Err(at(
                body.mark,
                format!("`paths.{key}` narrows the `{grant}` grant, which is not granted"),
            ));
        }
    }
    let mut grants = Grants::new(granted).with_command_patterns(patterns);
    grants.env_names = env_names;
    grants.read_paths = read_paths;
    grants.write_paths = write_paths;
    Ok(TypeDeclaration {
        name: name.to_string(),
        source: ComponentSource::File(base_dir.join(wasm)),
        sha256,
        grants,
        limits: type_limits,
        overrides_builtin,
    })
}

/// `paths: {read: [PATTERN, ...], write: [PATTERN, ...]}`; every pattern an
/// absolute path in which `*` and `**` may stand for parts of it.
fn path_patterns(value: &Yaml) -> Result<(Vec<String>, Vec<String>), Problem> {
    let YamlKind::Map(entries) = &value.kind else {
        return Err((
            value.mark,
            "paths must be a map with `read` and/or `write` lists of path patterns".into(),
        ));
    };
    let (mut read, mut write) = (Vec::new(), Vec::new());
    for (key, value) in entries {
        let into = match key.as_str().unwrap_or("") {
            "read" => &mut read,
            "write" => &mut write,
            other => {
                return Err((
                    key.mark,
                    format!("unknown key `{other}` in paths (known: read, write)"),
                ))
            }
        };
        for item in list(value).map_err(|m| (value.mark, m))? {
            let pattern = text(item).map_err(|m| (item.mark, m))?;
            let sample = pattern.replace("**", "x").replace(['*', '?'], "x");
            if !crate::host::grants::is_plain_absolute_path(&sample) {
                return Err((
                    item.mark,
                    format!("path pattern `{pattern}` must be an absolute path without `.`, `..` or empty parts, e.g. /etc/app/*.conf"),
                ));
            }
            into.push(pattern);
        }
    }
    Ok((read, write))
}

/// The limits a declaration sets, each applied over a base: the
/// third-party defaults for a new type, the type's own limits for a
/// limits-only declaration of a type kiln already has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitSettings {
    pub wall_clock: Option<Duration>,
    pub memory_bytes: Option<usize>,
    pub log_bytes: Option<usize>,
    pub command_output_bytes: Option<usize>,
    pub argument_bytes: Option<usize>,
    pub nested_reruns: Option<u32>,
}

impl LimitSettings {
    /// `base` with every limit these settings name replaced.
    pub fn apply(&self, base: Limits) -> Limits {
        Limits {
            wall_clock: self.wall_clock.or(base.wall_clock),
            memory_bytes: self.memory_bytes.unwrap_or(base.memory_bytes),
            log_bytes: self.log_bytes.unwrap_or(base.log_bytes),
            command_output_bytes: self
                .command_output_bytes
                .unwrap_or(base.command_output_bytes),
            argument_bytes: self.argument_bytes.unwrap_or(base.argument_bytes),
            nested_reruns: self.nested_reruns.unwrap_or(base.nested_reruns),
        }
    }
}

fn limits(value: &Yaml) -> Result<LimitSettings, Problem> {
    let YamlKind::Map(entries) = &value.kind else {
        return Err((
            value.mark,
            "limits must be a map (seconds, milliseconds, memory_mib, log_kib, output_mib, argument_kib, nested_reruns)".into(),
        ));
    };
    let mut limits = LimitSettings::default();
    for (key, value) in entries {
        let number: u64 = text(value)
            .and_then(|t| {
                t.parse()
                    .map_err(|_| format!("`{t}` is not a whole number"))
            })
            .map_err(|m| (value.mark, m))?;
        let number = number.max(1);
        match key.as_str().unwrap_or("") {
            "seconds" => limits.wall_clock = Some(Duration::from_secs(number)),
            "milliseconds" => limits.wall_clock = Some(Duration::from_millis(number)),
            "memory_mib" => limits.memory_bytes = Some(mebibytes(number, 20).map_err(|m| (value.mark, m))?),
            "log_kib" => limits.log_bytes = Some(mebibytes(number, 10).map_err(|m| (value.mark, m))?),
            "output_mib" => limits.command_output_bytes = Some(mebibytes(number, 20).map_err(|m| (value.mark, m))?),
            "argument_kib" => limits.argument_bytes = Some(mebibytes(number, 10).map_err(|m| (value.mark, m))?),
            "nested_reruns" => limits.nested_reruns = Some(u32::try_from(number).unwrap_or(u32::MAX)),
            other => {
                return Err((key.mark, format!("unknown limit `{other}` (known: seconds, milliseconds, memory_mib, log_kib, output_mib, argument_kib, nested_reruns)")))
            }
        }
    }
    Ok(limits)
}

/// `number` KiB (shift 10) or MiB (shift 20) in bytes, refusing sizes past
/// 1 TiB rather than wrapping around to a small limit.
fn mebibytes(number: u64, shift: u32) -> Result<usize, String> {
    number
        .checked_shl(shift)
        .filter(|bytes| *bytes <= 1 << 40)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or_else(|| format!("`{number}` is larger than a limit can be (1 TiB)"))
}

fn text(value: &Yaml) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("expected a string, found {}", value.kind_name()))
}

fn list(value: &Yaml) -> Result<&[Yaml], String> {
    match &value.kind {
        YamlKind::Seq(items) => Ok(items),
        _ => Err(format!("expected a list, found {}", value.kind_name())),
    }
}

/// The third-party types in a `--validators DIR`: each `NAME.wasm` with a
/// `NAME.yaml` beside it holding its declaration (the same keys as in a
/// manifest's `validator_types`, `wasm` optional).
pub fn validator_dir(dir: &Path) -> Result<Vec<TypeDeclaration>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read validator directory {}: {e}", dir.display()))?;
    let mut wasm_files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    wasm_files.sort();
    let mut declarations = Vec::new();
    for wasm in wasm_files {
        let name = wasm
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let sidecar = wasm.with_extension("yaml");
        let text = std::fs::read_to_string(&sidecar).map_err(|e| {
            format!(
                "{}: every validator needs a declaration beside it ({}: {e}) naming its grants",
                wasm.display(),
                sidecar.display()
            )
        })?;
        let located =
            |(mark, message): Problem| format!("{}:{}: {message}", sidecar.display(), mark);
        let body = crate::yaml::parse(&text, Default::default())
            .map_err(|e| located((e.mark, e.message)))?
            .ok_or_else(|| format!("{}: the declaration is empty", sidecar.display()))?;
        let mut body = body;
        if body.get("wasm").is_none() {
            if let YamlKind::Map(entries) = &mut body.kind {
                let file = wasm
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let mark = Mark::default();
                entries.push((
                    Yaml {
                        kind: YamlKind::Scalar("wasm".into()),
                        mark,
                    },
                    Yaml {
                        kind: YamlKind::Scalar(file),
                        mark,
                    },
                ));
            }
        }
        declarations.push(declaration(&name, &body, dir).map_err(located)?);
    }
    Ok(declarations)
}

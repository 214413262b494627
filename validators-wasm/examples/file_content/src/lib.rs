//! `file_content`, an example third-party validator type: a file on the
//! target holds exactly the given text. In test-only mode it reads the file
//! and fails when it is missing or differs; when reconciling it writes the
//! file (with `mode`, default 0644) only when it differs. Grants it needs:
//! `read-file` and `write-file`. The mode is applied when writing; it is not
//! checked, because `read-file` returns only the contents.
//!
//! ```yaml
//! - file_content:
//!     path: /etc/motd
//!     content: "Authorised use only.\n"
//!     mode: "0644"
//! ```

use kiln_validator_sdk::{
    expect_str, export_validator, host, kind_of, leaf_plan, parse_spec, pointer_key, spec_error,
    Guest, Plan, SpecError, Value,
};

struct FileContent;

/// A checked spec.
struct Spec {
    path: String,
    content: String,
    mode: u32,
}

const DEFAULT_MODE: u32 = 0o644;
const KNOWN_KEYS: &str = "path, content, mode";

impl Guest for FileContent {
    fn check(spec: String) -> Result<Plan, SpecError> {
        let spec = parse(&parse_spec(&spec)?)?;
        Ok(leaf_plan(format!(
            "{} holds {} bytes (mode {:04o})",
            spec.path,
            spec.content.len(),
            spec.mode
        )))
    }

    fn run(spec: String, test_only: bool) -> Result<(), String> {
        // kiln checked this spec when the manifest loaded; a failure here
        // would mean kiln sent something else, so the message is enough.
        let spec = parse_spec(&spec).and_then(|v| parse(&v))?;
        let found = host::read_file(&spec.path)?;
        let wanted = spec.content.as_bytes();
        if found.as_deref() == Some(wanted) {
            return Ok(());
        }
        if test_only {
            return Err(match found {
                None => format!("{} is missing", spec.path),
                Some(found) => format!(
                    "{} differs from the manifest ({} bytes on the target, {} expected)",
                    spec.path,
                    found.len(),
                    wanted.len()
                ),
            });
        }
        host::write_file(&spec.path, wanted, spec.mode)?;
        host::note_change(&format!("wrote {}", spec.path));
        Ok(())
    }
}

/// Checks the spec map, pointing at the offending key or value.
fn parse(spec: &Value) -> Result<Spec, SpecError> {
    let Value::Object(map) = spec else {
        return Err(spec_error(
            "",
            format!(
                "file_content needs a map with path and content, found {}",
                kind_of(spec)
            ),
        ));
    };
    let (mut path, mut content, mut mode) = (None, None, DEFAULT_MODE);
    for (key, value) in map {
        let pointer = pointer_key("", key);
        match key.as_str() {
            "path" => {
                path = Some(checked_path(
                    expect_str(value, &pointer, "path")?,
                    &pointer,
                )?)
            }
            "content" => content = Some(expect_str(value, &pointer, "content")?.to_string()),
            "mode" => mode = checked_mode(expect_str(value, &pointer, "mode")?, &pointer)?,
            other => {
                return Err(spec_error(
                    &pointer,
                    format!("unknown key `{other}` (known: {KNOWN_KEYS})"),
                ))
            }
        }
    }
    let path =
        path.ok_or_else(|| spec_error("", "file_content needs `path`, the file's absolute path"))?;
    let content = content
        .ok_or_else(|| spec_error("", "file_content needs `content`, the file's exact text"))?;
    Ok(Spec {
        path,
        content,
        mode,
    })
}

fn checked_path(path: &str, pointer: &str) -> Result<String, SpecError> {
    if !path.starts_with('/') {
        return Err(spec_error(
            pointer,
            format!("path `{path}` must be absolute"),
        ));
    }
    if path.ends_with('/') || path.contains('\0') {
        return Err(spec_error(
            pointer,
            format!("path `{path}` must name a file"),
        ));
    }
    Ok(path.to_string())
}

/// An octal mode such as `0644` or `644`; YAML hands every scalar over as a
/// string, so `mode: 0644` arrives as "0644".
fn checked_mode(text: &str, pointer: &str) -> Result<u32, SpecError> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if (3..=4).contains(&digits.len()) && mode <= 0o7777 => Ok(mode),
        _ => Err(spec_error(
            pointer,
            format!("mode `{text}` is not an octal file mode like 0644"),
        )),
    }
}

export_validator!(FileContent);

//! The kiln validator SDK: the generated bindings for the `kiln:validator`
//! WIT package plus the small helpers every validator type needs (reading a
//! spec, pointing at a place in it, quoting for the shell).
//!
//! A validator crate is a `cdylib` built for `wasm32-wasip2`:
//!
//! ```ignore
//! use kiln_validator_sdk::{export_validator, Guest, Plan, SpecError};
//! struct MyType;
//! impl Guest for MyType {
//!     fn check(spec: String) -> Result<Plan, SpecError> { /* … */ }
//!     fn run(spec: String, test_only: bool) -> Result<(), String> { /* … */ }
//! }
//! export_validator!(MyType);
//! ```

// `wit/validator.wit` inside this crate is a link to the repository's
// `wit/validator.wit`, so the SDK builds wherever it is depended on from (a
// path or git dependency) while the contract keeps one canonical text.
wit_bindgen::generate!({
    world: "validator-type",
    path: "wit",
    pub_export_macro: true,
    export_macro_name: "export_validator",
    default_bindings_module: "kiln_validator_sdk",
});

pub use exports::kiln::validator::validator::Guest;
pub use kiln::validator::host;
pub use kiln::validator::types::{
    BlockShape, CommandOutput, LogLevel, NestedBlock, Plan, ResourceRef, SpecError,
};
pub use serde_json::{Map, Value};

/// In `run`, a spec problem is just the error message (so `?` works).
impl From<SpecError> for String {
    fn from(error: SpecError) -> String {
        error.message
    }
}

/// Parses the spec kiln hands to `check` and `run`.
pub fn parse_spec(spec: &str) -> Result<Value, SpecError> {
    serde_json::from_str(spec)
        .map_err(|e| spec_error("", format!("kiln sent a spec that is not JSON: {e}")))
}

/// A spec error at `pointer` (a JSON pointer relative to the spec).
pub fn spec_error(pointer: &str, message: impl Into<String>) -> SpecError {
    SpecError {
        pointer: pointer.to_string(),
        message: message.into(),
    }
}

/// Extends a JSON pointer by one object key, escaping it as RFC 6901 says.
pub fn pointer_key(base: &str, key: &str) -> String {
    format!("{base}/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// Extends a JSON pointer by one array index.
pub fn pointer_index(base: &str, index: usize) -> String {
    format!("{base}/{index}")
}

/// A short name for a JSON value's kind, for error messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// The string at `pointer`, or a spec error saying what was found instead.
pub fn expect_str<'a>(value: &'a Value, pointer: &str, what: &str) -> Result<&'a str, SpecError> {
    value.as_str().ok_or_else(|| {
        spec_error(
            pointer,
            format!("{what} must be a string, found {}", kind_of(value)),
        )
    })
}

/// The single `(key, value)` of a one-key map, or a spec error.
pub fn single_entry<'a>(
    value: &'a Value,
    pointer: &str,
    what: &str,
) -> Result<(&'a String, &'a Value), SpecError> {
    match value {
        Value::Object(map) if map.len() == 1 => Ok(map.iter().next().expect("one entry")),
        Value::Object(map) => Err(spec_error(
            pointer,
            format!(
                "{what} must be a map with exactly one key, found {} keys",
                map.len()
            ),
        )),
        other => Err(spec_error(
            pointer,
            format!(
                "{what} must be a map with exactly one key, found {}",
                kind_of(other)
            ),
        )),
    }
}

/// Quotes `word` for a POSIX shell so that it is passed as one literal word.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:+,@%".contains(&b))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Runs `command` on the target and turns a non-zero exit into an error that
/// carries the command's own message.
pub fn run_checked(command: &str, env: &[(String, String)]) -> Result<CommandOutput, String> {
    let output = host::run_command(command, env)?;
    if output.exit_code == 0 {
        Ok(output)
    } else {
        Err(failure_message(command, &output))
    }
}

/// "`cmd` exited with 1: <the telling line of stderr, else stdout>".
pub fn failure_message(command: &str, output: &CommandOutput) -> String {
    let detail = telling_line(&output.stderr).or_else(|| telling_line(&output.stdout));
    match detail {
        Some(line) => format!("`{command}` exited with {}: {line}", output.exit_code),
        None => format!("`{command}` exited with {}", output.exit_code),
    }
}

/// The most telling line of a command's output: a line that reads like an
/// error (tools print hints after them: `dpkg -s` ends with "Use dpkg
/// --info ..."), else the last line.
fn telling_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let telling = |line: &&&str| {
        let lower = line.to_ascii_lowercase();
        line.starts_with("E:")
            || [
                "error",
                "not installed",
                "not found",
                "no such",
                "unable to",
                "failed",
                "denied",
            ]
            .iter()
            .any(|needle| lower.contains(needle))
    };
    let line = lines.iter().rev().find(telling).or(lines.last())?;
    Some(line.chars().take(300).collect())
}

/// One `single` nested block per element of a list spec (`any`, `all`).
pub fn single_blocks(count: usize) -> Vec<NestedBlock> {
    (0..count)
        .map(|i| NestedBlock {
            pointer: pointer_index("", i),
            shape: BlockShape::Single,
        })
        .collect()
}

/// Parses the spec in `run`, where a problem is a plain error message
/// (`check` already accepted this spec, so it is kiln's fault if it fails).
pub fn parse_run_spec(spec: &str) -> Result<Value, String> {
    Ok(parse_spec(spec)?)
}

/// Logs at info level.
pub fn info(message: &str) {
    host::log(LogLevel::Info, message);
}

/// The plan of a type with no nested blocks and no resources.
pub fn leaf_plan(summary: impl Into<String>) -> Plan {
    Plan {
        nested: Vec::new(),
        resources: Vec::new(),
        summary: summary.into(),
    }
}

/// Parses a boolean-ish spec scalar the way YAML 1.1 users write them: the
/// same words kiln itself accepts in manifests and config files
/// (`kiln::yaml::parse_bool`).
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

pub mod script_spec;

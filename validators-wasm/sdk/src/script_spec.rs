//! The spec shape shared by `script` and `copy_script`: a resource path, or a
//! one-key map from a path or friendly name to options given as a map or as a
//! list of one-key maps.

use crate::{expect_str, host, kind_of, pointer_index, pointer_key, spec_error, SpecError, Value};

/// A parsed `script` / `copy_script` spec.
pub struct ScriptSpec {
    /// The resource path, or with `inline` a friendly name.
    pub name: String,
    /// Where the name stands in the spec, for resource errors.
    pub path_pointer: String,
    pub env_vars: Vec<String>,
    pub output: Option<String>,
    pub inline: Option<String>,
}

impl ScriptSpec {
    /// The resource the spec names, unless the script is inline.
    pub fn resources(&self) -> Vec<crate::ResourceRef> {
        match &self.inline {
            Some(_) => Vec::new(),
            None => vec![crate::ResourceRef {
                pointer: self.path_pointer.clone(),
                path: self.name.clone(),
            }],
        }
    }

    /// The script text: the inline text or the resource's bytes.
    pub fn contents(&self) -> Result<Vec<u8>, String> {
        match &self.inline {
            Some(text) => Ok(text.clone().into_bytes()),
            None => host::read_resource(&self.name),
        }
    }
}

/// Parses a spec; `allow_env_vars` is false for `copy_script`, which passes
/// no environment.
pub fn parse(spec: &Value, allow_env_vars: bool) -> Result<ScriptSpec, SpecError> {
    let (name, options, path_pointer) = match spec {
        Value::String(path) => (path.clone(), None, String::new()),
        Value::Object(map) if map.len() == 1 => {
            let (name, options) = map.iter().next().expect("one entry");
            (name.clone(), Some(options), pointer_key("", name))
        }
        Value::Object(map) => {
            return Err(spec_error("", format!("expected a script path or a one-key map `path: {{options}}`, found a map with {} keys", map.len())))
        }
        other => return Err(spec_error("", format!("expected a script path or a one-key map `path: {{options}}`, found {}", kind_of(other)))),
    };
    if name.trim().is_empty() {
        return Err(spec_error(&path_pointer, "the script path is empty"));
    }
    let mut parsed = ScriptSpec {
        name,
        path_pointer: path_pointer.clone(),
        env_vars: Vec::new(),
        output: None,
        inline: None,
    };
    if let Some(options) = options {
        for (key, value, pointer) in option_entries(options, &path_pointer)? {
            apply_option(&mut parsed, key, value, &pointer, allow_env_vars)?;
        }
    }
    Ok(parsed)
}

/// The options as (key, value, pointer), from a map or a list of one-key maps.
fn option_entries<'a>(
    options: &'a Value,
    base: &str,
) -> Result<Vec<(&'a str, &'a Value, String)>, SpecError> {
    match options {
        Value::Null => Ok(Vec::new()),
        Value::Object(map) => Ok(map
            .iter()
            .map(|(k, v)| (k.as_str(), v, pointer_key(base, k)))
            .collect()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let item_ptr = pointer_index(base, i);
                match item {
                    Value::Object(map) if map.len() == 1 => {
                        let (k, v) = map.iter().next().expect("one entry");
                        Ok((k.as_str(), v, pointer_key(&item_ptr, k)))
                    }
                    other => Err(spec_error(
                        &item_ptr,
                        format!(
                            "each option in the list must be a one-key map, found {}",
                            kind_of(other)
                        ),
                    )),
                }
            })
            .collect(),
        other => Err(spec_error(
            base,
            format!("script options must be a map, found {}", kind_of(other)),
        )),
    }
}

fn apply_option(
    spec: &mut ScriptSpec,
    key: &str,
    value: &Value,
    pointer: &str,
    allow_env_vars: bool,
) -> Result<(), SpecError> {
    match key {
        "env_vars" | "arguments" if allow_env_vars => {
            let items = value.as_array().ok_or_else(|| {
                spec_error(
                    pointer,
                    format!(
                        "{key} must be a list of argument names, found {}",
                        kind_of(value)
                    ),
                )
            })?;
            for (i, item) in items.iter().enumerate() {
                spec.env_vars.push(
                    expect_str(item, &pointer_index(pointer, i), "an argument name")?.to_string(),
                );
            }
        }
        "output" => {
            let name = expect_str(value, pointer, "output")?;
            if name.is_empty() {
                return Err(spec_error(pointer, "output must name an argument"));
            }
            spec.output = Some(name.to_string());
        }
        "inline" => {
            let text = expect_str(value, pointer, "inline")?;
            if text.is_empty() {
                return Err(spec_error(pointer, "inline script text is empty"));
            }
            spec.inline = Some(text.to_string());
        }
        other => {
            let known = if allow_env_vars {
                "env_vars, arguments, output, inline"
            } else {
                "output, inline"
            };
            return Err(spec_error(
                pointer,
                format!("unknown option `{other}` (known: {known})"),
            ));
        }
    }
    Ok(())
}

/// A stable 64-bit FNV-1a fingerprint, for naming temporary files.
pub fn fingerprint(name: &str, contents: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes().chain([0u8]).chain(contents.iter().copied()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

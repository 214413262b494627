//! The `arguments` section: name → description, default, required, choices,
//! hidden. Sahara's rules: `distro` and `test_only` are reserved, an argument
//! that is not required needs a default, a default must be one of the
//! choices. The section may be a map or, as the guide shows, a list of
//! one-key maps.

use crate::yaml::{Mark, Yaml, YamlKind};

/// A declared argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argument {
    pub name: String,
    pub description: String,
    pub default: Option<String>,
    pub required: bool,
    /// Empty when any value is allowed.
    pub choices: Vec<String>,
    /// Left out of `--help`.
    pub hidden: bool,
    pub mark: Mark,
}

impl Argument {
    /// Whether `value` is one this argument takes: any value when it
    /// declares no choices, else one of them.
    pub fn allows(&self, value: &str) -> bool {
        self.choices.is_empty() || self.choices.iter().any(|choice| choice == value)
    }
}

const RESERVED: [&str; 2] = ["distro", "test_only"];
const FIELDS: [&str; 5] = ["description", "default", "required", "choices", "hidden"];

type Problem = (Mark, String);

pub(super) fn parse(section: &Yaml) -> Result<Vec<Argument>, Problem> {
    let mut arguments: Vec<Argument> = Vec::new();
    for (key, props) in entries(section)? {
        let name = key
            .as_str()
            .ok_or((key.mark, "an argument name must be a string".to_string()))?;
        if arguments.iter().any(|a| a.name == name) {
            return Err((key.mark, format!("argument `{name}` is declared twice")));
        }
        arguments.push(argument(name, key.mark, props)?);
    }
    Ok(arguments)
}

/// The (name, properties) pairs of a map or of a list of one-key maps.
fn entries(section: &Yaml) -> Result<Vec<(&Yaml, &Yaml)>, Problem> {
    match &section.kind {
        YamlKind::Null => Ok(Vec::new()),
        YamlKind::Map(entries) => Ok(entries.iter().map(|(k, v)| (k, v)).collect()),
        YamlKind::Seq(items) => items
            .iter()
            .map(|item| match &item.kind {
                YamlKind::Map(entries) if entries.len() == 1 => Ok((&entries[0].0, &entries[0].1)),
                _ => Err((
                    item.mark,
                    format!(
                        "each item of `arguments` must be a one-key map `name: {{...}}`, found {}",
                        item.kind_name()
                    ),
                )),
            })
            .collect(),
        YamlKind::Scalar(_) => Err((
            section.mark,
            "`arguments` must be a map from argument name to its properties".into(),
        )),
    }
}

fn argument(name: &str, mark: Mark, props: &Yaml) -> Result<Argument, Problem> {
    let at = |m: Mark, message: String| (m, format!("argument `{name}`: {message}"));
    if RESERVED.contains(&name) {
        return Err(at(
            mark,
            format!("`{name}` is reserved: kiln sets it for every run; choose another name"),
        ));
    }
    let mut argument = Argument {
        name: name.to_string(),
        description: String::new(),
        default: None,
        required: false,
        choices: Vec::new(),
        hidden: false,
        mark,
    };
    let entries: &[(Yaml, Yaml)] = match &props.kind {
        YamlKind::Map(entries) => entries,
        YamlKind::Null => &[],
        _ => {
            return Err(at(
                props.mark,
                format!(
                    "properties must be a map (description, default, ...), found {}",
                    props.kind_name()
                ),
            ))
        }
    };
    for (key, value) in entries {
        let field = key.as_str().unwrap_or("");
        match field {
            "description" => {
                argument.description = scalar(value)
                    .ok_or_else(|| at(value.mark, "description must be text".into()))?
            }
            "default" => {
                argument.default = Some(
                    scalar(value)
                        .ok_or_else(|| at(value.mark, "default must be a single value".into()))?,
                )
            }
            "required" => {
                argument.required =
                    boolean(value).map_err(|m| at(value.mark, format!("required {m}")))?
            }
            "hidden" => {
                argument.hidden =
                    boolean(value).map_err(|m| at(value.mark, format!("hidden {m}")))?
            }
            "choices" => {
                argument.choices = choices(value).map_err(|(m, message)| at(m, message))?
            }
            other => {
                return Err(at(
                    key.mark,
                    format!("unknown property `{other}` (known: {})", FIELDS.join(", ")),
                ));
            }
        }
    }
    if !argument.required && argument.default.is_none() {
        return Err(at(
            mark,
            "an argument that is not required needs a default (add `default:` or `required: true`)"
                .into(),
        ));
    }
    if let Some(default) = &argument.default {
        if !argument.allows(default) {
            let default_mark = props.get("default").map(|d| d.mark).unwrap_or(mark);
            return Err(at(
                default_mark,
                format!(
                    "default `{default}` is not one of the choices ({})",
                    argument.choices.join(", ")
                ),
            ));
        }
    }
    Ok(argument)
}

fn scalar(value: &Yaml) -> Option<String> {
    value.as_str().map(str::to_string)
}

fn boolean(value: &Yaml) -> Result<bool, String> {
    let text = value.as_str().unwrap_or("");
    crate::yaml::parse_bool(text).ok_or_else(|| format!("must be true or false, found `{text}`"))
}

fn choices(value: &Yaml) -> Result<Vec<String>, Problem> {
    let YamlKind::Seq(items) = &value.kind else {
        return Err((
            value.mark,
            format!(
                "choices must be a list of values, found {}",
                value.kind_name()
            ),
        ));
    };
    items
        .iter()
        .map(|item| {
            scalar(item).ok_or((item.mark, "each choice must be a single value".to_string()))
        })
        .collect()
}

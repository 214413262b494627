//! Ansible's INI inventory: `[group]` sections of host lines with
//! `KEY=VALUE` variables, `[group:vars]` and `[group:children]` sections,
//! `#` and `;` comments, shell-like quoting. Lines are read one by one into
//! the shared model; every error names its line.

use super::{is_comment, split_words, LineError, Model, Var, Vars};

/// Which kind of section an INI line opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

/// `[name]`, `[name:vars]` or `[name:children]`; `None` for other lines,
/// including `[::1]:22`. An unknown `:kind` is reported by the INI parser.
pub(super) fn section_header(line: &str) -> Option<Result<Section, String>> {
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    let (name, kind) = match inner.split_once(':') {
        Some((name, kind)) => (name, Some(kind)),
        None => (inner, None),
    };
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !valid_name {
        return None;
    }
    Some(match kind {
        None => Ok(Section::Hosts(name.to_string())),
        Some("vars") => Ok(Section::Vars(name.to_string())),
        Some("children") => Ok(Section::Children(name.to_string())),
        Some(other) => Err(format!(
            "unknown section kind `:{other}` (expected `:vars` or `:children`)"
        )),
    })
}

/// Ansible's INI inventory.
pub(super) fn parse_ini(text: &str) -> Result<Model, LineError> {
    let mut model = Model::default();
    let mut section = Section::Hosts("ungrouped".into());
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || is_comment(trimmed) {
            continue;
        }
        if let Some(header) = section_header(trimmed) {
            section = header.map_err(|message| (line, message))?;
            let (Section::Hosts(name) | Section::Vars(name) | Section::Children(name)) = &section;
            model.group(name);
            continue;
        }
        match &section {
            Section::Hosts(group) => parse_ini_host_line(&mut model, group, raw, line)?,
            Section::Vars(group) => {
                let (key, value) = trimmed.split_once('=').ok_or_else(|| {
                    (
                        line,
                        format!("expected KEY=VALUE in [{group}:vars], found `{trimmed}`"),
                    )
                })?;
                let var = Var {
                    value: unquote(value.trim()),
                    line,
                };
                model.group(group).vars.insert(key.trim().to_string(), var);
            }
            Section::Children(group) => {
                let words = split_words(raw).map_err(|message| (line, message))?;
                let [child] = words.as_slice() else {
                    return Err((
                        line,
                        format!("expected one group name per line in [{group}:children]"),
                    ));
                };
                model.group(child);
                model.group(group).children.push(child.clone());
            }
        }
    }
    Ok(model)
}

/// `HOST-PATTERN [KEY=VALUE ...]`.
fn parse_ini_host_line(
    model: &mut Model,
    group: &str,
    raw: &str,
    line: usize,
) -> Result<(), LineError> {
    let words = split_words(raw).map_err(|message| (line, message))?;
    let Some((pattern, assignments)) = words.split_first() else {
        return Ok(());
    };
    let mut vars = Vars::new();
    for assignment in assignments {
        let (key, value) = assignment
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| {
                (
                    line,
                    format!("expected KEY=VALUE after the host, found `{assignment}`"),
                )
            })?;
        vars.insert(
            key.to_string(),
            Var {
                value: value.to_string(),
                line,
            },
        );
    }
    model.add_host(group, pattern, vars, line)
}

fn unquote(value: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use crate::inventory::testing::{error_of, specs};
    use crate::inventory::{detect_format, parse_inventory, InventoryFormat};

    #[test]
    fn ini_applies_host_group_parent_and_all_vars() {
        let text = "\
ungrouped1 ansible_port=2201
[web]
web[01:03] ansible_user=deploy
web9 ansible_host=127.0.0.9 ansible_port=\"2209\"   # comment

[db]
db-[a:b].example.com

[db:vars]
ansible_port=5522

[prod:children]
web
db

[prod:vars]
ansible_user = ops

[all:vars]
ansible_port=22
";
        assert_eq!(detect_format("inv", text), InventoryFormat::AnsibleIni);
        assert_eq!(
            parse_inventory("inv", text).unwrap(),
            specs(&[
                "ungrouped1:2201",
                "deploy@web01:22",
                "deploy@web02:22",
                "deploy@web03:22",
                "ops@127.0.0.9:2209",
                "ops@db-a.example.com:5522",
                "ops@db-b.example.com:5522",
            ])
        );
    }

    #[test]
    fn ini_hosts_in_two_groups_come_back_once() {
        let text = "[a]\nh1\nh2\n[b]\nh1 ansible_user=x\n";
        assert_eq!(
            parse_inventory("x.ini", text).unwrap(),
            specs(&["x@h1", "h2"])
        );
    }

    #[test]
    fn ini_errors_name_file_and_line() {
        assert_eq!(
            error_of("inv.ini", "[web]\nweb1\nweb2 ansible_port\n"),
            "inv.ini:3: expected KEY=VALUE after the host, found `ansible_port`"
        );
        assert_eq!(
            error_of("inv.ini", "[web:hosts]\n"),
            "inv.ini:1: unknown section kind `:hosts` (expected `:vars` or `:children`)"
        );
        assert_eq!(
            error_of("inv.ini", "[web]\nw1\n[web:vars]\nansible_port=http\n"),
            "inv.ini:4: `http` is not a port (1 to 65535)"
        );
        assert!(error_of("inv.ini", "[web]\nweb[03:01]\n")
            .starts_with("inv.ini:2: `[03:01]`: the range runs backwards"));
        assert!(error_of("inv.ini", "[web]\nw1 ansible_user='x\n").contains("inv.ini:2: unclosed"));
    }
}

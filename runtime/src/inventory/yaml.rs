//! Ansible's YAML inventory: top-level groups, each with optional `hosts`
//! (name -> vars), `vars` and `children` (name -> group). The text is read
//! by [`crate::yaml`], the reader the manifest uses, so an inventory gets
//! the same positions in its errors and the same bounds on hostile input
//! (nesting, and the nodes aliases expand to); aliases work as Ansible's
//! own YAML loader lets them.

use crate::yaml::{self as reader, Yaml, YamlKind, YamlLimits};

use super::{LineError, Model, Var, Vars};

/// Groups nest at most this deep under `children`.
const MAX_GROUP_DEPTH: usize = 64;

/// The reader's bounds for an inventory. The file is the user's own and
/// was never size-limited, so there is no byte limit; the depth leaves
/// room for [`MAX_GROUP_DEPTH`] groups (two YAML levels each) so that
/// limit keeps its own message; the node count allows a 50,000-host
/// inventory with a few variables each and still stops an alias bomb
/// after a few million nodes.
const INVENTORY_LIMITS: YamlLimits = YamlLimits {
    max_bytes: usize::MAX,
    max_depth: 2 * MAX_GROUP_DEPTH + 16,
    max_nodes: 2_000_000,
};

/// Reads the text as Ansible's YAML inventory into the shared model.
pub(super) fn parse_yaml(text: &str) -> Result<Model, LineError> {
    let root =
        reader::parse(text, INVENTORY_LIMITS).map_err(|error| (error.mark.line, error.message))?;
    let mut model = Model::default();
    let Some(root) = root else {
        return Ok(model);
    };
    for (name, body) in entries(&root, "the inventory")? {
        let name = scalar(name, "a group name")?;
        read_yaml_group(&mut model, name, body, 0)?;
    }
    Ok(model)
}

fn read_yaml_group(
    model: &mut Model,
    group: &str,
    body: &Yaml,
    depth: usize,
) -> Result<(), LineError> {
    if depth > MAX_GROUP_DEPTH {
        return Err((body.mark.line, "groups nest too deep".into()));
    }
    model.group(group);
    for (key, value) in entries(body, &format!("group `{group}`"))? {
        match scalar(key, "a group key")? {
            "hosts" => {
                for (host, vars) in entries(value, "`hosts`")? {
                    let pattern = scalar(host, "a host name")?;
                    let vars = read_yaml_vars(vars, &format!("host `{pattern}`"))?;
                    model.add_host(group, pattern, vars, host.mark.line)?;
                }
            }
            "vars" => {
                let vars = read_yaml_vars(value, &format!("`vars` of `{group}`"))?;
                model.group(group).vars.extend(vars);
            }
            "children" => {
                for (child, child_body) in entries(value, "`children`")? {
                    let child = scalar(child, "a group name")?;
                    model.group(group).children.push(child.to_string());
                    read_yaml_group(model, child, child_body, depth + 1)?;
                }
            }
            other => {
                return Err((key.mark.line, format!("unexpected key `{other}` in group `{group}` (expected hosts, vars or children)")))
            }
        }
    }
    Ok(())
}

/// A vars mapping; values that are not plain (lists, maps) are kept out,
/// since no variable kiln reads can hold one.
fn read_yaml_vars(node: &Yaml, what: &str) -> Result<Vars, LineError> {
    let mut vars = Vars::new();
    for (key, value) in entries(node, what)? {
        let key = scalar(key, "a variable name")?;
        if let YamlKind::Scalar(text) = &value.kind {
            vars.insert(
                key.to_string(),
                Var {
                    value: text.clone(),
                    line: value.mark.line,
                },
            );
        }
    }
    Ok(vars)
}

/// The entries of a mapping; a null value counts as an empty mapping.
fn entries<'a>(node: &'a Yaml, what: &str) -> Result<&'a [(Yaml, Yaml)], LineError> {
    match &node.kind {
        YamlKind::Map(entries) => Ok(entries),
        YamlKind::Null => Ok(&[]),
        _ => Err((node.mark.line, format!("{what} must be a mapping"))),
    }
}

/// A plain (non-null) scalar's text.
fn scalar<'a>(node: &'a Yaml, what: &str) -> Result<&'a str, LineError> {
    node.as_str()
        .ok_or_else(|| (node.mark.line, format!("{what} must be a plain value")))
}

#[cfg(test)]
mod tests {
    use crate::inventory::testing::{error_of, specs};
    use crate::inventory::{detect_format, parse_inventory, InventoryFormat};

    #[test]
    fn yaml_groups_children_and_vars() {
        let text = "\
all:
  hosts:
    solo:
  vars:
    ansible_user: root
  children:
    web:
      hosts:
        web[1:2]:
          ansible_port: 2222
        web3:
          ansible_host: 127.0.0.3
      vars:
        ansible_user: deploy
    db:
      hosts:
        db1.example.com:2200: {}
";
        assert_eq!(
            detect_format("inventory", text),
            InventoryFormat::AnsibleYaml
        );
        assert_eq!(
            parse_inventory("inventory", text).unwrap(),
            specs(&[
                "root@solo",
                "deploy@web1:2222",
                "deploy@web2:2222",
                "deploy@127.0.0.3",
                "root@db1.example.com:2200"
            ])
        );
    }

    #[test]
    fn yaml_errors_name_file_and_line() {
        assert_eq!(
            error_of("inv.yml", "all:\n  hosts:\n    a:\n  host:\n    b:\n"),
            "inv.yml:4: unexpected key `host` in group `all` (expected hosts, vars or children)"
        );
        assert_eq!(
            error_of(
                "inv.yml",
                "all:\n  hosts:\n    a:\n      ansible_port: 70000\n"
            ),
            "inv.yml:4: `70000` is not a port (1 to 65535)"
        );
        assert!(error_of("inv.yml", "all:\n  hosts: [a, b]\n")
            .starts_with("inv.yml:2: `hosts` must be a mapping"));
        assert!(error_of("inv.yml", "all:\n  hosts:\n    a: {\n").starts_with("inv.yml:"));
    }

    #[test]
    fn yaml_alias_bombs_are_refused_by_the_node_limit() {
        // Billion laughs: each level lists the one above ten times, so the
        // last one stands for 10^12 values if aliases were expanded freely.
        let mut text = String::from("all:\n  vars:\n    l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n");
        for level in 1..12 {
            let above = format!("*l{}", level - 1);
            let items = [above.as_str(); 10].join(", ");
            text.push_str(&format!("    l{level}: &l{level} [{items}]\n"));
        }
        text.push_str("  hosts:\n    web1:\n");
        let error = error_of("inv.yml", &text);
        assert!(error.starts_with("inv.yml:"), "{error}");
        assert!(error.contains("alias bomb"), "{error}");
        assert_eq!(error.lines().count(), 1, "{error}");
    }

    #[test]
    fn yaml_aliases_share_vars_as_in_ansible() {
        let text = "\
all:
  children:
    web:
      hosts:
        web1: &deploy
          ansible_user: deploy
          ansible_port: 2222
        web2: *deploy
";
        assert_eq!(
            parse_inventory("inv.yml", text).unwrap(),
            specs(&["deploy@web1:2222", "deploy@web2:2222"])
        );
    }

    #[test]
    fn yaml_groups_nest_at_most_64_deep() {
        let mut text = String::from("all:\n");
        let mut indent = String::from("  ");
        for level in 0..66 {
            text.push_str(&format!("{indent}children:\n{indent}  g{level}:\n"));
            indent.push_str("    ");
        }
        text.push_str(&format!("{indent}hosts:\n{indent}  deep1:\n"));
        let error = error_of("inv.yml", &text);
        assert!(error.contains("groups nest too deep"), "{error}");
    }
}

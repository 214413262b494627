//! Ansible's YAML inventory: top-level groups, each with optional `hosts`
//! (name -> vars), `vars` and `children` (name -> group), read from
//! yaml-rust2's events into a small tree that remembers lines.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{LineError, Model, Var, Vars};

/// A YAML node with the line it starts on.
#[derive(Debug)]
enum Node {
    Scalar {
        value: String,
        null: bool,
        line: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        line: usize,
    },
    Seq {
        line: usize,
    },
}

impl Node {
    fn line(&self) -> usize {
        match self {
            Node::Scalar { line, .. } | Node::Map { line, .. } | Node::Seq { line } => *line,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { null: true, .. })
    }

    /// The entries of a mapping; a null value counts as an empty mapping.
    fn entries(&self, what: &str) -> Result<&[(Node, Node)], LineError> {
        match self {
            Node::Map { entries, .. } => Ok(entries),
            node if node.is_null() => Ok(&[]),
            node => Err((node.line(), format!("{what} must be a mapping"))),
        }
    }

    fn scalar(&self, what: &str) -> Result<&str, LineError> {
        match self {
            Node::Scalar {
                value, null: false, ..
            } => Ok(value),
            node => Err((node.line(), format!("{what} must be a plain value"))),
        }
    }
}

/// Collects yaml-rust2's events into [`Node`]s that remember their lines.
#[derive(Default)]
struct TreeBuilder {
    stack: Vec<(Node, Option<Node>)>,
    root: Option<Node>,
    alias_line: Option<usize>,
}

impl TreeBuilder {
    fn attach(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some((Node::Map { entries, .. }, pending_key)) => match pending_key.take() {
                Some(key) => entries.push((key, node)),
                None => *pending_key = Some(node),
            },
            // Sequence items are never needed in an inventory; only their
            // presence (reported as "must be a mapping") matters.
            Some(_) => {}
        }
    }
}

impl MarkedEventReceiver for TreeBuilder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(value, style, _, _) => {
                let null = style == TScalarStyle::Plain
                    && matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL");
                self.attach(Node::Scalar { value, null, line });
            }
            Event::MappingStart(..) => self.stack.push((
                Node::Map {
                    entries: Vec::new(),
                    line,
                },
                None,
            )),
            Event::SequenceStart(..) => self.stack.push((Node::Seq { line }, None)),
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some((node, _)) = self.stack.pop() {
                    self.attach(node);
                }
            }
            Event::Alias(_) => {
                self.alias_line.get_or_insert(line);
            }
            _ => {}
        }
    }
}

/// Ansible's YAML inventory: top-level groups, each with optional `hosts`
/// (name -> vars), `vars` and `children` (name -> group).
pub(super) fn parse_yaml(text: &str) -> Result<Model, LineError> {
    let mut builder = TreeBuilder::default();
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|error| (error.marker().line(), error.info().to_string()))?;
    if let Some(line) = builder.alias_line {
        return Err((
            line,
            "YAML aliases (*name) are not supported in inventories".into(),
        ));
    }
    let mut model = Model::default();
    let Some(root) = builder.root else {
        return Ok(model);
    };
    for (name, body) in root.entries("the inventory")? {
        let name = name.scalar("a group name")?;
        read_yaml_group(&mut model, name, body, 0)?;
    }
    Ok(model)
}

fn read_yaml_group(
    model: &mut Model,
    group: &str,
    body: &Node,
    depth: usize,
) -> Result<(), LineError> {
    if depth > 64 {
        return Err((body.line(), "groups nest too deep".into()));
    }
    model.group(group);
    for (key, value) in body.entries(&format!("group `{group}`"))? {
        match key.scalar("a group key")? {
            "hosts" => {
                for (host, vars) in value.entries("`hosts`")? {
                    let pattern = host.scalar("a host name")?;
                    let vars = read_yaml_vars(vars, &format!("host `{pattern}`"))?;
                    model.add_host(group, pattern, vars, host.line())?;
                }
            }
            "vars" => {
                let vars = read_yaml_vars(value, &format!("`vars` of `{group}`"))?;
                model.group(group).vars.extend(vars);
            }
            "children" => {
                for (child, child_body) in value.entries("`children`")? {
                    let child = child.scalar("a group name")?;
                    model.group(group).children.push(child.to_string());
                    read_yaml_group(model, child, child_body, depth + 1)?;
                }
            }
            other => {
                return Err((key.line(), format!("unexpected key `{other}` in group `{group}` (expected hosts, vars or children)")))
            }
        }
    }
    Ok(())
}

/// A vars mapping; values that are not plain (lists, maps) are kept out,
/// since no variable kiln reads can hold one.
fn read_yaml_vars(node: &Node, what: &str) -> Result<Vars, LineError> {
    let mut vars = Vars::new();
    for (key, value) in node.entries(what)? {
        let key = key.scalar("a variable name")?;
        if let Node::Scalar {
            value: text,
            null: false,
            line,
        } = value
        {
            vars.insert(
                key.to_string(),
                Var {
                    value: text.clone(),
                    line: *line,
                },
            );
        }
    }
    Ok(vars)
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
}

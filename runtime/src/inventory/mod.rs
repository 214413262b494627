//! Inventories: the hosts `--inventory FILE` names, as [`HostSpec`]s. Three
//! formats are read, told apart by extension and then by content: a plain
//! list (one `[USER@]HOST[:PORT]` per line, `#` comments), Ansible INI
//! (`[group]`, `host ansible_host=... ansible_port=... ansible_user=...`,
//! `[group:vars]`, `[group:children]`, ranges like `web[01:03]`) and Ansible
//! YAML (`all: {hosts, vars, children}`). Variables resolve the way Ansible
//! does it: host, then the nearest group, then its ancestors, then `all`.
//! Hosts listed twice come back once, in order of first appearance, and
//! every error names FILE:LINE.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::remote::ssh::host_spec::{check_host, check_user, parse_port, HostSpec};

/// More hosts than this from one range pattern is surely a typo.
const MAX_RANGE_HOSTS: usize = 10_000;

/// Why an inventory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: the inventory names no hosts")]
    Empty { file: String },
}

/// The inventory formats kiln reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryFormat {
    PlainList,
    AnsibleIni,
    AnsibleYaml,
}

/// Reads the inventory at `path`.
pub fn load_inventory(path: &Path) -> Result<Vec<HostSpec>, InventoryError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        file: file.clone(),
        source,
    })?;
    parse_inventory(&file, &text)
}

/// Parses inventory `text`; `file` names it in errors and its extension
/// helps tell the format.
pub fn parse_inventory(file: &str, text: &str) -> Result<Vec<HostSpec>, InventoryError> {
    let error = |line: usize, message: String| InventoryError::Syntax {
        file: file.to_string(),
        line,
        message,
    };
    let model = match detect_format(file, text) {
        InventoryFormat::PlainList => parse_plain_list(text),
        InventoryFormat::AnsibleIni => parse_ini(text),
        InventoryFormat::AnsibleYaml => parse_yaml(text),
    }
    .map_err(|(line, message)| error(line, message))?;
    let hosts = model
        .resolve()
        .map_err(|(line, message)| error(line, message))?;
    if hosts.is_empty() {
        return Err(InventoryError::Empty {
            file: file.to_string(),
        });
    }
    Ok(hosts)
}

/// Tells the format from the extension, else from the content: YAML starts
/// with `---` or a `key:` line, INI has a `[group]` header or `key=value`s.
pub fn detect_format(file: &str, text: &str) -> InventoryFormat {
    let extension = Path::new(file)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match extension.as_str() {
        "yml" | "yaml" => return InventoryFormat::AnsibleYaml,
        "ini" => return InventoryFormat::AnsibleIni,
        _ => {}
    }
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !is_comment(line));
    if let Some(first) = lines.clone().next() {
        if first == "---" || (first.ends_with(':') && !first.contains(char::is_whitespace)) {
            return InventoryFormat::AnsibleYaml;
        }
    }
    if lines.any(|line| section_header(line).is_some() || line.contains('=')) {
        InventoryFormat::AnsibleIni
    } else {
        InventoryFormat::PlainList
    }
}

fn is_comment(line: &str) -> bool {
    line.starts_with('#') || line.starts_with(';')
}

/// A parse error: line number and message, turned into FILE:LINE later.
type LineError = (usize, String);

/// A variable's value and the line it was set on.
#[derive(Debug, Clone)]
struct Var {
    value: String,
    line: usize,
}

type Vars = HashMap<String, Var>;

#[derive(Debug, Default)]
struct Group {
    hosts: HashSet<String>,
    children: Vec<String>,
    vars: Vars,
}

/// A host as the inventory names it, before variables are applied.
#[derive(Debug)]
struct HostEntry {
    name: String,
    user: Option<String>,
    port: Option<u16>,
    vars: Vars,
}

/// Hosts and groups from either Ansible format (or a plain list).
#[derive(Debug, Default)]
struct Model {
    hosts: Vec<HostEntry>,
    /// Where each host name stands in `hosts`: a range expands to
    /// thousands of hosts, and scanning the list for each is quadratic.
    host_index: HashMap<String, usize>,
    groups: HashMap<String, Group>,
}

impl Model {
    /// Adds a host line's host to `group`, merging it with an earlier mention.
    fn add_host(
        &mut self,
        group: &str,
        pattern: &str,
        vars: Vars,
        line: usize,
    ) -> Result<(), LineError> {
        for name in expand_ranges(pattern).map_err(|message| (line, message))? {
            let spec = name
                .parse::<HostSpec>()
                .map_err(|error| (line, error.to_string()))?;
            self.groups
                .entry(group.to_string())
                .or_default()
                .hosts
                .insert(spec.host.clone());
            match self.host_index.get(&spec.host) {
                Some(&index) => {
                    let entry = &mut self.hosts[index];
                    entry.vars.extend(vars.clone());
                    entry.user = spec.user.or(entry.user.take());
                    entry.port = spec.port.or(entry.port);
                }
                None => {
                    self.host_index.insert(spec.host.clone(), self.hosts.len());
                    self.hosts.push(HostEntry {
                        name: spec.host,
                        user: spec.user,
                        port: spec.port,
                        vars: vars.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_string()).or_default()
    }

    /// Groups holding `host`, nearest first: its own groups, then their
    /// ancestors breadth-first, then `all`, as Ansible ranks group vars.
    fn groups_of<'a>(
        &'a self,
        host: &str,
        parents: &HashMap<&'a str, Vec<&'a str>>,
    ) -> Vec<&'a str> {
        let mut order: Vec<&str> = self
            .groups
            .iter()
            .filter(|(_, group)| group.hosts.contains(host))
            .map(|(name, _)| name.as_str())
            .collect();
        order.sort_unstable();
        let mut seen: HashSet<&str> = order.iter().copied().collect();
        let mut next = 0;
        while next < order.len() {
            for parent in parents.get(order[next]).into_iter().flatten() {
                if seen.insert(parent) {
                    order.push(parent);
                }
            }
            next += 1;
        }
        order.retain(|name| *name != "all");
        order.push("all");
        order
    }

    /// Each group's parents (the groups that list it as a child), sorted.
    fn parents(&self) -> HashMap<&str, Vec<&str>> {
        let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
        for (name, group) in &self.groups {
            for child in &group.children {
                parents
                    .entry(child.as_str())
                    .or_default()
                    .push(name.as_str());
            }
        }
        for list in parents.values_mut() {
            list.sort_unstable();
        }
        parents
    }

    fn lookup<'a>(
        &'a self,
        entry: &'a HostEntry,
        groups: &[&str],
        names: &[&str],
    ) -> Option<&'a Var> {
        let scopes = std::iter::once(&entry.vars).chain(
            groups
                .iter()
                .filter_map(|g| self.groups.get(*g).map(|g| &g.vars)),
        );
        for vars in scopes {
            if let Some(var) = names.iter().find_map(|name| vars.get(*name)) {
                return Some(var);
            }
        }
        None
    }

    /// Applies `ansible_host`, `ansible_port` and `ansible_user` to every
    /// host and drops duplicates.
    fn resolve(&self) -> Result<Vec<HostSpec>, LineError> {
        let mut specs: Vec<HostSpec> = Vec::new();
        let mut seen: HashSet<HostSpec> = HashSet::new();
        let parents = self.parents();
        for entry in &self.hosts {
            let groups = self.groups_of(&entry.name, &parents);
            let host = match self.lookup(entry, &groups, &["ansible_host", "ansible_ssh_host"]) {
                Some(var) => {
                    check_host(&var.value).map_err(|message| (var.line, message))?;
                    var.value.clone()
                }
                None => entry.name.clone(),
            };
            let port = match self.lookup(entry, &groups, &["ansible_port", "ansible_ssh_port"]) {
                Some(var) => Some(parse_port(&var.value).map_err(|message| (var.line, message))?),
                None => entry.port,
            };
            let user = match self.lookup(entry, &groups, &["ansible_user", "ansible_ssh_user"]) {
                Some(var) => {
                    check_user(&var.value).map_err(|message| (var.line, message))?;
                    Some(var.value.clone())
                }
                None => entry.user.clone(),
            };
            let spec = HostSpec { user, host, port };
            if seen.insert(spec.clone()) {
                specs.push(spec);
            }
        }
        Ok(specs)
    }
}

/// Expands Ansible range patterns: `web[01:03]` -> web01, web02, web03;
/// `db-[a:c]`; `[1:9:2]` steps. A bracket that is no range (an IPv6
/// address as in `[::1]:22`) is left alone.
fn expand_ranges(pattern: &str) -> Result<Vec<String>, String> {
    let mut search_from = 0;
    while let Some(open) = pattern[search_from..].find('[').map(|i| i + search_from) {
        let Some(close) = pattern[open..].find(']').map(|i| i + open) else {
            break;
        };
        if let Some(items) = range_items(&pattern[open + 1..close])? {
            let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
            let mut hosts = Vec::new();
            for item in items {
                hosts.extend(expand_ranges(&format!("{head}{item}{tail}"))?);
                if hosts.len() > MAX_RANGE_HOSTS {
                    return Err(format!(
                        "`{pattern}` expands to more than {MAX_RANGE_HOSTS} hosts"
                    ));
                }
            }
            return Ok(hosts);
        }
        search_from = close + 1;
    }
    Ok(vec![pattern.to_string()])
}

/// The items of `START:END[:STEP]` (numbers, zero-padded like START, or
/// single letters); `None` when `inner` is not a range at all.
fn range_items(inner: &str) -> Result<Option<Vec<String>>, String> {
    let parts: Vec<&str> = inner.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts[0].is_empty() || parts[1].is_empty() {
        return Ok(None);
    }
    let step = match parts.get(2) {
        Some(step) => match step.parse::<usize>() {
            Ok(step) if step > 0 => step,
            _ => return Err(format!("`[{inner}]`: the step must be a positive number")),
        },
        None => 1,
    };
    let (start, end) = (parts[0], parts[1]);
    let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let letter = |s: &str| s.len() == 1 && s.bytes().all(|b| b.is_ascii_alphabetic());
    if numeric(start) && numeric(end) {
        let (Ok(first), Ok(last)) = (start.parse::<usize>(), end.parse::<usize>()) else {
            return Err(format!("`[{inner}]`: numbers too large"));
        };
        if first > last {
            return Err(format!("`[{inner}]`: the range runs backwards"));
        }
        if (last - first) / step >= MAX_RANGE_HOSTS {
            return Err(format!(
                "`[{inner}]` expands to more than {MAX_RANGE_HOSTS} hosts"
            ));
        }
        let width = if start.starts_with('0') {
            start.len()
        } else {
            0
        };
        return Ok(Some(
            (first..=last)
                .step_by(step)
                .map(|n| format!("{n:0width$}"))
                .collect(),
        ));
    }
    if letter(start) && letter(end) {
        let (first, last) = (start.as_bytes()[0], end.as_bytes()[0]);
        if first > last {
            return Err(format!("`[{inner}]`: the range runs backwards"));
        }
        return Ok(Some(
            (first..=last)
                .step_by(step)
                .map(|b| char::from(b).to_string())
                .collect(),
        ));
    }
    if numeric(start) || letter(start) {
        return Err(format!(
            "`[{inner}]`: a range is START:END of numbers or of single letters"
        ));
    }
    Ok(None)
}

/// One `[USER@]HOST[:PORT]` per line; `#` starts a comment.
fn parse_plain_list(text: &str) -> Result<Model, LineError> {
    let mut model = Model::default();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let words = split_words(raw).map_err(|message| (line, message))?;
        match words.as_slice() {
            [] => {}
            [host] => model.add_host("ungrouped", host, Vars::new(), line)?,
            _ => {
                return Err((
                    line,
                    format!(
                        "expected one [USER@]HOST[:PORT] per line, found `{}`",
                        raw.trim()
                    ),
                ))
            }
        }
    }
    Ok(model)
}

/// Which kind of section an INI line opens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

/// `[name]`, `[name:vars]` or `[name:children]`; `None` for other lines,
/// including `[::1]:22`. An unknown `:kind` is reported by the INI parser.
fn section_header(line: &str) -> Option<Result<Section, String>> {
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
fn parse_ini(text: &str) -> Result<Model, LineError> {
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

/// Splits a line into words like a shell would, honouring single and double
/// quotes; an unquoted `#` at the start of a word begins a comment.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, '#') if word.is_none() => break,
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(q) = quote {
        return Err(format!("unclosed {q} quote"));
    }
    words.extend(word);
    Ok(words)
}

fn unquote(value: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    value.to_string()
}

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
fn parse_yaml(text: &str) -> Result<Model, LineError> {
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
    use super::*;

    fn spec(text: &str) -> HostSpec {
        text.parse().unwrap()
    }

    fn specs(texts: &[&str]) -> Vec<HostSpec> {
        texts.iter().map(|t| spec(t)).collect()
    }

    fn error_of(file: &str, text: &str) -> String {
        parse_inventory(file, text)
            .expect_err("should fail")
            .to_string()
    }

    #[test]
    fn plain_lists_hold_one_host_per_line() {
        let text = "# fleet\nweb1\nroot@10.0.0.5:2222  # db\n\n[::1]:2200\nweb1\n";
        assert_eq!(detect_format("hosts", text), InventoryFormat::PlainList);
        assert_eq!(
            parse_inventory("hosts", text).unwrap(),
            specs(&["web1", "root@10.0.0.5:2222", "[::1]:2200"])
        );
    }

    #[test]
    fn plain_list_errors_name_file_and_line() {
        assert_eq!(
            error_of("hosts", "web1\nweb2 web3\n"),
            "hosts:2: expected one [USER@]HOST[:PORT] per line, found `web2 web3`"
        );
        assert!(error_of("hosts", "web1\n\nweb2:99999\n").starts_with("hosts:3: "));
        assert_eq!(
            error_of("hosts", "# nothing\n"),
            "hosts: the inventory names no hosts"
        );
    }

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

    #[test]
    fn large_ranges_cost_linear_time() {
        // Found by fuzzing: a 95-byte inventory expanding to 7,602 hosts took
        // 12 s, as every host was looked up by scanning every other one.
        // Ten such lines (50,000 hosts, 5,000 of them listed twice) took
        // minutes; now well under a second in a release build.
        let mut text = String::from("[web]\n");
        for line in 0..10 {
            text.push_str(&format!("web{line}-[0:4999] ansible_user=u\n"));
        }
        text.push_str("[db]\nweb0-[0:4999] ansible_port=2200\n[all:vars]\nansible_port=22\n");
        let started = std::time::Instant::now();
        let hosts = parse_inventory("inv.ini", &text).unwrap();
        assert_eq!(hosts.len(), 50_000);
        assert_eq!(hosts[0], spec("u@web0-0:2200"));
        assert_eq!(hosts[49_999], spec("u@web9-4999:22"));
        // A sanity bound only (debug build, shared machine), far below the
        // minutes the quadratic lookups took.
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
    }

    #[test]
    fn ranges_pad_and_step() {
        assert_eq!(expand_ranges("n[08:10]").unwrap(), ["n08", "n09", "n10"]);
        assert_eq!(expand_ranges("n[1:5:2]x").unwrap(), ["n1x", "n3x", "n5x"]);
        assert_eq!(
            expand_ranges("r[a:b]c[1:2]").unwrap(),
            ["rac1", "rac2", "rbc1", "rbc2"]
        );
        assert_eq!(expand_ranges("[::1]:22").unwrap(), ["[::1]:22"]);
        assert!(expand_ranges("n[0:99999999]").is_err());
    }

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

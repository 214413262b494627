//! Inventories: the hosts `--inventory FILE` names, as [`HostSpec`]s. Three
//! formats are read, told apart by extension and then by content: a plain
//! list (one `[USER@]HOST[:PORT]` per line, `#` comments), Ansible INI
//! (`[group]`, `host ansible_host=... ansible_port=... ansible_user=...`,
//! `[group:vars]`, `[group:children]`, ranges like `web[01:03]`) and Ansible
//! YAML (`all: {hosts, vars, children}`). Variables resolve the way Ansible
//! does it: host, then the nearest group, then its ancestors, then `all`.
//! Hosts listed twice come back once, in order of first appearance, and
//! every error names FILE:LINE.
//!
//! This file holds the model the three formats fill (hosts, groups, vars)
//! and resolve, format detection, and range patterns; each format's reader
//! is a module of its own ([`plain`], [`ini`], [`yaml`]).

mod ini;
mod plain;
mod yaml;

use std::collections::{HashMap, HashSet};
use std::path::Path;

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
        InventoryFormat::PlainList => plain::parse_plain_list(text),
        InventoryFormat::AnsibleIni => ini::parse_ini(text),
        InventoryFormat::AnsibleYaml => yaml::parse_yaml(text),
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
    if lines.any(|line| ini::section_header(line).is_some() || line.contains('=')) {
        InventoryFormat::AnsibleIni
    } else {
        InventoryFormat::PlainList
    }
}

pub(super) fn is_comment(line: &str) -> bool {
    line.starts_with('#') || line.starts_with(';')
}

/// A parse error: line number and message, turned into FILE:LINE later.
pub(super) type LineError = (usize, String);

/// A variable's value and the line it was set on.
#[derive(Debug, Clone)]
pub(super) struct Var {
    pub(super) value: String,
    pub(super) line: usize,
}

pub(super) type Vars = HashMap<String, Var>;

#[derive(Debug, Default)]
pub(super) struct Group {
    hosts: HashSet<String>,
    pub(super) children: Vec<String>,
    pub(super) vars: Vars,
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
pub(super) struct Model {
    hosts: Vec<HostEntry>,
    /// Where each host name stands in `hosts`: a range expands to
    /// thousands of hosts, and scanning the list for each is quadratic.
    host_index: HashMap<String, usize>,
    groups: HashMap<String, Group>,
}

impl Model {
    /// Adds a host line's host to `group`, merging it with an earlier mention.
    pub(super) fn add_host(
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

    pub(super) fn group(&mut self, name: &str) -> &mut Group {
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

/// Splits a line into words like a shell would, honouring single and double
/// quotes; an unquoted `#` at the start of a word begins a comment.
pub(super) fn split_words(line: &str) -> Result<Vec<String>, String> {
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

/// Helpers the format modules' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    pub(crate) fn spec(text: &str) -> HostSpec {
        text.parse().unwrap()
    }

    pub(crate) fn specs(texts: &[&str]) -> Vec<HostSpec> {
        texts.iter().map(|t| spec(t)).collect()
    }

    pub(crate) fn error_of(file: &str, text: &str) -> String {
        parse_inventory(file, text)
            .expect_err("should fail")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::spec;
    use super::*;

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
}

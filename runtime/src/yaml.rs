//! The one YAML reader, keeping positions. Errors must name a line and a
//! column, and serde's YAML values forget where they came from, so every
//! YAML file kiln reads (manifests, version entries, declaration sidecars,
//! inventories) is read here from yaml-rust2's event stream into a small tree
//! of [`Yaml`] nodes, each with its [`Mark`].
//!
//! Every scalar stays a string, as Sahara treated them (`default: 1` is "1");
//! only an unquoted `~`, `null` or empty value is [`YamlKind::Null`].
//! Hostile input is bounded: the size of the text, the nesting depth, and the
//! number of nodes after expanding aliases (so an alias bomb stops early).

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Limits that keep a hostile document from exhausting time or memory.
#[derive(Debug, Clone, Copy)]
pub struct YamlLimits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_nodes: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        YamlLimits {
            max_bytes: 4 << 20,
            max_depth: 64,
            max_nodes: 200_000,
        }
    }
}

/// A 1-based line and column in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
}

impl Mark {
    fn from_marker(marker: &Marker) -> Mark {
        Mark {
            line: marker.line(),
            col: marker.col() + 1,
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A YAML node with the place it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Yaml {
    pub kind: YamlKind,
    pub mark: Mark,
}

#[derive(Debug, Clone, PartialEq)]
pub enum YamlKind {
    Null,
    Scalar(String),
    Seq(Vec<Yaml>),
    /// Entries in document order; keys keep their own marks.
    Map(Vec<(Yaml, Yaml)>),
}

/// A problem reading the text as YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub mark: Mark,
    pub message: String,
}

impl Yaml {
    /// A short name for the node's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            YamlKind::Null => "nothing",
            YamlKind::Scalar(_) => "a string",
            YamlKind::Seq(_) => "a list",
            YamlKind::Map(_) => "a map",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            YamlKind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key` when this is a map.
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match &self.kind {
            YamlKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a JSON pointer (RFC 6901) from this node, as validator
    /// components address places in their spec.
    pub fn at_pointer(&self, pointer: &str) -> Option<&Yaml> {
        if pointer.is_empty() {
            return Some(self);
        }
        let mut node = self;
        for raw in pointer.strip_prefix('/')?.split('/') {
            let token = raw.replace("~1", "/").replace("~0", "~");
            node = match &node.kind {
                YamlKind::Seq(items) => items.get(token.parse::<usize>().ok()?)?,
                YamlKind::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(&token))
                    .map(|(_, v)| v)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Where a JSON pointer leads: the key's position when it ends in a map
    /// key (errors about an entry point at its name), the item's otherwise.
    pub fn mark_at_pointer(&self, pointer: &str) -> Option<Mark> {
        let (parent, last) = match pointer.rfind('/') {
            Some(split) => (
                &pointer[..split],
                pointer[split + 1..].replace("~1", "/").replace("~0", "~"),
            ),
            None => return self.at_pointer(pointer).map(|n| n.mark),
        };
        match &self.at_pointer(parent)?.kind {
            YamlKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(&last))
                .map(|(k, _)| k.mark),
            _ => self.at_pointer(pointer).map(|n| n.mark),
        }
    }

    /// The node as JSON, the form validator components receive their spec
    /// in: scalars become strings, null stays null, maps keep their order.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            YamlKind::Null => Value::Null,
            YamlKind::Scalar(s) => Value::String(s.clone()),
            YamlKind::Seq(items) => Value::Array(items.iter().map(Yaml::to_json).collect()),
            YamlKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| k.key_text()),
                            v.to_json(),
                        )
                    })
                    .collect(),
            ),
        }
    }

    /// A non-string key rendered as text (YAML allows `? [a, b]` keys).
    fn key_text(&self) -> String {
        match &self.kind {
            YamlKind::Null => String::new(),
            YamlKind::Scalar(s) => s.clone(),
            _ => self.to_json().to_string(),
        }
    }
}

/// Parses one YAML document. An empty document (or only comments) is
/// `Ok(None)`; several documents are an error.
pub fn parse(text: &str, limits: YamlLimits) -> Result<Option<Yaml>, YamlError> {
    if text.len() > limits.max_bytes {
        return Err(YamlError {
            mark: Mark { line: 1, col: 1 },
            message: format!(
                "the file is {} bytes; manifests are limited to {} bytes",
                text.len(),
                limits.max_bytes
            ),
        });
    }
    if let Some(offset) = text.find('\0') {
        return Err(YamlError {
            mark: mark_of_offset(text, offset),
            message: "the file contains a NUL byte; is it a binary file?".into(),
        });
    }
    Builder::new(limits).build(Parser::new_from_str(text))
}

/// Parses bytes that should be UTF-8 YAML, reporting where invalid UTF-8 starts.
pub fn parse_bytes(bytes: &[u8], limits: YamlLimits) -> Result<Option<Yaml>, YamlError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text, limits),
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid prefix");
            Err(YamlError {
                mark: mark_of_offset(valid, valid.len()),
                message: "the file is not UTF-8 text; is it a binary file?".into(),
            })
        }
    }
}

fn mark_of_offset(text: &str, offset: usize) -> Mark {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    Mark { line, col }
}

/// Builds the tree from the event stream with an explicit stack, so deep
/// nesting costs heap, not the call stack, and stops at the depth limit.
struct Builder {
    limits: YamlLimits,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Yaml>,
    nodes: usize,
    documents: usize,
    root: Option<Yaml>,
}

struct Frame {
    node: Yaml,
    anchor: usize,
    /// For maps: a key waiting for its value.
    pending_key: Option<Yaml>,
}

impl Builder {
    fn new(limits: YamlLimits) -> Self {
        Builder {
            limits,
            stack: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            documents: 0,
            root: None,
        }
    }

    fn build<I: Iterator<Item = char>>(
        mut self,
        mut parser: Parser<I>,
    ) -> Result<Option<Yaml>, YamlError> {
        loop {
            let (event, marker) = parser
                .next_token()
                .map_err(|e| scan_error(&e, self.limits))?;
            let mark = Mark::from_marker(&marker);
            match event {
                Event::StreamEnd => return Ok(self.root),
                Event::DocumentStart => {
                    self.documents += 1;
                    if self.documents > 1 {
                        return Err(YamlError { mark, message: "the file holds more than one YAML document; kiln reads one document per file".into() });
                    }
                }
                Event::Scalar(text, style, anchor, _tag) => {
                    let kind = if style == TScalarStyle::Plain
                        && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL")
                    {
                        YamlKind::Null
                    } else {
                        YamlKind::Scalar(text)
                    };
                    self.count(1, mark)?;
                    self.finish(Yaml { kind, mark }, anchor, mark)?;
                }
                Event::SequenceStart(anchor, _) => {
                    self.open(YamlKind::Seq(Vec::new()), anchor, mark)?
                }
                Event::MappingStart(anchor, _) => {
                    self.open(YamlKind::Map(Vec::new()), anchor, mark)?
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let mut frame = self.stack.pop().expect("balanced events");
                    // A block mapping's start event is marked at its first
                    // value; users expect it where its first key stands.
                    if let YamlKind::Map(entries) = &frame.node.kind {
                        if let Some((key, _)) = entries.first() {
                            frame.node.mark = frame.node.mark.min(key.mark);
                        }
                    }
                    self.finish(frame.node, frame.anchor, mark)?;
                }
                Event::Alias(id) => {
                    let target = self.anchors.get(&id).cloned().ok_or_else(|| YamlError {
                        mark,
                        message: "alias to an unknown anchor".into(),
                    })?;
                    self.count(count_nodes(&target), mark)?;
                    self.finish(
                        Yaml {
                            kind: target.kind,
                            mark,
                        },
                        0,
                        mark,
                    )?;
                }
                Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
            }
        }
    }

    fn count(&mut self, added: usize, mark: Mark) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(added);
        if self.nodes > self.limits.max_nodes {
            return Err(YamlError {
                mark,
                message: format!(
                    "the document expands to more than {} nodes (an alias bomb?)",
                    self.limits.max_nodes
                ),
            });
        }
        Ok(())
    }

    fn open(&mut self, kind: YamlKind, anchor: usize, mark: Mark) -> Result<(), YamlError> {
        if self.stack.len() >= self.limits.max_depth {
            return Err(YamlError {
                mark,
                message: format!("nesting deeper than {} levels", self.limits.max_depth),
            });
        }
        self.count(1, mark)?;
        self.stack.push(Frame {
            node: Yaml { kind, mark },
            anchor,
            pending_key: None,
        });
        Ok(())
    }

    /// Attaches a finished node to its parent (or makes it the root).
    fn finish(&mut self, node: Yaml, anchor: usize, mark: Mark) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match &mut parent.node.kind {
            YamlKind::Seq(items) => items.push(node),
            YamlKind::Map(entries) => match parent.pending_key.take() {
                None => parent.pending_key = Some(node),
                Some(key) => {
                    if let Some(name) = key.as_str() {
                        if entries.iter().any(|(k, _)| k.as_str() == Some(name)) {
                            return Err(YamlError {
                                mark: key.mark,
                                message: format!("duplicate key `{name}`"),
                            });
                        }
                    }
                    let _ = mark;
                    entries.push((key, node));
                }
            },
            _ => unreachable!("only collections are on the stack"),
        }
        Ok(())
    }
}

/// The scanner's own messages, with its recursion limit worded like ours.
fn scan_error(error: &yaml_rust2::ScanError, limits: YamlLimits) -> YamlError {
    let message = match error.info() {
        "recursion limit exceeded" => format!("nesting deeper than {} levels", limits.max_depth),
        other => other.to_string(),
    };
    YamlError {
        mark: Mark::from_marker(error.marker()),
        message,
    }
}

fn count_nodes(node: &Yaml) -> usize {
    match &node.kind {
        YamlKind::Null | YamlKind::Scalar(_) => 1,
        YamlKind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        YamlKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

/// A boolean as people write one in kiln's inputs (manifests, declarations,
/// config files): `true`/`yes`/`on`/`1` or `false`/`no`/`off`/`0`, in any
/// case. The one definition in kiln; the SDK's `parse_bool` accepts the same
/// words, so a spec and a manifest never disagree about `yes`.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Yaml {
        parse(text, YamlLimits::default()).unwrap().unwrap()
    }

    #[test]
    fn scalars_stay_strings_and_keep_positions() {
        let doc = yaml("a: 1\nb:\n  - true\n  - ~\n");
        assert_eq!(doc.get("a").unwrap().kind, YamlKind::Scalar("1".into()));
        let b = doc.get("b").unwrap();
        assert_eq!(
            b.at_pointer("/0").unwrap().kind,
            YamlKind::Scalar("true".into())
        );
        assert_eq!(b.at_pointer("/1").unwrap().kind, YamlKind::Null);
        assert_eq!(b.at_pointer("/0").unwrap().mark, Mark { line: 3, col: 5 });
        assert_eq!(doc.get("a").unwrap().mark, Mark { line: 1, col: 4 });
    }

    #[test]
    fn pointers_unescape_keys() {
        let doc = yaml("'a/b': {'c~d': x}\n");
        assert_eq!(doc.at_pointer("/a~1b/c~0d").unwrap().as_str(), Some("x"));
        assert!(doc.at_pointer("/missing").is_none());
    }

    #[test]
    fn alias_bomb_is_stopped() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let err = parse(&text, YamlLimits::default()).unwrap_err();
        assert!(err.message.contains("alias bomb"), "{err:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = "[".repeat(10_000) + &"]".repeat(10_000);
        let err = parse(&text, YamlLimits::default()).unwrap_err();
        assert!(err.message.contains("nesting deeper"), "{err:?}");
    }

    #[test]
    fn junk_and_empty_inputs() {
        assert_eq!(parse("", YamlLimits::default()).unwrap(), None);
        assert_eq!(
            parse("# only a comment\n", YamlLimits::default()).unwrap(),
            None
        );
        let err = parse_bytes(b"ok: 1\n\xff\xfe", YamlLimits::default()).unwrap_err();
        assert_eq!(err.mark, Mark { line: 2, col: 1 });
        assert!(parse("a: [1, 2\n", YamlLimits::default()).is_err());
        assert!(parse("a: 1\na: 2\n", YamlLimits::default())
            .unwrap_err()
            .message
            .contains("duplicate key"));
        assert!(parse("a: 1\n---\nb: 2\n", YamlLimits::default())
            .unwrap_err()
            .message
            .contains("more than one"));
    }
}

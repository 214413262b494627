//! `kiln explain`: a manifest's argument table, the values a version entry
//! gives them and where, and its validator tree, each node with its type's
//! one-line summary, its position in the file and, for scripts, the
//! arguments they get (`env:`, undeclared ones marked).
//! Every field is escaped on its own (file names, YAML text, what a
//! type's `check` returned), so no field can steer the terminal or forge
//! a line of the table.

use std::ffi::OsString;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use kiln::host::Origin;
use kiln::manifest::{Block, Manifest, ValidatorNode, ValueKind};

use super::lint::{known_argument_names, script_env_vars};
use super::naming::one_name;
use super::{shown, shown_path, Common, Lookup};

pub fn render(manifest: &Manifest) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "manifest {}", shown_path(&manifest.path));
    if let Some(entry) = &manifest.version {
        let chain: Vec<String> = entry.chain.iter().map(|p| shown_path(p)).collect();
        let _ = writeln!(
            out,
            "version entry {} (shares the manifest above)",
            chain.join(" -> ")
        );
    }
    let _ = writeln!(
        out,
        "resource roots: {}",
        manifest
            .resources
            .paths()
            .map(shown_path)
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push_str(&arguments_table(manifest));
    out.push_str(&version_values(manifest));
    let _ = writeln!(
        out,
        "\nvalidators ({} at the top level, {} in all):",
        manifest.root.blocks.len(),
        count(&manifest.root) - 1
    );
    let known = known_argument_names(manifest);
    for block in &manifest.root.blocks {
        block_lines(&mut out, block, 1, &known);
    }
    let custom: Vec<_> = manifest
        .types
        .iter()
        .filter(|t| t.origin != Origin::BuiltIn)
        .collect();
    if !custom.is_empty() {
        let _ = writeln!(out, "\nthird-party validator types:");
        for vtype in custom {
            let _ = writeln!(
                out,
                "  {}  {}  sha256 {}  grants: {}",
                shown(&vtype.name),
                shown(&vtype.origin.to_string()),
                &vtype.sha256[..16],
                shown(&vtype.grants.to_string())
            );
        }
    }
    out
}

fn arguments_table(manifest: &Manifest) -> String {
    let mut out = String::from("\narguments:\n");
    if manifest.arguments.is_empty() {
        out.push_str("  (none)\n");
        return out;
    }
    let rows: Vec<[String; 4]> = manifest
        .arguments
        .iter()
        .map(|a| {
            let mut name = shown(&a.name);
            if a.hidden {
                name.push_str(" (hidden)");
            }
            let default = match (&a.default, a.required) {
                (Some(d), _) => shorten(&shown(d), 40),
                (None, true) => "(required)".to_string(),
                (None, false) => String::new(),
            };
            let choices = if a.choices.is_empty() {
                "any".to_string()
            } else {
                shown(&a.choices.join("|"))
            };
            [
                name,
                default,
                choices,
                shown(
                    &a.description
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            ]
        })
        .collect();
    let headers = ["NAME", "DEFAULT", "CHOICES", "DESCRIPTION"];
    let widths: Vec<usize> = (0..3)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 4]| {
        format!(
            "  {:w0$}  {:w1$}  {:w2$}  {}\n",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
    };
    out.push_str(&line(headers));
    for row in &rows {
        out.push_str(line([&row[0], &row[1], &row[2], &row[3]]).trim_end());
        out.push('\n');
    }
    out
}

/// The values the version entry gives, what they replace and where they
/// are written.
fn version_values(manifest: &Manifest) -> String {
    let Some(entry) = &manifest.version else {
        return String::new();
    };
    let mut out = String::from("\nvalues this version sets:\n");
    if entry.values.is_empty() {
        out.push_str("  (none: the shared manifest's defaults)\n");
    }
    for value in &entry.values {
        let how = match value.kind {
            ValueKind::Fixed => "fixed (set:)",
            ValueKind::Default => "default (defaults:)",
        };
        let replaces = match &value.replaces {
            Some(old) => format!(", replacing the manifest's default {}", shown(old)),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {} = {}  {how} at {}{replaces}",
            shown(&value.argument),
            shown(&value.value),
            shown(&value.location.to_string()),
        );
    }
    out
}

fn block_lines(out: &mut String, block: &Block, depth: usize, known: &[String]) {
    let indent = "  ".repeat(depth);
    match block {
        Block::Single(node) => node_line(out, node, depth, known),
        Block::Sequence { label, nodes } => {
            let name = shown(label.rsplit('.').next().unwrap_or(label));
            let _ = writeln!(
                out,
                "{indent}{name}:{}",
                if nodes.is_empty() { " (nothing)" } else { "" }
            );
            for node in nodes {
                node_line(out, node, depth + 1, known);
            }
        }
    }
}

fn node_line(out: &mut String, node: &Arc<ValidatorNode>, depth: usize, known: &[String]) {
    let indent = "  ".repeat(depth);
    let mark = node.location.mark;
    let _ = writeln!(
        out,
        "{indent}- {}: {}  [line {}]",
        shown(&node.type_name),
        shown(&node.summary),
        mark.line
    );
    let env = script_env_vars(node);
    if !env.is_empty() {
        let names: Vec<String> = env
            .iter()
            .map(|(name, _)| {
                if known.contains(name) {
                    shown(name)
                } else {
                    format!("{} (undeclared)", shown(name))
                }
            })
            .collect();
        let _ = writeln!(out, "{indent}    env: {}", names.join(", "));
    }
    for block in &node.blocks {
        block_lines(out, block, depth + 1, known);
    }
}

fn count(node: &Arc<ValidatorNode>) -> usize {
    let mut n = 0;
    node.walk(&mut |_, _| n += 1);
    n
}

/// Long values (URLs, mostly) cut to `width` characters so the table stays
/// readable; `--help` of the plugin shows them whole.
fn shorten(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width - 1).collect();
    format!("{kept}…")
}

/// `kiln explain`: loads the one named manifest and prints its tables.
pub fn run(
    common: &Common,
    words: &[OsString],
    manifest: &Option<PathBuf>,
    lookup: &Lookup,
) -> Result<i32> {
    let name = one_name(words, manifest)?;
    let (config, dirs) = lookup.load()?;
    let (path, _) = name.locate(&dirs)?;
    let kiln = common.kiln(&config)?;
    let manifest = kiln
        .load(&path, &common.load_options(&config.resource_roots))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    print!("{}", render(&manifest));
    Ok(0)
}

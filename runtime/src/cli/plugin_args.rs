//! A manifest's own arguments on the command line: `--NAME VALUE` or
//! `--NAME=VALUE` after `PLUGIN VERSION` (as sahara-image-pack took them),
//! `--arg NAME=VALUE` anywhere, and `PLUGIN VERSION --help` listing them.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use kiln::manifest::Manifest;

use super::{shown, shown_path};

/// What the words after `PLUGIN VERSION` asked for.
pub enum PluginArgs {
    Values(BTreeMap<String, String>),
    Help,
}

/// Parses the words after `PLUGIN VERSION` plus `--arg` pairs (which win).
pub fn parse(manifest: &Manifest, words: &[String], arg_pairs: &[String]) -> Result<PluginArgs> {
    let mut values = BTreeMap::new();
    let mut iter = words.iter();
    while let Some(word) = iter.next() {
        if word == "--help" || word == "-h" {
            return Ok(PluginArgs::Help);
        }
        let Some(option) = word.strip_prefix("--") else {
            bail!(
                "unexpected `{word}` after the plugin version; plugin arguments are `--NAME VALUE`"
            );
        };
        // Resolve the name first: a misplaced kiln option deserves that
        // message, not "needs a value".
        let (name, inline_value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (option, None),
        };
        let name = declared_name(manifest, name)?;
        let value = match inline_value {
            Some(value) => value,
            None => iter
                .next()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("--{name} needs a value"))?,
        };
        values.insert(name, value);
    }
    for pair in arg_pairs {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("--arg takes NAME=VALUE, found `{pair}`");
        };
        let name = declared_name(manifest, name)?;
        values.insert(name, value.to_string());
    }
    Ok(PluginArgs::Values(values))
}

/// The declared argument `name` refers to (`java-distro` and `java_distro`
/// are the same option), or an error listing the ones there are.
fn declared_name(manifest: &Manifest, name: &str) -> Result<String> {
    let wanted = name.replace('-', "_");
    if let Some(argument) = manifest
        .arguments
        .iter()
        .find(|a| a.name == name || a.name.replace('-', "_") == wanted)
    {
        return Ok(argument.name.clone());
    }
    const OWN: [&str; 10] = [
        "image",
        "root-filesystem",
        "test-only",
        "config-file",
        "output",
        "accel",
        "report",
        "verify",
        "manifest",
        "arg",
    ];
    if OWN.contains(&name) {
        bail!("--{name} is one of kiln's own options; put it before PLUGIN VERSION");
    }
    let known: Vec<String> = manifest
        .arguments
        .iter()
        .map(|a| format!("--{}", a.name))
        .collect();
    bail!(
        "{} takes no argument `--{name}` (it takes: {})",
        manifest.path.display(),
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}

/// The help text for a manifest's arguments (hidden ones left out), each
/// field escaped: names, defaults and descriptions are the manifest's text.
pub fn help(manifest: &Manifest, usage: &str) -> String {
    let mut out = format!(
        "usage: {} [--NAME VALUE]...\n\nArguments of {}:\n",
        shown(usage),
        shown_path(&manifest.path)
    );
    let visible: Vec<_> = manifest.arguments.iter().filter(|a| !a.hidden).collect();
    if visible.is_empty() {
        out.push_str("  (none)\n");
    }
    for argument in visible {
        out.push_str(&format!("  --{} VALUE\n", shown(&argument.name)));
        if !argument.description.is_empty() {
            out.push_str(&format!(
                "      {}\n",
                shown(
                    &argument
                        .description
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            ));
        }
        let mut facts = Vec::new();
        if argument.required {
            facts.push("required".to_string());
        }
        if let Some(default) = &argument.default {
            facts.push(format!("default: {}", shown(default)));
        }
        if !argument.choices.is_empty() {
            facts.push(format!("choices: {}", shown(&argument.choices.join(", "))));
        }
        if !facts.is_empty() {
            out.push_str(&format!("      [{}]\n", facts.join("; ")));
        }
    }
    out
}

//! A manifest's own arguments on the command line: `--NAME VALUE` or
//! `--NAME=VALUE` after `PLUGIN VERSION` (as sahara-image-pack took them),
//! `--arg NAME=VALUE` anywhere, and `PLUGIN VERSION --help` listing them.
//! A name the manifest does not declare is an error, whichever way it was
//! spelled, as sahara-image-pack's argparse refused it: a typo must not
//! silently run the default. As argparse did, an unambiguous prefix names
//! the argument it starts (`--java` for `--java-distro`; an ambiguous one
//! is an error listing the candidates), and a one-letter argument `x` may
//! be written `-x VALUE` (or `-xVALUE`). Hidden arguments are ordinary
//! arguments on the command line; only the plugin's `--help` and the
//! lists in messages leave them out.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use kiln::manifest::Manifest;

use super::{shown, shown_path};

/// What the words after `PLUGIN VERSION` asked for.
pub enum PluginArgs {
    Values(BTreeMap<String, String>),
    Help,
}

/// How the user wrote an argument's name, for the message when the
/// manifest does not declare it.
enum Spelling<'a> {
    /// `--NAME VALUE` after `PLUGIN VERSION`.
    Option,
    /// `--arg NAME=VALUE`: the whole pair, as typed.
    Arg(&'a str),
}

/// Parses the words after `PLUGIN VERSION` plus `--arg` pairs (which win).
/// `own` holds every spelling of kiln's own options, to tell a misplaced
/// one from a misspelt plugin argument.
pub fn parse(
    manifest: &Manifest,
    words: &[String],
    arg_pairs: &[String],
    own: &[String],
) -> Result<PluginArgs> {
    parse_located(manifest, words, arg_pairs, own).map_err(|located| located.error)
}

/// Which word a plugin-argument error is about, for a caller that knows
/// where each word stands (a `--batch` file's line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordAt {
    /// `words[index]`.
    Word(usize),
    /// `arg_pairs[index]`.
    Pair(usize),
}

/// A plugin-argument error and the word it is about.
#[derive(Debug)]
pub struct Located {
    pub at: WordAt,
    pub error: anyhow::Error,
}

/// [`parse`], with each error naming the word it is about.
pub fn parse_located(
    manifest: &Manifest,
    words: &[String],
    arg_pairs: &[String],
    own: &[String],
) -> std::result::Result<PluginArgs, Located> {
    let at_word = |index: usize| {
        move |error| Located {
            at: WordAt::Word(index),
            error,
        }
    };
    let mut values = BTreeMap::new();
    let mut iter = words.iter().enumerate();
    while let Some((index, word)) = iter.next() {
        if word == "--help" || word == "-h" {
            return Ok(PluginArgs::Help);
        }
        if let Some((name, value)) = one_letter(manifest, word) {
            let value = match value {
                Some(value) => value,
                None => iter
                    .next()
                    .map(|(_, value)| value.clone())
                    .ok_or_else(|| anyhow::anyhow!("-{name} needs a value"))
                    .map_err(at_word(index))?,
            };
            values.insert(name, value);
            continue;
        }
        let Some(option) = word.strip_prefix("--") else {
            let error = if own.contains(word) {
                anyhow::anyhow!("{word} is one of kiln's own options; put it before PLUGIN VERSION")
            } else {
                anyhow::anyhow!(
                    "unexpected `{word}` after the manifest's name; plugin arguments are `--NAME VALUE`"
                )
            };
            return Err(at_word(index)(error));
        };
        // Resolve the name first: a misplaced kiln option deserves that
        // message, not "needs a value".
        let (name, inline_value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (option, None),
        };
        let name = declared_name(manifest, name, Spelling::Option, own).map_err(at_word(index))?;
        let value = match inline_value {
            Some(value) => value,
            None => iter
                .next()
                .map(|(_, value)| value.clone())
                .ok_or_else(|| anyhow::anyhow!("--{name} needs a value"))
                .map_err(at_word(index))?,
        };
        values.insert(name, value);
    }
    for (index, pair) in arg_pairs.iter().enumerate() {
        let at_pair = |error| Located {
            at: WordAt::Pair(index),
            error,
        };
        let Some((name, value)) = pair.split_once('=') else {
            return Err(at_pair(anyhow::anyhow!(
                "--arg takes NAME=VALUE, found `{pair}`"
            )));
        };
        let name = declared_name(manifest, name, Spelling::Arg(pair), own).map_err(at_pair)?;
        values.insert(name, value.to_string());
    }
    Ok(PluginArgs::Values(values))
}

/// `-x VALUE`, `-x=VALUE` or `-xVALUE` for a declared one-letter argument
/// `x` (argparse's short option): its name, and the value when the word
/// holds it. `None` for every other word, kiln's `-v`/`-q` included unless
/// the manifest declares that letter.
fn one_letter(manifest: &Manifest, word: &str) -> Option<(String, Option<String>)> {
    let rest = word.strip_prefix('-').filter(|r| !r.starts_with('-'))?;
    let letter = rest.chars().next()?;
    let argument = manifest
        .arguments
        .iter()
        .find(|a| a.name.chars().eq(std::iter::once(letter)))?;
    let value = &rest[letter.len_utf8()..];
    let value = value.strip_prefix('=').unwrap_or(value);
    Some((
        argument.name.clone(),
        (!value.is_empty()).then(|| value.to_string()),
    ))
}

/// An argument name as argparse compared it, with kiln's rule that `-` and
/// `_` are the same (`java-distro` is `java_distro`).
fn normalized(name: &str) -> String {
    name.replace('-', "_")
}

/// The declared argument `name` names exactly, or, for `--NAME`, the one
/// it is an unambiguous prefix of (hidden arguments included: they are
/// ordinary arguments on the command line). An ambiguous prefix is an
/// error listing the arguments it could be.
fn lookup<'m>(manifest: &'m Manifest, name: &str, prefixes: bool) -> Result<Option<&'m str>> {
    let wanted = normalized(name);
    if let Some(argument) = manifest
        .arguments
        .iter()
        .find(|a| normalized(&a.name) == wanted)
    {
        return Ok(Some(&argument.name));
    }
    if !prefixes || wanted.is_empty() {
        return Ok(None);
    }
    let started: Vec<&str> = manifest
        .arguments
        .iter()
        .filter(|a| normalized(&a.name).starts_with(&wanted))
        .map(|a| a.name.as_str())
        .collect();
    match started[..] {
        [] => Ok(None),
        [only] => Ok(Some(only)),
        _ => bail!(
            "`--{name}` is ambiguous in {}: it could be {}; type more of the name",
            manifest.path.display(),
            started
                .iter()
                .map(|n| format!("--{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The declared argument `name` refers to (`java-distro` and `java_distro`
/// are the same option; for `--NAME`, an unambiguous prefix names the
/// argument it starts), or an error naming what was typed, listing the
/// arguments there are and suggesting the nearest.
fn declared_name(
    manifest: &Manifest,
    name: &str,
    spelling: Spelling<'_>,
    own: &[String],
) -> Result<String> {
    // kiln's own option typed in full is never taken for a prefix of an
    // argument: `--image` after PLUGIN VERSION is a misplaced kiln option.
    let prefixes = matches!(spelling, Spelling::Option) && !own.contains(&format!("--{name}"));
    if let Some(found) = lookup(manifest, name, prefixes)? {
        return Ok(found.to_string());
    }
    // Hidden arguments are accepted but never advertised.
    let visible: Vec<&str> = manifest
        .arguments
        .iter()
        .filter(|a| !a.hidden)
        .map(|a| a.name.as_str())
        .collect();
    let file = manifest.path.display();
    match spelling {
        Spelling::Option => {
            let typed = format!("--{name}");
            if own.contains(&typed) {
                bail!("{typed} is one of kiln's own options; put it before PLUGIN VERSION");
            }
            let takes: Vec<String> = visible.iter().map(|n| format!("--{n}")).collect();
            let own_longs: Vec<String> = own
                .iter()
                .filter(|o| o.starts_with("--"))
                .cloned()
                .collect();
            let hint = match (closest(&typed, &takes), closest(&typed, &own_longs)) {
                (Some(arg), _) => format!("; did you mean `{arg}`?"),
                (None, Some(option)) => format!(
                    "; did you mean kiln's own `{option}`? (kiln's options go before PLUGIN VERSION)"
                ),
                (None, None) => String::new(),
            };
            bail!(
                "{file} takes no argument `{typed}` (it takes: {}){hint}",
                list(&takes)
            )
        }
        Spelling::Arg(pair) => {
            let takes: Vec<String> = visible.iter().map(|n| n.to_string()).collect();
            let hint = closest(name, &takes)
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            bail!(
                "--arg {pair}: {file} takes no argument `{name}` (it takes: {}){hint}",
                list(&takes)
            )
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The candidate nearest to `typed`, when it is near enough to be a typo:
/// at most two edits (a swap of neighbours counts as one), and fewer than
/// half the name's letters.
pub(super) fn closest<'a>(typed: &str, candidates: &'a [String]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(typed, c), c.as_str()))
        .filter(|(distance, c)| *distance <= 2 && *distance * 2 < c.trim_start_matches('-').len())
        .min()
        .map(|(_, c)| c)
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
        // A version entry's `set:` value is the only one this version takes.
        match (manifest.fixed_value(&argument.name), &argument.default) {
            (Some(fixed), _) => facts.push(format!(
                "fixed for this version: {} (by {})",
                shown(&fixed.value),
                shown(&fixed.location.to_string())
            )),
            (None, Some(default)) => facts.push(format!("default: {}", shown(default))),
            (None, None) => {}
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

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggestions_are_near_misses_only() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let own = names(&["--image", "--test-only", "--output"]);
        assert_eq!(closest("--imgae", &own), Some("--image"));
        assert_eq!(closest("--tset-only", &own), Some("--test-only"));
        assert_eq!(closest("--limit", &own), None);
        assert_eq!(closest("tool", &names(&["motd", "tools"])), Some("tools"));
        assert_eq!(closest("x", &names(&["y"])), None);
    }
}

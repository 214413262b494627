//! `kiln pin MANIFEST`: after rebuilding a validator, recompute the sha256
//! of each `.wasm` the manifest's `validator_types` declares and rewrite it
//! in the YAML text itself: the scalar is replaced where it stands (or the
//! key added after `wasm:`), so comments and layout stay as they were.
//! The manifest is read as YAML, not loaded: a stale digest is exactly what
//! refuses a load.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln::yaml::{self, Mark, Yaml, YamlKind, YamlLimits};
use sha2::{Digest, Sha256};

use super::{shown, shown_path};

pub const AFTER_HELP: &str = "\
Examples:
  cargo build --release --target wasm32-wasip2 && kiln pin image.yaml
  kiln pin --check image.yaml     # exit 1 when a digest is stale";

#[derive(Args)]
pub struct PinArgs {
    /// The manifest whose `validator_types` digests to rewrite.
    #[arg(value_name = "MANIFEST")]
    manifest: PathBuf,

    /// Change nothing; exit 1 when a digest is missing or stale.
    #[arg(long)]
    check: bool,
}

/// One edit of the text: replace `len` characters at `at` (a 1-based line
/// and column) with `text`.
struct Edit {
    line: usize,
    col: usize,
    len: usize,
    text: String,
}

pub fn run(args: &PinArgs) -> Result<i32> {
    let path = &args.manifest;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}", shown_path(path)))?;
    let document = yaml::parse(&text, YamlLimits::default())
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", shown_path(path), e.mark, e.message))?;
    let Some(types) = document.as_ref().and_then(|d| d.get("validator_types")) else {
        println!("{}: declares no validator types", shown_path(path));
        return Ok(0);
    };
    let YamlKind::Map(entries) = &types.kind else {
        bail!(
            "{}:{}: `validator_types` must be a map",
            shown_path(path),
            types.mark
        );
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let lines: Vec<&str> = text.split('\n').collect();
    let mut edits = Vec::new();
    let mut stale = 0;
    for (key, body) in entries {
        let name = shown(key.as_str().unwrap_or("?"));
        let Some(wasm) = body.get("wasm").and_then(Yaml::as_str) else {
            bail!(
                "{}:{}: validator type `{name}` names no `wasm` file",
                shown_path(path),
                body.mark
            );
        };
        let file = base.join(wasm);
        let bytes = std::fs::read(&file).with_context(|| {
            format!(
                "{}: validator type `{name}`: cannot read {}",
                shown_path(path),
                shown_path(&file)
            )
        })?;
        let digest = format!("{:x}", Sha256::digest(&bytes));
        let declared = body.get("sha256");
        let current = declared.and_then(Yaml::as_str).map(str::to_ascii_lowercase);
        if current.as_deref() == Some(digest.as_str()) {
            println!("{name}: {digest} (unchanged)");
            continue;
        }
        stale += 1;
        println!(
            "{name}: {digest} (was {})",
            current
                .as_deref()
                .map(shown)
                .unwrap_or_else(|| "not pinned".into())
        );
        let edit = match declared {
            Some(value) => replace_scalar(&lines, value.mark, &digest),
            None => add_key(&lines, body, &digest),
        }
        .with_context(|| format!("{}: validator type `{name}`", shown_path(path)))?;
        edits.push(edit);
    }
    if args.check {
        return Ok(if stale == 0 { 0 } else { 1 });
    }
    if edits.is_empty() {
        return Ok(0);
    }
    let rewritten = apply(&lines, edits);
    // Replaced whole, so that a reader never sees half a manifest.
    let temporary = path.with_file_name(format!(
        ".{}.kiln-pin",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&temporary, rewritten)
        .and_then(|()| {
            if let Ok(metadata) = std::fs::metadata(path) {
                std::fs::set_permissions(&temporary, metadata.permissions())?;
            }
            std::fs::rename(&temporary, path)
        })
        .with_context(|| format!("cannot rewrite {}", shown_path(path)))?;
    println!("{}: {stale} digest(s) rewritten", shown_path(path));
    Ok(0)
}

/// Replaces the scalar starting at `mark`: quoted (up to its closing quote)
/// or plain (up to a space, a comment, or the end of a flow entry).
fn replace_scalar(lines: &[&str], mark: Mark, digest: &str) -> Result<Edit> {
    let line: Vec<char> = lines
        .get(mark.line - 1)
        .context("the sha256 value is outside the file")?
        .chars()
        .collect();
    let start = mark.col - 1;
    let len = match line.get(start) {
        Some(&quote @ ('\'' | '"')) => {
            line[start + 1..]
                .iter()
                .position(|&c| c == quote)
                .context("the sha256 value's quote does not close on its line")?
                + 2
        }
        Some(_) => line[start..]
            .iter()
            .position(|&c| c.is_whitespace() || c == ',' || c == '}' || c == '#')
            .unwrap_or(line.len() - start),
        None => bail!("the sha256 value is empty"),
    };
    Ok(Edit {
        line: mark.line,
        col: mark.col,
        len,
        text: digest.to_string(),
    })
}

/// Adds `sha256:` to a declaration: a line after `wasm:` in a block map,
/// at the `wasm` key's indentation; `sha256: X, ` before `wasm` in a flow map.
fn add_key(lines: &[&str], body: &Yaml, digest: &str) -> Result<Edit> {
    let YamlKind::Map(entries) = &body.kind else {
        bail!("the declaration is not a map");
    };
    let (key, value) = entries
        .iter()
        .find(|(k, _)| k.as_str() == Some("wasm"))
        .context("no `wasm` key")?;
    let body_line: Vec<char> = lines[body.mark.line - 1].chars().collect();
    if body_line.get(body.mark.col - 1) == Some(&'{') {
        return Ok(Edit {
            line: key.mark.line,
            col: key.mark.col,
            len: 0,
            text: format!("sha256: {digest}, "),
        });
    }
    if value.mark.line != key.mark.line {
        bail!("`wasm:` spans lines; add `sha256: {digest}` by hand");
    }
    let line = lines[key.mark.line - 1];
    // A CRLF file gets a CRLF line, inserted before the `\r`.
    let (end, newline) = match line.strip_suffix('\r') {
        Some(rest) => (rest.chars().count(), "\r\n"),
        None => (line.chars().count(), "\n"),
    };
    Ok(Edit {
        line: key.mark.line,
        col: end + 1,
        len: 0,
        text: format!("{newline}{}sha256: {digest}", " ".repeat(key.mark.col - 1)),
    })
}

/// The text with every edit made (later positions first, so that earlier
/// ones stay where they were found).
fn apply(lines: &[&str], mut edits: Vec<Edit>) -> String {
    let mut lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    edits.sort_by_key(|e| std::cmp::Reverse((e.line, e.col)));
    for edit in edits {
        let line = &mut lines[edit.line - 1];
        let chars: Vec<char> = line.chars().collect();
        let (head, tail) = chars.split_at((edit.col - 1).min(chars.len()));
        let tail: String = tail[edit.len.min(tail.len())..].iter().collect();
        let mut new: String = head.iter().collect();
        new.push_str(&edit.text);
        new.push_str(&tail);
        *line = new;
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "ab";

    fn pinned(text: &str) -> String {
        let document = yaml::parse(text, YamlLimits::default()).unwrap().unwrap();
        let types = document.get("validator_types").unwrap();
        let YamlKind::Map(entries) = &types.kind else {
            panic!()
        };
        let lines: Vec<&str> = text.split('\n').collect();
        let edits = entries
            .iter()
            .map(|(_, body)| match body.get("sha256") {
                Some(value) => replace_scalar(&lines, value.mark, DIGEST).unwrap(),
                None => add_key(&lines, body, DIGEST).unwrap(),
            })
            .collect();
        apply(&lines, edits)
    }

    #[test]
    fn digests_are_replaced_in_place_keeping_comments() {
        assert_eq!(
            pinned("validator_types:\n  a:\n    wasm: a.wasm  # built\n    sha256: 'old'   # pinned\n    grants: [exec]\n"),
            "validator_types:\n  a:\n    wasm: a.wasm  # built\n    sha256: ab   # pinned\n    grants: [exec]\n"
        );
        assert_eq!(
            pinned("validator_types:\n  a: {wasm: a.wasm, sha256: old, grants: []}\n"),
            "validator_types:\n  a: {wasm: a.wasm, sha256: ab, grants: []}\n"
        );
    }

    #[test]
    fn a_missing_digest_is_added_beside_wasm() {
        assert_eq!(
            pinned("validator_types:\n  a:\n    grants: [exec]\n    wasm: a.wasm # x\n  b: {wasm: b.wasm}\n"),
            "validator_types:\n  a:\n    grants: [exec]\n    wasm: a.wasm # x\n    sha256: ab\n  b: {sha256: ab, wasm: b.wasm}\n"
        );
        assert_eq!(
            pinned("validator_types:\r\n  a:\r\n    wasm: a.wasm\r\n"),
            "validator_types:\r\n  a:\r\n    wasm: a.wasm\r\n    sha256: ab\r\n"
        );
    }
}

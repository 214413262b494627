//! Text from untrusted places (what a component returns or logs, what a
//! command prints, file and type names) made safe to show: control
//! characters are escaped so that a string can never move the cursor,
//! retitle the terminal, clear a line or forge a new one. Everything kiln
//! prints or reports of such text passes through [`escape_controls`].
//!
//! It also owns how long text is shortened for a message (a script named by
//! its first line, an error by its last lines), so every target and the
//! command line shorten the same way.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Replaces every control character (C0, DEL, C1) and every Unicode
/// bidirectional override with a visible escape: `\n`, `\t`, `\r`, `\e`
/// for ESC, `\u{..}` otherwise. Text without any is returned as is.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut escaped, c);
    }
    Cow::Owned(escaped)
}

/// Like [`escape_controls`], but keeps line breaks (and tabs): for output
/// shown as lines, such as a command's stdout at `-vv`.
pub fn escape_controls_keep_lines(text: &str) -> Cow<'_, str> {
    let keep = |c: char| c == '\n' || c == '\t';
    if !text.chars().any(|c| needs_escape(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if keep(c) {
            escaped.push(c);
        } else {
            push_escaped(&mut escaped, c);
        }
    }
    Cow::Owned(escaped)
}

/// Bytes as text for display: invalid UTF-8 replaced, controls escaped.
pub fn escape_bytes(bytes: &[u8]) -> String {
    escape_controls(&String::from_utf8_lossy(bytes)).into_owned()
}

fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// The first line of `text` that is not blank, trimmed ("" when none).
pub fn first_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("")
}

/// `text` cut to at most `max` characters, ending in `…` when it was cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// How a script is named in a message: its first non-blank line, cut at
/// 60 characters, with `…` when it was cut or more lines follow.
pub fn script_summary(script: &str) -> String {
    let first = first_line(script);
    let clipped = clip(first, 60);
    let more_lines = script.trim().lines().nth(1).is_some();
    if more_lines && clipped.len() == first.len() {
        format!("{clipped} …")
    } else {
        clipped
    }
}

/// The last `count` non-blank lines of a command's output, trimmed and
/// joined with ` / ` (what is worth quoting of an error), or `no message`.
pub fn last_lines(bytes: &[u8], count: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(count)..];
    if tail.is_empty() {
        "no message".to_string()
    } else {
        tail.join(" / ")
    }
}

/// `text` on one line for a message: newlines become spaces and control
/// characters are escaped.
pub fn one_line(text: &str) -> String {
    escape_controls(&text.replace('\n', " ")).into_owned()
}

/// Characters that reorder how the text around them is displayed
/// ("Trojan Source"): embeddings, overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{1b}' => out.push_str("\\e"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_control_becomes_visible_text() {
        assert_eq!(escape_controls("plain text"), "plain text");
        assert!(matches!(escape_controls("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("\u{1b}]0;owned\u{7}title"),
            "\\e]0;owned\\u{7}title"
        );
        assert_eq!(
            escape_controls("a\r\u{1b}[2K\u{1b}[32mPASSED"),
            "a\\r\\e[2K\\e[32mPASSED"
        );
        assert_eq!(
            escape_controls("one\nFAKE: all passed"),
            "one\\nFAKE: all passed"
        );
        assert_eq!(escape_controls("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape_controls("x\u{202E}gnp.exe"), "x\\u{202e}gnp.exe");
        assert_eq!(escape_controls("\u{7f}"), "\\u{7f}");
        assert_eq!(escape_controls("ünïcødé ok"), "ünïcødé ok");
    }

    #[test]
    fn line_output_keeps_its_lines() {
        assert_eq!(
            escape_controls_keep_lines("a\n\tb\u{1b}[1A\n"),
            "a\n\tb\\e[1A\n"
        );
        assert_eq!(escape_bytes(b"\xff\x1b"), "\u{fffd}\\e");
    }

    #[test]
    fn long_text_is_shortened_the_same_way_everywhere() {
        assert_eq!(
            first_line("\n  \n  apt-get update \nmore"),
            "apt-get update"
        );
        assert_eq!(clip("abcdef", 3), "abc…");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("ééé", 2), "éé…");
        assert_eq!(script_summary("echo hi"), "echo hi");
        assert_eq!(script_summary("\necho hi\nexit 1\n"), "echo hi …");
        assert_eq!(
            script_summary(&"x".repeat(70)),
            format!("{}…", "x".repeat(60))
        );
        assert_eq!(last_lines(b"a\n\nb\nc\nd\n", 3), "b / c / d");
        assert_eq!(last_lines(b" \n", 3), "no message");
        assert_eq!(one_line("a\nb\u{1b}"), "a b\\e");
    }
}

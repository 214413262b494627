//! How kiln's output looks: quiet or not, which status words are coloured
//! and when colour is on at all, and the one way text from files, manifests
//! and targets is shown (controls escaped, so it can never steer the
//! terminal). Every verb prints through these, so they live apart from any
//! one verb.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::path::Path;

use kiln::text::escape_controls;

use super::{ColorWhen, Common};

/// What a run prints: all of it, or (`-q`) only its closing line and
/// errors; and whether status words are coloured.
#[derive(Clone, Copy)]
pub struct Style {
    pub quiet: bool,
    pub color: bool,
}

/// The colours of the status words: restrained, and only ever around
/// kiln's own words, never around text that came from a manifest or a
/// target (that is escaped, and stays so).
#[derive(Clone, Copy)]
pub enum Paint {
    Good,
    Bad,
    Changed,
}

impl Style {
    pub(super) fn new(common: &Common) -> Style {
        Style {
            quiet: common.quiet,
            color: use_color(
                common.color,
                std::io::stdout().is_terminal(),
                std::env::var_os("NO_COLOR").as_deref(),
                std::env::var_os("TERM").as_deref(),
            ),
        }
    }

    /// One of kiln's status words, coloured when colour is on. `'static`
    /// on purpose: only kiln's own text is ever painted.
    pub fn paint(&self, word: &'static str, paint: Paint) -> String {
        if !self.color {
            return word.to_string();
        }
        let code = match paint {
            Paint::Good => "32",
            Paint::Bad => "1;31",
            Paint::Changed => "33",
        };
        format!("\x1b[{code}m{word}\x1b[0m")
    }
}

/// `auto` colours a terminal unless NO_COLOR is set to anything but the
/// empty string (no-color.org) or TERM is `dumb`; an explicit `--color
/// always` wins over NO_COLOR, as a command-line flag wins over the
/// environment.
fn use_color(
    when: ColorWhen,
    terminal: bool,
    no_color: Option<&OsStr>,
    term: Option<&OsStr>,
) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            terminal && no_color.is_none_or(|v| v.is_empty()) && term != Some(OsStr::new("dumb"))
        }
    }
}

/// A path for output: a file name is data, never terminal control.
pub fn shown_path(path: &Path) -> String {
    escape_controls(&path.to_string_lossy()).into_owned()
}

/// Text for output that must stay one line, with its controls escaped.
pub fn shown(text: &str) -> String {
    escape_controls(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_follows_the_flag_the_terminal_and_no_color() {
        let on = |when, terminal, no_color: Option<&str>, term: Option<&str>| {
            use_color(
                when,
                terminal,
                no_color.map(OsStr::new),
                term.map(OsStr::new),
            )
        };
        assert!(on(ColorWhen::Auto, true, None, Some("xterm")));
        assert!(!on(ColorWhen::Auto, false, None, Some("xterm")));
        assert!(!on(ColorWhen::Auto, true, Some("1"), Some("xterm")));
        // An empty NO_COLOR does not count (no-color.org).
        assert!(on(ColorWhen::Auto, true, Some(""), Some("xterm")));
        assert!(!on(ColorWhen::Auto, true, None, Some("dumb")));
        assert!(on(ColorWhen::Always, false, Some("1"), None));
        assert!(!on(ColorWhen::Never, true, None, Some("xterm")));
    }
}

//! Where errors become what the user reads: one line on stderr, with
//! `see kiln VERB --help` for usage errors and a near-miss suggestion for
//! an unknown option, and exit code 2. clap's own multi-line rendering is
//! folded here so that every error kiln prints has the same shape.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::CommandFactory;
use kiln::text::one_line;

use super::{own_options, plugin_args, Cli};

/// A usage error as one line, like every other error, and exit code 2;
/// `--help` and `--version` print as clap prints them.
pub(super) fn usage_error(error: clap::Error) -> i32 {
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => error.exit(),
        _ => {}
    }
    let verb = verb_of(std::env::args_os().skip(1));
    let see = match &verb {
        Some(verb) => format!("see `kiln {verb} --help`"),
        None => "see `kiln --help`".to_string(),
    };
    let context = |kind| match error.get(kind) {
        Some(ContextValue::String(text)) => Some(text.clone()),
        Some(ContextValue::Strings(texts)) => texts.first().cloned(),
        _ => None,
    };
    let invalid = context(ContextKind::InvalidArg).unwrap_or_default();
    let line = if error.kind() == ErrorKind::UnknownArgument && invalid.starts_with('-') {
        let option = invalid;
        // clap's own suggestion (Jaro similarity) offers `--root-filesystem`
        // for `--tools`; the same edit-distance rule as for plugin
        // arguments suggests only near misses.
        let own = own_options(verb.as_deref());
        let suggestion = plugin_args::closest(&option, &own)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        // Only pack and validate take plugin arguments, and only after
        // the manifest's name.
        let plugin = if matches!(verb.as_deref(), Some("pack" | "validate")) {
            "; plugin arguments go after PLUGIN VERSION or a manifest path (after `--` with --manifest FILE), or as --arg NAME=VALUE"
        } else {
            ""
        };
        format!("unknown kiln option `{option}`{suggestion}{plugin}; {see}")
    } else {
        // clap's own text, minus its usage block, folded onto one line.
        let rendered = error.render().to_string();
        let parts: Vec<&str> = rendered
            .lines()
            .map(str::trim)
            .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
            .filter(|l| !l.is_empty() && !l.starts_with("tip: to pass"))
            .collect();
        // A line ending in `:` introduces the next one.
        let text = parts
            .iter()
            .fold(String::new(), |text, part| match text.is_empty() {
                true => part.to_string(),
                false if text.ends_with(':') => format!("{text} {part}"),
                false => format!("{text}; {part}"),
            });
        format!("{}; {see}", text.strip_prefix("error: ").unwrap_or(&text))
    };
    eprintln!("kiln: {}", one_line(&line));
    2
}

/// The verb a command line runs, for the `see kiln VERB --help` hint: the
/// first word that names one (a global option's value spelling a verb
/// would only misdirect the hint).
fn verb_of(args: impl Iterator<Item = OsString>) -> Option<String> {
    let command = Cli::command();
    args.filter_map(|a| a.into_string().ok())
        .find(|a| command.find_subcommand(a).is_some())
}

/// An error and its causes on one line, without repeating what a cause's
/// message already says. Errors quote file and host names, YAML and what
/// targets answered: anything left that could steer a terminal is escaped.
pub(super) fn one_line_error(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    one_line(&parts.join(": "))
}

//! The `kiln` command line: argument parsing (clap), the verbs, and the one
//! place errors become one-line messages and exit codes.
//!
//! Exit codes: 0 the run passed; 1 a validator failed (or a host did);
//! 2 bad input (usage, manifest, config file, image, connection before any
//! validator); 124 the run's `--timeout` passed; 130/143 SIGINT/SIGTERM.
//!
//! kiln's options and a plugin's arguments never mix: kiln's options come
//! before the manifest's name, and only the words after `PLUGIN VERSION`
//! (or a manifest path) are the plugin's. An unknown option before the
//! name is an unknown kiln option, so clap reports it with its
//! suggestion; plugin arguments are checked against the manifest.

mod args;
mod catalog;
mod config;
mod errors;
mod explain;
mod generated;
pub mod hand_over;
mod lint;
mod list;
mod naming;
pub mod pack;
mod pin;
pub mod pipe;
mod plugin_args;
mod progress;
mod report;
mod style;
mod target_result;
mod validate;

use anyhow::{Context, Result};
use kiln::Kiln;

use args::{own_options, Shell};
use args::{parse, Cli, Command};
pub use args::{ColorWhen, Common, Lookup, ManifestChoice};
use errors::{one_line_error, usage_error};
pub use style::{shown, shown_path, Paint, Style};

/// How `kiln pack` runs: in this process (`kiln-pack`), or handed over to
/// the binary that links libguestfs (`kiln`; see `hand_over`).
pub type PackVerb = fn(&Common, Style, &pack::PackArgs) -> Result<i32>;

/// Runs the command line and returns the exit code.
pub fn main(pack: PackVerb) -> i32 {
    let cli = match parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(error) => return usage_error(error),
    };
    let style = Style::new(&cli.common);
    let result = match &cli.command {
        Command::Lint {
            names,
            manifests,
            lookup,
        } => lint::run(&cli.common, style, names, manifests, lookup),
        Command::Explain {
            names,
            manifest,
            lookup,
        } => explain::run(&cli.common, names, manifest, lookup),
        Command::List { lookup } => list::run(lookup),
        Command::Pack(args) => pack(&cli.common, style, args),
        Command::Validate(args) => validate::run(&cli.common, style, args),
        Command::Pin(args) => pin::run(args),
        Command::Completions { shell } => generated::completions(*shell),
        Command::Man { verb } => generated::man(verb.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(error) if pipe::is_broken_pipe(&error) => pipe::die_of_sigpipe(),
        Err(error) => {
            eprintln!("kiln: {}", one_line_error(&error));
            2
        }
    }
}

/// Reads the config files and loads the manifest, with its arguments parsed;
/// `None` when the words asked for the plugin's help (printed here).
pub fn prepare(common: &Common, choice: &ManifestChoice, verb: &str) -> Result<Option<Prepared>> {
    // The deadline covers the whole run, loading included.
    if let Some(limit) = choice.timeout {
        kiln::interrupt::start_deadline(limit).context("starting the --timeout timer")?;
    }
    let (config, dirs) = choice.lookup.load()?;
    let (path, rest, label) = choice.resolve(&dirs)?;
    let kiln = common.kiln(&config)?;
    let loaded = kiln
        .load(&path, &common.load_options(&config.resource_roots))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let arguments =
        match plugin_args::parse(&loaded, &rest, &choice.args, &own_options(Some(verb)))? {
            plugin_args::PluginArgs::Help => {
                print!(
                    "{}",
                    plugin_args::help(&loaded, &format!("kiln {verb} {label}"))
                );
                return Ok(None);
            }
            plugin_args::PluginArgs::Values(values) => values,
        };
    // Argument errors are cheap to find: report them before any target opens.
    kiln::interpreter::resolve_arguments(&loaded, &arguments).context("bad plugin arguments")?;
    Ok(Some(Prepared {
        kiln,
        manifest: loaded,
        arguments,
        config,
    }))
}

/// A manifest ready to run, with its arguments checked.
pub struct Prepared {
    pub kiln: Kiln,
    pub manifest: kiln::manifest::Manifest,
    pub arguments: std::collections::BTreeMap<String, String>,
    pub config: config::Config,
}

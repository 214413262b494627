//! The command line's shape: the clap definitions of kiln's verbs and
//! options (what `--help`, the man page and the completions are rendered
//! from), and what those options build (the kiln with its validator
//! directories and limits, the load options, the config lookup). Kept apart
//! from the verbs so that the one description of the command line reads in
//! one place.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use kiln::host::HostOptions;
use kiln::manifest::LoadOptions;
use kiln::Kiln;

use super::{config, pack, pin, report, validate};

/// Pack and check machine images and live hosts from one declarative
/// manifest. Every validator runs as a sandboxed WebAssembly component.
#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_help = "\
A manifest is named the same way on every verb: PLUGIN VERSION (see `kiln list`), a path to a
manifest file (a word with a `/`, ending in .yaml or .yml, or naming an existing file), or
--manifest FILE. kiln's options go before it; pack and validate take the plugin's own arguments
after it (`kiln pack PLUGIN VERSION --help` lists them) or as --arg NAME=VALUE.

Exit codes: 0 passed, 1 a validator (or a host) failed, 2 bad input, 124 the --timeout passed,
130/143 SIGINT/SIGTERM."
)]
pub(super) struct Cli {
    #[command(flatten)]
    pub(super) common: Common,
    #[command(subcommand)]
    pub(super) command: Command,
}

/// Options every verb takes.
#[derive(Args, Clone)]
pub struct Common {
    /// Print the commands each validator runs (with their environment
    /// entries), what it logs and why it failed in full; -vv adds the
    /// commands' output.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,

    /// The same as -vv (oslo's option, as sahara-image-pack took it): the
    /// commands, what validators log, and the commands' output.
    #[arg(long, global = true, help_heading = "Global options")]
    pub debug: bool,

    /// Print only the closing line, and errors (on stderr).
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        conflicts_with_all = ["verbose", "debug"]
    )]
    pub quiet: bool,

    /// Colour the status words: on a terminal unless NO_COLOR is set
    /// (auto), always, or never.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_enum,
        value_name = "WHEN",
        default_value = "auto"
    )]
    pub color: ColorWhen,

    /// kiln's cache root: compiled components (in components/) and the
    /// memo of a failed hardware launch [default: ~/.cache/kiln].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "DIR",
        env = "KILN_CACHE_DIR"
    )]
    pub cache_dir: Option<PathBuf>,

    /// Compile components on every run instead of caching them.
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_cache: bool,

    /// A directory of third-party validator types (NAME.wasm with NAME.yaml
    /// declaring its grants) to add for every manifest. Repeatable.
    #[arg(
        long = "validators",
        global = true,
        help_heading = "Global options",
        value_name = "DIR"
    )]
    pub validator_dirs: Vec<PathBuf>,

    /// An extra resource root, searched after the manifest's own directory.
    /// Repeatable.
    #[arg(
        long = "resource-root",
        global = true,
        help_heading = "Global options",
        value_name = "DIR"
    )]
    pub resource_roots: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

/// Where `PLUGIN VERSION` is looked up, and the config files.
#[derive(Args, Clone)]
pub struct Lookup {
    /// A config file (INI, oslo style; sahara.conf is accepted). Repeatable;
    /// later files win. Without --config-file or --config-dir,
    /// /etc/sahara/sahara.conf and /etc/kiln/kiln.conf are read if they exist
    /// (KILN_DEFAULT_CONFIG=FILE[:FILE...] replaces that list).
    #[arg(long = "config-file", value_name = "PATH")]
    pub(super) config_files: Vec<PathBuf>,

    /// Read DIR/*.conf in sorted order after the --config-files, as oslo
    /// does. Repeatable.
    #[arg(long = "config-dir", value_name = "DIR")]
    pub(super) config_dirs: Vec<PathBuf>,

    /// Where PLUGIN VERSION is looked up [default: ./manifests and the bundled ones].
    #[arg(long = "manifest-dir", value_name = "DIR")]
    pub(super) manifest_dirs: Vec<PathBuf>,
}

#[derive(Subcommand)]
pub(super) enum Command {
    /// Check manifests without touching any target: exit 0 when all load.
    ///
    /// Also warns, on stderr and without changing the exit code, about
    /// third-party types whose grants let them run any command as root.
    Lint {
        /// Manifests to check: files, PLUGIN VERSION pairs, or both.
        #[arg(value_name = "MANIFEST | PLUGIN VERSION")]
        names: Vec<OsString>,
        /// A manifest file to check. Repeatable.
        #[arg(long = "manifest", value_name = "FILE")]
        manifests: Vec<PathBuf>,
        #[command(flatten)]
        lookup: Lookup,
    },
    /// Show a manifest's arguments and validator tree.
    Explain {
        /// A manifest file, or PLUGIN VERSION.
        #[arg(num_args = 0..=2, value_name = "MANIFEST | PLUGIN VERSION")]
        names: Vec<OsString>,
        /// The manifest file to explain.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        #[command(flatten)]
        lookup: Lookup,
    },
    /// List the plugins and versions available to pack.
    List {
        #[command(flatten)]
        lookup: Lookup,
    },
    /// Make a disk image match a manifest, or prove it already does.
    #[command(after_help = pack::AFTER_HELP)]
    Pack(pack::PackArgs),
    /// Check (or, with --reconcile, prepare) live hosts over SSH.
    #[command(after_help = validate::AFTER_HELP)]
    Validate(validate::ValidateArgs),
    /// Rewrite the sha256 of each .wasm a manifest declares, after a rebuild.
    #[command(after_help = pin::AFTER_HELP)]
    Pin(pin::PinArgs),
    /// Print a shell completion script for bash, zsh or fish.
    ///
    /// For example `kiln completions bash > /usr/share/bash-completion/completions/kiln`,
    /// `kiln completions zsh > /usr/share/zsh/vendor-completions/_kiln`,
    /// `kiln completions fish > /usr/share/fish/vendor_completions.d/kiln.fish`.
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff) for kiln or one of its verbs.
    ///
    /// `kiln man > kiln.1` and `kiln man pack > kiln-pack.1`; `kiln man |
    /// man -l -` reads it.
    Man {
        /// A verb whose page to print instead of kiln's own.
        #[arg(value_name = "VERB")]
        verb: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The command line, with `--debug` read as the `-vv` it stands for.
pub(super) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, clap::Error> {
    let mut cli = Cli::try_parse_from(args)?;
    if cli.common.debug {
        cli.common.verbose = cli.common.verbose.max(2);
    }
    Ok(cli)
}

impl Common {
    /// A kiln with the built-ins, the `--validators` directories and the
    /// config's validator directories loaded, and the config's
    /// `[kiln_limits]` applied.
    pub fn kiln(&self, config: &config::Config) -> Result<Kiln> {
        let options = if self.no_cache {
            HostOptions { cache_dir: None }
        } else if let Some(root) = &self.cache_dir {
            kiln::dirs::choose_cache_root(root);
            HostOptions {
                cache_dir: Some(kiln::dirs::components_dir(root)),
            }
        } else {
            HostOptions::with_default_cache()
        };
        let mut kiln = Kiln::new(options)?;
        if let Some(warning) = kiln.host().cache_warning() {
            eprintln!("kiln: {warning}");
        }
        for dir in self.validator_dirs.iter().chain(&config.validator_dirs) {
            for declaration in kiln::manifest::validator_dir(dir).map_err(anyhow::Error::msg)? {
                kiln.add_type(declaration)?;
            }
        }
        for (name, (limit, place)) in &config.limits {
            let limits = kiln::manifest::LimitSettings {
                wall_clock: Some(*limit),
                ..Default::default()
            };
            kiln.set_limits(name, &limits)
                .with_context(|| format!("{place}: [kiln_limits] {name}"))?;
        }
        Ok(kiln)
    }

    pub fn load_options(&self, extra_roots: &[PathBuf]) -> LoadOptions {
        LoadOptions {
            extra_resource_roots: self
                .resource_roots
                .iter()
                .chain(extra_roots)
                .cloned()
                .collect(),
        }
    }
}

impl Lookup {
    /// The config files read, and the directories PLUGIN VERSION is looked up in.
    pub(super) fn load(&self) -> Result<(config::Config, Vec<PathBuf>)> {
        let files = config::config_files(&self.config_files, &self.config_dirs)?;
        let config = config::Config::load(&files)?;
        let dirs = config::manifest_dirs(&self.manifest_dirs, &config);
        Ok((config, dirs))
    }
}

/// Every spelling of kiln's own options on `verb` (its own and the global
/// ones), so that one put after PLUGIN VERSION is named as kiln's.
pub(super) fn own_options(verb: Option<&str>) -> Vec<String> {
    let mut command = Cli::command();
    command.build();
    let command = match verb {
        None => &command,
        Some(verb) => match command.find_subcommand(verb) {
            Some(sub) => sub,
            None => return Vec::new(),
        },
    };
    command
        .get_arguments()
        .filter(|a| !a.is_positional())
        .flat_map(|a| {
            let longs = a
                .get_long_and_visible_aliases()
                .unwrap_or_default()
                .into_iter()
                .map(|l| format!("--{l}"));
            let shorts = a
                .get_short_and_visible_aliases()
                .unwrap_or_default()
                .into_iter()
                .map(|s| format!("-{s}"));
            longs.chain(shorts).collect::<Vec<_>>()
        })
        .collect()
}

/// What names the manifest a pack or validate runs, and its arguments.
#[derive(Args, Clone)]
pub struct ManifestChoice {
    #[command(flatten)]
    pub(super) lookup: Lookup,

    /// Run this manifest file (plugin arguments then go after `--`, or as --arg).
    #[arg(long, value_name = "FILE")]
    pub(super) manifest: Option<PathBuf>,

    /// Set a manifest argument. Repeatable.
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    pub(super) args: Vec<String>,

    /// Stop the whole run after DURATION (90s, 45m, 2h, or plain seconds):
    /// the commands in flight are stopped, nothing is committed, and kiln
    /// exits 124.
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
    pub(super) timeout: Option<std::time::Duration>,

    #[command(flatten)]
    pub output: report::OutputArgs,

    /// PLUGIN VERSION (or a manifest path), then the plugin's own arguments.
    /// Everything after the manifest's name is the plugin's.
    #[arg(trailing_var_arg = true, value_name = "PLUGIN VERSION [--NAME VALUE]")]
    pub(super) words: Vec<OsString>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<OsString> {
        text.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn debug_is_verbose_twice() {
        let verbosity = |line: &str| parse(words(line)).map(|cli| cli.common.verbose);
        assert_eq!(verbosity("kiln --debug list").unwrap(), 2);
        assert_eq!(verbosity("kiln list --debug").unwrap(), 2);
        assert_eq!(verbosity("kiln -v --debug list").unwrap(), 2);
        assert_eq!(verbosity("kiln -vvv --debug list").unwrap(), 3);
        assert_eq!(verbosity("kiln -v list").unwrap(), 1);
        assert!(verbosity("kiln --debug -q list").is_err());
    }

    #[test]
    fn own_options_include_global_and_short_spellings() {
        let own = own_options(Some("pack"));
        for option in [
            "--image",
            "--test-only",
            "--manifest",
            "--verbose",
            "-v",
            "-q",
        ] {
            assert!(own.contains(&option.to_string()), "{option}: {own:?}");
        }
    }
}

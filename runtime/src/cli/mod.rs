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

mod catalog;
mod config;
mod explain;
mod lint;
mod pack;
mod pin;
pub mod pipe;
mod plugin_args;
mod progress;
mod report;
mod validate;

use std::ffi::{OsStr, OsString};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use kiln::host::HostOptions;
use kiln::manifest::LoadOptions;
use kiln::text::escape_controls;
use kiln::Kiln;

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
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
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

    /// Where compiled components are cached [default: ~/.cache/kiln/components].
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
    config_files: Vec<PathBuf>,

    /// Read DIR/*.conf in sorted order after the --config-files, as oslo
    /// does. Repeatable.
    #[arg(long = "config-dir", value_name = "DIR")]
    config_dirs: Vec<PathBuf>,

    /// Where PLUGIN VERSION is looked up [default: ./manifests and the bundled ones].
    #[arg(long = "manifest-dir", value_name = "DIR")]
    manifest_dirs: Vec<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
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
enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Runs the command line and returns the exit code.
pub fn main() -> i32 {
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
        } => lint(&cli.common, style, names, manifests, lookup),
        Command::Explain {
            names,
            manifest,
            lookup,
        } => explain(&cli.common, names, manifest, lookup),
        Command::List { lookup } => list(lookup),
        Command::Pack(args) => pack::run(&cli.common, style, args),
        Command::Validate(args) => validate::run(&cli.common, style, args),
        Command::Pin(args) => pin::run(args),
        Command::Completions { shell } => completions(*shell),
        Command::Man { verb } => man(verb.as_deref()),
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

/// The command line, with `--debug` read as the `-vv` it stands for.
fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Cli, clap::Error> {
    let mut cli = Cli::try_parse_from(args)?;
    if cli.common.debug {
        cli.common.verbose = cli.common.verbose.max(2);
    }
    Ok(cli)
}

/// A usage error as one line, like every other error, and exit code 2;
/// `--help` and `--version` print as clap prints them.
fn usage_error(error: clap::Error) -> i32 {
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
    fn new(common: &Common) -> Style {
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

/// An error and its causes on one line, without repeating what a cause's
/// message already says. Errors quote file and host names, YAML and what
/// targets answered: anything left that could steer a terminal is escaped.
fn one_line_error(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    one_line(&parts.join(": "))
}

/// Text for one line of output: line breaks become spaces (kiln's own
/// multi-line messages), every other control character a visible escape.
pub fn one_line(text: &str) -> String {
    escape_controls(&text.replace('\n', " ")).into_owned()
}

/// A path for output: a file name is data, never terminal control.
pub fn shown_path(path: &Path) -> String {
    escape_controls(&path.to_string_lossy()).into_owned()
}

/// Text for output that must stay one line, with its controls escaped.
pub fn shown(text: &str) -> String {
    escape_controls(text).into_owned()
}

impl Common {
    /// A kiln with the built-ins, the `--validators` directories and the
    /// config's validator directories loaded, and the config's
    /// `[kiln_limits]` applied.
    pub fn kiln(&self, config: &config::Config) -> Result<Kiln> {
        let options = if self.no_cache {
            HostOptions { cache_dir: None }
        } else if let Some(dir) = &self.cache_dir {
            HostOptions {
                cache_dir: Some(dir.clone()),
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
    fn load(&self) -> Result<(config::Config, Vec<PathBuf>)> {
        let files = config::config_files(&self.config_files, &self.config_dirs)?;
        let config = config::Config::load(&files)?;
        let dirs = config::manifest_dirs(&self.manifest_dirs, &config);
        Ok((config, dirs))
    }
}

/// One way of naming a manifest on the command line.
#[derive(Debug, PartialEq, Eq)]
enum ManifestName {
    File(PathBuf),
    Plugin { plugin: String, version: String },
}

impl ManifestName {
    /// The manifest file, and how the user named it (for messages and
    /// the plugin's help).
    fn locate(&self, dirs: &[PathBuf]) -> Result<(PathBuf, String)> {
        match self {
            ManifestName::File(path) => Ok((path.clone(), path.display().to_string())),
            ManifestName::Plugin { plugin, version } => Ok((
                catalog::find_plugin(dirs, plugin, version)?,
                format!("{plugin} {version}"),
            )),
        }
    }
}

/// Whether a word names a manifest file rather than a plugin: it has a
/// `/`, ends in `.yaml` or `.yml`, or is a file that exists. Plugin names
/// are directory names under a manifest directory, so none of these.
fn names_a_file(word: &OsStr) -> bool {
    let text = word.to_string_lossy();
    text.contains('/')
        || text.ends_with(".yaml")
        || text.ends_with(".yml")
        || Path::new(word).is_file()
}

/// The manifest named at the front of `words` and the words after it;
/// `None` when `words` is empty or starts with an option.
fn take_name(words: &[OsString]) -> Result<Option<(ManifestName, &[OsString])>> {
    let Some(first) = words.first() else {
        return Ok(None);
    };
    if first.to_string_lossy().starts_with('-') {
        return Ok(None);
    }
    if names_a_file(first) {
        return Ok(Some((ManifestName::File(first.into()), &words[1..])));
    }
    let plugin = utf8(first)?;
    match words.get(1) {
        Some(version) if !version.to_string_lossy().starts_with('-') => Ok(Some((
            ManifestName::Plugin {
                plugin,
                version: utf8(version)?,
            },
            &words[2..],
        ))),
        _ => bail!(
            "`{plugin}` is no manifest file and no VERSION follows it; name a manifest as PLUGIN VERSION (see `kiln list`), a path to its .yaml file, or --manifest FILE"
        ),
    }
}

fn utf8(word: &OsStr) -> Result<String> {
    word.to_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("`{}` is not UTF-8", word.to_string_lossy()))
}

/// Exactly one manifest, named by the words or by `--manifest`.
fn one_name(words: &[OsString], manifest: &Option<PathBuf>) -> Result<ManifestName> {
    match (take_name(words)?, manifest) {
        (None, None) => bail!(
            "name a manifest: PLUGIN VERSION (see `kiln list`), a path to its .yaml file, or --manifest FILE"
        ),
        (None, Some(path)) => Ok(ManifestName::File(path.clone())),
        (Some((name, [])), None) => Ok(name),
        (Some((_, [extra, ..])), None) => bail!(
            "unexpected `{}`: name one manifest",
            extra.to_string_lossy()
        ),
        (Some(_), Some(path)) => bail!(
            "--manifest {} and `{}` both name a manifest; give one",
            path.display(),
            words[0].to_string_lossy()
        ),
    }
}

fn lint(
    common: &Common,
    style: Style,
    words: &[OsString],
    manifests: &[PathBuf],
    lookup: &Lookup,
) -> Result<i32> {
    let mut names = Vec::new();
    let mut rest = words;
    while !rest.is_empty() {
        match take_name(rest)? {
            Some((name, after)) => {
                names.push(name);
                rest = after;
            }
            None => bail!("unexpected `{}`", rest[0].to_string_lossy()),
        }
    }
    names.extend(manifests.iter().cloned().map(ManifestName::File));
    if names.is_empty() {
        bail!("name the manifests to check: files, PLUGIN VERSION pairs (see `kiln list`), or --manifest FILE");
    }
    let (config, dirs) = lookup.load()?;
    let kiln = common.kiln(&config)?;
    let options = common.load_options(&config.resource_roots);
    let mut failed = 0;
    // A `--validators` type is linted with every manifest; say it once.
    let mut said = std::collections::HashSet::new();
    for name in &names {
        let loaded = name
            .locate(&dirs)
            .and_then(|(path, _)| kiln.load(&path, &options).map_err(anyhow::Error::from));
        match loaded {
            Ok(manifest) => {
                let mut nodes = 0;
                manifest.root.walk(&mut |_, _| nodes += 1);
                let warnings = lint::warnings(&manifest);
                for warning in &warnings {
                    let line = warning.to_string();
                    if said.insert(line.clone()) {
                        eprintln!("{line}");
                    }
                }
                if !style.quiet {
                    let shared = match &manifest.version {
                        Some(entry) => format!(
                            "version entry for {}, {} value{}; ",
                            shown_path(&manifest.path),
                            entry.values.len(),
                            if entry.values.len() == 1 { "" } else { "s" }
                        ),
                        None => String::new(),
                    };
                    let named = manifest
                        .version
                        .as_ref()
                        .map_or(&manifest.path, |entry| &entry.path);
                    println!(
                        "{}: ok ({shared}{} arguments, {} validators{})",
                        shown_path(named),
                        manifest.arguments.len(),
                        nodes - 1,
                        match warnings.len() {
                            0 => String::new(),
                            1 => ", 1 warning".to_string(),
                            n => format!(", {n} warnings"),
                        }
                    );
                }
            }
            Err(error) => {
                failed += 1;
                eprintln!("{}", one_line_error(&error));
            }
        }
    }
    if failed > 0 {
        eprintln!("kiln: {failed} of {} manifests have errors", names.len());
        return Ok(2);
    }
    Ok(0)
}

fn explain(
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
    print!("{}", explain::render(&manifest));
    Ok(0)
}

fn list(lookup: &Lookup) -> Result<i32> {
    let (_, dirs) = lookup.load()?;
    let found = catalog::discover(&dirs);
    if found.is_empty() {
        let searched: Vec<String> = dirs.iter().map(|d| shown_path(d)).collect();
        println!(
            "no plugins found (searched: {})",
            if searched.is_empty() {
                "nothing".into()
            } else {
                searched.join(", ")
            }
        );
        return Ok(0);
    }
    // Plugin and version names are directory names: data.
    let rows: Vec<ListRow> = found.iter().map(ListRow::of).collect();
    let width = rows
        .iter()
        .map(|row| row.plugin.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    let manifest_width = rows
        .iter()
        .map(|row| row.manifest.chars().count())
        .max()
        .unwrap_or(8)
        .max(8);
    println!(
        "{}",
        format!(
            "{:width$}  {:10}  {:manifest_width$}  SETS",
            "PLUGIN", "VERSION", "MANIFEST"
        )
        .trim_end()
    );
    for row in &rows {
        println!(
            "{}",
            format!(
                "{:width$}  {:10}  {:manifest_width$}  {}",
                row.plugin, row.version, row.manifest, row.sets
            )
            .trim_end()
        );
    }
    // Which versions share one manifest, the way Sahara's plugins did.
    let mut shared: Vec<(&str, Vec<String>)> = Vec::new();
    for row in rows.iter().filter(|row| row.entry) {
        let label = format!("{} {}", row.plugin, row.version);
        match shared.iter_mut().find(|(m, _)| *m == row.manifest) {
            Some((_, versions)) => versions.push(label),
            None => shared.push((&row.manifest, vec![label])),
        }
    }
    if !shared.is_empty() {
        println!("\nshared manifests (version entries, see `kiln explain PLUGIN VERSION`):");
        for (manifest, versions) in shared {
            println!("  {manifest}: {}", versions.join(", "));
        }
    }
    Ok(0)
}

/// One line of `kiln list`, every field escaped.
struct ListRow {
    plugin: String,
    version: String,
    /// The manifest the version runs: its own, or the one its entry shares.
    manifest: String,
    /// The values a version entry sets, `name=value` (`(default)` for defaults).
    sets: String,
    entry: bool,
}

impl ListRow {
    fn of(found: &catalog::PluginVersion) -> ListRow {
        let (manifest, sets) = match found.entry() {
            None => (shown_path(&found.manifest), String::new()),
            Some(Ok(entry)) => (
                shown_path(&entry.manifest),
                entry
                    .values
                    .iter()
                    .map(|v| {
                        let suffix = match v.kind {
                            kiln::manifest::ValueKind::Fixed => "",
                            kiln::manifest::ValueKind::Default => " (default)",
                        };
                        format!("{}={}{suffix}", shown(&v.argument), shown(&v.value))
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Some(Err(problem)) => (
                shown_path(&found.manifest),
                format!("(bad version entry: {}; see `kiln lint`)", shown(&problem)),
            ),
        };
        ListRow {
            plugin: shown(&found.plugin),
            version: shown(&found.version),
            manifest,
            sets,
            entry: found.is_entry(),
        }
    }
}

fn completions(shell: Shell) -> Result<i32> {
    use clap_complete::{generate, shells};
    let mut command = Cli::command();
    // Into a buffer first: clap_complete panics on a failed write, and a
    // closed pipe should end kiln quietly (see `pipe`).
    let mut out = Vec::new();
    match shell {
        Shell::Bash => generate(shells::Bash, &mut command, "kiln", &mut out),
        Shell::Zsh => generate(shells::Zsh, &mut command, "kiln", &mut out),
        Shell::Fish => generate(shells::Fish, &mut command, "kiln", &mut out),
    }
    use std::io::Write;
    std::io::stdout().write_all(&out)?;
    Ok(0)
}

/// The man page, rendered from the same clap definitions as `--help`.
fn man(verb: Option<&str>) -> Result<i32> {
    let mut command = Cli::command();
    command.build();
    let page = match verb {
        None => command,
        Some(verb) => {
            let Some(sub) = command.find_subcommand(verb) else {
                let verbs: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
                bail!("no verb `{verb}` (verbs: {})", verbs.join(", "));
            };
            // `kiln-pack(1)`, as git and cargo name their verbs' pages.
            // clap names are 'static; this runs once before exit.
            let name: &'static str = Box::leak(format!("kiln-{verb}").into_boxed_str());
            sub.clone()
                .name(name)
                .bin_name(format!("kiln {verb}"))
                .display_name(name)
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    use std::io::Write;
    std::io::stdout().write_all(&out)?;
    Ok(0)
}

/// Every spelling of kiln's own options on `verb` (its own and the global
/// ones), so that one put after PLUGIN VERSION is named as kiln's.
fn own_options(verb: Option<&str>) -> Vec<String> {
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
    lookup: Lookup,

    /// Run this manifest file (plugin arguments then go after `--`, or as --arg).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,

    /// Set a manifest argument. Repeatable.
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    args: Vec<String>,

    /// Stop the whole run after DURATION (90s, 45m, 2h, or plain seconds):
    /// the commands in flight are stopped, nothing is committed, and kiln
    /// exits 124.
    #[arg(long, value_name = "DURATION", value_parser = config::parse_duration)]
    timeout: Option<std::time::Duration>,

    #[command(flatten)]
    pub output: report::OutputArgs,

    /// PLUGIN VERSION (or a manifest path), then the plugin's own arguments.
    /// Everything after the manifest's name is the plugin's.
    #[arg(trailing_var_arg = true, value_name = "PLUGIN VERSION [--NAME VALUE]")]
    words: Vec<OsString>,
}

impl ManifestChoice {
    /// The manifest file, the words after its name (the plugin's
    /// arguments) and how it was named.
    fn resolve(&self, dirs: &[PathBuf]) -> Result<(PathBuf, Vec<String>, String)> {
        let (path, rest, label) = match (take_name(&self.words)?, &self.manifest) {
            (Some((name, rest)), None) => {
                let (path, label) = name.locate(dirs)?;
                (path, rest, label)
            }
            (None, Some(path)) => (
                path.clone(),
                &self.words[..],
                format!("--manifest {}", path.display()),
            ),
            (Some(_), Some(path)) => bail!(
                "--manifest {} and `{}` both name a manifest; give one (plugin arguments are --NAME VALUE)",
                path.display(),
                self.words[0].to_string_lossy()
            ),
            (None, None) => bail!(
                "name a manifest: PLUGIN VERSION (see `kiln list`), a path to its .yaml file, or --manifest FILE"
            ),
        };
        let rest = rest.iter().map(|w| utf8(w)).collect::<Result<Vec<_>>>()?;
        Ok((path, rest, label))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<OsString> {
        text.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn a_manifest_is_named_by_a_path_or_plugin_version() {
        let w = words("demo 1.0 --tools full");
        let (name, rest) = take_name(&w).unwrap().unwrap();
        assert_eq!(
            name,
            ManifestName::Plugin {
                plugin: "demo".into(),
                version: "1.0".into()
            }
        );
        assert_eq!(rest, &w[2..]);
        for file in ["my/image.yaml", "image.yaml", "x.yml", "./anything"] {
            let w = words(&format!("{file} --tools full"));
            let (name, rest) = take_name(&w).unwrap().unwrap();
            assert_eq!(name, ManifestName::File(file.into()));
            assert_eq!(rest.len(), 2);
        }
        assert!(take_name(&words("--tools full")).unwrap().is_none());
        let error = take_name(&words("demo --tools")).unwrap_err().to_string();
        assert!(error.contains("no VERSION follows"), "{error}");
    }

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

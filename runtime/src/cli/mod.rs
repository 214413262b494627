//! The `kiln` command line: argument parsing (clap), the verbs, and the one
//! place errors become one-line messages and exit codes.
//!
//! Exit codes: 0 the run passed; 1 a validator failed (or a host did);
//! 2 bad input (usage, manifest, image, connection before any validator).

mod config;
mod explain;
mod pack;
mod plugin_args;
mod progress;
mod validate;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use kiln::host::HostOptions;
use kiln::manifest::LoadOptions;
use kiln::Kiln;

/// Pack and check machine images and live hosts from one declarative
/// manifest. Every validator runs as a sandboxed WebAssembly component.
#[derive(Parser)]
#[command(name = "kiln", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// Options every verb takes.
#[derive(Args, Clone)]
pub struct Common {
    /// Print the commands each validator runs and what it logs.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = "Global options")]
    pub verbose: u8,

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

#[derive(Subcommand)]
enum Command {
    /// Check manifests without touching any target: exit 0 when all load.
    Lint {
        /// Manifests to check.
        #[arg(required = true, value_name = "MANIFEST")]
        manifests: Vec<PathBuf>,
    },
    /// Show a manifest's arguments and validator tree.
    Explain {
        /// A manifest file, or PLUGIN VERSION.
        #[arg(required = true, num_args = 1..=2, value_name = "MANIFEST | PLUGIN VERSION")]
        target: Vec<String>,
        /// Where plugins are found [default: ./manifests and the bundled ones].
        #[arg(long = "manifest-dir", value_name = "DIR")]
        manifest_dirs: Vec<PathBuf>,
    },
    /// List the plugins and versions available to pack.
    List {
        /// Where plugins are found [default: ./manifests and the bundled ones].
        #[arg(long = "manifest-dir", value_name = "DIR")]
        manifest_dirs: Vec<PathBuf>,
        /// Config files (INI) naming manifest directories. Repeatable.
        #[arg(long = "config-file", value_name = "PATH")]
        config_files: Vec<PathBuf>,
    },
    /// Make a disk image match a manifest, or prove it already does.
    #[command(after_help = pack::AFTER_HELP)]
    Pack(pack::PackArgs),
    /// Check (or, with --reconcile, prepare) live hosts over SSH.
    #[command(after_help = validate::AFTER_HELP)]
    Validate(validate::ValidateArgs),
}

/// Runs the command line and returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Lint { manifests } => lint(&cli.common, manifests),
        Command::Explain {
            target,
            manifest_dirs,
        } => explain(&cli.common, target, manifest_dirs),
        Command::List {
            manifest_dirs,
            config_files,
        } => list(manifest_dirs, config_files),
        Command::Pack(args) => pack::run(&cli.common, args),
        Command::Validate(args) => validate::run(&cli.common, args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kiln: {}", one_line_error(&error));
            2
        }
    }
}

/// An error and its causes on one line, without repeating what a cause's
/// message already says.
fn one_line_error(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ").replace('\n', " ")
}

impl Common {
    /// A kiln with the built-ins and the `--validators` directories loaded.
    pub fn kiln(&self, extra_validator_dirs: &[PathBuf]) -> Result<Kiln> {
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
        for dir in self.validator_dirs.iter().chain(extra_validator_dirs) {
            for declaration in kiln::manifest::validator_dir(dir).map_err(anyhow::Error::msg)? {
                kiln.add_type(declaration)?;
            }
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

fn lint(common: &Common, manifests: &[PathBuf]) -> Result<i32> {
    let kiln = common.kiln(&[])?;
    let options = common.load_options(&[]);
    let mut failed = 0;
    for path in manifests {
        match kiln.load(path, &options) {
            Ok(manifest) => {
                let mut nodes = 0;
                manifest.root.walk(&mut |_, _| nodes += 1);
                println!(
                    "{}: ok ({} arguments, {} validators)",
                    path.display(),
                    manifest.arguments.len(),
                    nodes - 1
                );
            }
            Err(error) => {
                failed += 1;
                eprintln!("{error}");
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "kiln: {failed} of {} manifests have errors",
            manifests.len()
        );
        return Ok(2);
    }
    Ok(0)
}

fn explain(common: &Common, target: &[String], manifest_dirs: &[PathBuf]) -> Result<i32> {
    let path = match target {
        [file] => PathBuf::from(file),
        [plugin, version] => {
            let dirs = config::manifest_dirs(manifest_dirs, &config::Config::default());
            config::find_plugin(&dirs, plugin, version)?
        }
        _ => unreachable!("clap takes one or two values"),
    };
    let kiln = common.kiln(&[])?;
    let manifest = kiln
        .load(&path, &common.load_options(&[]))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    print!("{}", explain::render(&manifest));
    Ok(0)
}

fn list(manifest_dirs: &[PathBuf], config_files: &[PathBuf]) -> Result<i32> {
    let config = config::Config::load(config_files)?;
    let dirs = config::manifest_dirs(manifest_dirs, &config);
    let found = config::discover(&dirs);
    if found.is_empty() {
        let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
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
    let width = found
        .iter()
        .map(|p| p.plugin.len())
        .max()
        .unwrap_or(6)
        .max(6);
    println!("{:width$}  {:10}  MANIFEST", "PLUGIN", "VERSION");
    for entry in &found {
        println!(
            "{:width$}  {:10}  {}",
            entry.plugin,
            entry.version,
            entry.manifest.display()
        );
    }
    Ok(0)
}

/// Loads the manifest a pack or validate names: `--manifest FILE`, or
/// `PLUGIN VERSION` in the manifest directories.
pub fn resolve_manifest(
    manifest: &Option<PathBuf>,
    words: &[String],
    manifest_dirs: &[PathBuf],
    config: &config::Config,
) -> Result<(PathBuf, Vec<String>, String)> {
    if let Some(path) = manifest {
        return Ok((
            path.clone(),
            words.to_vec(),
            format!("--manifest {}", path.display()),
        ));
    }
    match words {
        [plugin, version, rest @ ..] if !plugin.starts_with('-') && !version.starts_with('-') => {
            let dirs = config::manifest_dirs(manifest_dirs, config);
            let path = config::find_plugin(&dirs, plugin, version)?;
            Ok((path, rest.to_vec(), format!("{plugin} {version}")))
        }
        _ => anyhow::bail!("name a manifest: PLUGIN VERSION (see `kiln list`) or --manifest FILE"),
    }
}

/// What names the manifest a pack or validate runs, and its arguments.
#[derive(Args)]
pub struct ManifestChoice {
    /// A config file (INI, oslo style; sahara.conf is accepted). Repeatable;
    /// later files win.
    #[arg(long = "config-file", value_name = "PATH")]
    config_files: Vec<PathBuf>,

    /// Where PLUGIN VERSION is looked up [default: ./manifests and the bundled ones].
    #[arg(long = "manifest-dir", value_name = "DIR")]
    manifest_dirs: Vec<PathBuf>,

    /// Run this manifest file instead of PLUGIN VERSION.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,

    /// Set a manifest argument. Repeatable.
    #[arg(long = "arg", value_name = "NAME=VALUE")]
    args: Vec<String>,

    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// PLUGIN VERSION, then the plugin's own arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PLUGIN VERSION [--NAME VALUE]"
    )]
    words: Vec<String>,
}

/// Reads the config files and loads the manifest, with its arguments parsed;
/// `None` when the words asked for the plugin's help (printed here).
pub fn prepare(common: &Common, choice: &ManifestChoice, usage: &str) -> Result<Option<Prepared>> {
    let ManifestChoice {
        config_files,
        manifest_dirs,
        manifest,
        args: arg_pairs,
        words,
        ..
    } = choice;
    let config = config::Config::load(config_files)?;
    let (path, rest, label) = resolve_manifest(manifest, words, manifest_dirs, &config)?;
    let kiln = common.kiln(&config.validator_dirs)?;
    let loaded = kiln
        .load(&path, &common.load_options(&config.resource_roots))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let arguments = match plugin_args::parse(&loaded, &rest, arg_pairs)? {
        plugin_args::PluginArgs::Help => {
            print!(
                "{}",
                plugin_args::help(&loaded, &format!("{usage} {label}"))
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

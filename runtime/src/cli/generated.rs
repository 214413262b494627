//! What is rendered from the clap definitions rather than written by
//! hand: the shell completion scripts and the man pages, so they never
//! drift from `--help`.

use anyhow::{bail, Result};
use clap::CommandFactory;

use super::{Cli, Shell};

pub fn completions(shell: Shell) -> Result<i32> {
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
pub fn man(verb: Option<&str>) -> Result<i32> {
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

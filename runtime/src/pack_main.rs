//! `kiln-pack`: kiln with the disk-image target (libguestfs) linked. `kiln
//! pack` hands its arguments over to this binary (see `main.rs`), and it
//! runs them as `kiln` would, `pack` included; it is the same command line,
//! from the same source, so every other verb works here too.

#[path = "cli/mod.rs"]
mod cli;

fn main() {
    cli::pipe::install();
    let code = match std::panic::catch_unwind(|| cli::main(cli::pack::run)) {
        Ok(code) => code,
        Err(_) if cli::pipe::broke() => cli::pipe::die_of_sigpipe(),
        Err(panic) => std::panic::resume_unwind(panic),
    };
    std::process::exit(code);
}

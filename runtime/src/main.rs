//! The `kiln` command. All of it lives in [`cli`]; this only sets the exit
//! code, and turns a closed pipe into a quiet exit (see `cli/pipe.rs`).

mod cli;

fn main() {
    cli::pipe::install();
    let code = match std::panic::catch_unwind(cli::main) {
        Ok(code) => code,
        // The run has unwound, its destructors cleaned up; nobody reads.
        Err(_) if cli::pipe::broke() => cli::pipe::die_of_sigpipe(),
        Err(panic) => std::panic::resume_unwind(panic),
    };
    std::process::exit(code);
}

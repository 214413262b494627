//! The `kiln` command. All of it lives in [`cli`]; this only sets the exit
//! code, and turns a closed pipe into a quiet exit (see `cli/pipe.rs`).
//!
//! `kiln pack` is the one verb that opens disk images, and libguestfs with
//! the sixty shared libraries it pulls in (libvirt, gnutls, glib, ICU…)
//! costs about 20 ms to load before `main` runs. So this binary does not
//! link it: it parses the command line and, for `pack`, hands the very
//! same arguments over to `kiln-pack` beside it (see `pack_main.rs` and
//! `cli/hand_over.rs`). `lint`, `explain`, `list` and `validate` start
//! without it.

mod cli;

fn main() {
    cli::pipe::install();
    let code = match std::panic::catch_unwind(|| cli::main(cli::hand_over::pack)) {
        Ok(code) => code,
        // The run has unwound, its destructors cleaned up; nobody reads.
        Err(_) if cli::pipe::broke() => cli::pipe::die_of_sigpipe(),
        Err(panic) => std::panic::resume_unwind(panic),
    };
    std::process::exit(code);
}

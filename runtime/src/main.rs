//! The `kiln` command. All of it lives in [`cli`]; this only sets the exit code.

mod cli;

fn main() {
    std::process::exit(cli::main());
}

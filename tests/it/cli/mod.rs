//! The `kiln` binary's behaviour that needs no real target: lint, explain,
//! list, plugin help, and the one-line errors for bad input that must come
//! before any image is opened or host contacted. One module per topic;
//! the helpers every topic runs kiln with are here.

mod arguments;
mod catalog;
mod config_files;
mod hand_over;
mod output;
mod reports_and_pin;

use crate::support;
use crate::support::reports;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{component, repo_root, Fixture};

fn kiln(args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    kiln_os(&args)
}

fn kiln_os(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        // Never the machine's /etc/sahara/sahara.conf or /etc/kiln/kiln.conf.
        .env("KILN_DEFAULT_CONFIG", "")
        .current_dir(repo_root())
        .output()
        .expect("kiln runs")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `validator_types` entry for the `attacks` test component.
fn declared(name: &str, keys: &str) -> String {
    format!(
        "  {name}:\n    wasm: {}\n{keys}",
        component("kiln_hostile_attacks").display()
    )
}

/// Asserts a usage error: exit 2, one line on stderr holding `expected`
/// and none of `absent`, nothing on stdout.
fn assert_refused(args: &[&str], expected: &[&str], absent: &[&str]) {
    let output = kiln(args);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
    assert!(stdout.is_empty(), "{args:?}: {stdout}");
    for text in expected {
        assert!(
            stderr.contains(text),
            "{args:?}: expected `{text}` in `{stderr}`"
        );
    }
    for text in absent {
        assert!(!stderr.contains(text), "{args:?}: `{text}` in `{stderr}`");
    }
}

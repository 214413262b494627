//! Everything on the far side of the [`Remote`] trait. This file holds the
//! trait and the values that cross it (commands with their output limits,
//! file reads and writes with their size, symlink and time limits, command
//! output and errors); the submodules hold what the remotes share and each
//! kind of remote:
//! - [`shell`]: quoting for the POSIX shell every target runs commands in;
//! - [`distro`]: distro families and os-release, the one place;
//! - [`scripted`]: the in-memory remote the tests pin exact semantics with;
//! - [`ssh`]: hosts over OpenSSH;
//! - [`image`]: disk images through libguestfs (feature `image-target`).
//!
//! Validators never see a remote directly: the component host turns their
//! `run-command`, `write-file` and `read-file` imports into calls here.

pub mod distro;
#[cfg(feature = "image-target")]
pub mod image;
pub mod scripted;
pub mod shell;
pub mod ssh;

pub use distro::family_of;
pub use shell::shell_quote;

use std::sync::Arc;
use std::time::Duration;

/// A command to run on the target as root through `/bin/sh -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCommand {
    /// Shell text, run by `/bin/sh -c`.
    pub script: String,
    /// Extra environment entries, passed without any shell interpretation.
    /// The component host admits only identifier names (see
    /// `host::grants::check_env_name`); targets pass them after `env --`.
    pub env: Vec<(String, String)>,
    /// How long the command may run; `None` means no limit of its own.
    pub timeout: Option<Duration>,
    /// The most bytes of stdout plus stderr kiln will hold. A target stops
    /// reading there, ends the command and returns
    /// [`RemoteError::TooLarge`]; `None` means no limit of its own.
    pub output_limit: Option<usize>,
}

impl RemoteCommand {
    pub fn new(script: impl Into<String>) -> Self {
        RemoteCommand {
            script: script.into(),
            env: Vec::new(),
            timeout: None,
            output_limit: None,
        }
    }

    /// A command that runs `argv` without a shell parsing any of it: every
    /// word is quoted, so the target's shell only execs the program.
    pub fn program(argv: &[String]) -> Self {
        let words: Vec<String> = argv.iter().map(|word| shell_quote(word)).collect();
        Self::new(format!("exec {}", words.join(" ")))
    }

    /// The whole command as one line of POSIX shell: `env --` then the
    /// entries, assigned with quoted values, then the script under
    /// `/bin/sh -c`. Quoting keeps any value or script text from being
    /// parsed as shell, and `--` keeps any name from being read as an
    /// option of `env(1)`.
    pub fn to_shell_line(&self) -> String {
        let mut line = String::new();
        if !self.env.is_empty() {
            line.push_str("env --");
            for (name, value) in &self.env {
                line.push(' ');
                line.push_str(&shell_quote(&format!("{name}={value}")));
            }
            line.push(' ');
        }
        line.push_str("/bin/sh -c ");
        line.push_str(&shell_quote(&self.script));
        line
    }
}

/// A file to write on the target.
#[derive(Debug, Clone, Copy)]
pub struct FileWrite<'a> {
    pub path: &'a str,
    pub contents: &'a [u8],
    /// Permission bits; `None` keeps an existing file's (0o644 for a new one).
    pub mode: Option<u32>,
    /// Owner; `None` keeps an existing file's (root for a new one).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Refuse ([`RemoteError::Symlink`]) when the file's directory is
    /// reached through a symlink, so the write lands exactly at `path`
    /// (which the host has checked against the type's grants). The file
    /// itself may be a symlink: the write replaces the link, never follows it.
    pub exact_path: bool,
    pub timeout: Option<Duration>,
}

impl<'a> FileWrite<'a> {
    /// A write of `contents` to `path` with `mode`, owned by root.
    pub fn new(path: &'a str, contents: &'a [u8], mode: u32) -> Self {
        FileWrite {
            path,
            contents,
            mode: Some(mode),
            uid: Some(0),
            gid: Some(0),
            exact_path: false,
            timeout: None,
        }
    }
}

/// A file to read (or inspect) on the target.
#[derive(Debug, Clone, Copy)]
pub struct FileRead<'a> {
    pub path: &'a str,
    /// The most bytes kiln will hold: a larger file is not read past it and
    /// gives [`RemoteError::TooLarge`]. `None` means no limit of its own.
    pub max_bytes: Option<usize>,
    /// Refuse ([`RemoteError::Symlink`]) when any component of the path,
    /// the file itself included, is a symlink.
    pub exact_path: bool,
    pub timeout: Option<Duration>,
}

impl<'a> FileRead<'a> {
    pub fn new(path: &'a str) -> Self {
        FileRead {
            path,
            max_bytes: None,
            exact_path: false,
            timeout: None,
        }
    }
}

/// What a path names on the target (the path itself, symlinks not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Other,
}

impl FileKind {
    /// The kind `st_mode`'s file-type bits name (`S_IFMT`).
    pub fn from_mode(st_mode: u32) -> FileKind {
        match st_mode & 0o170000 {
            0o100000 => FileKind::Regular,
            0o040000 => FileKind::Directory,
            0o120000 => FileKind::Symlink,
            _ => FileKind::Other,
        }
    }
}

/// Where the `script` type uploads a script it runs next (the path goes on
/// with 16 hex digits): the interpreter holds such an upload for
/// [`Remote::write_and_run`], and the SSH target removes one whose run
/// never finished.
pub const SCRIPT_UPLOAD_PREFIX: &str = "/tmp/kiln-script-";

/// What a command's output is called in [`RemoteError::TooLarge`].
pub const COMMAND_OUTPUT: &str = "the command's output";

/// A file's metadata on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMetadata {
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    pub fn success(stdout: impl Into<Vec<u8>>) -> Self {
        CommandOutput {
            exit_code: 0,
            stdout: stdout.into(),
            stderr: Vec::new(),
        }
    }

    pub fn failure(exit_code: i32, stderr: impl Into<Vec<u8>>) -> Self {
        CommandOutput {
            exit_code,
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }
}

/// Which of a command's outputs a chunk of it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Receives a command's output while the command runs (for `-vv`), chunk
/// by chunk and from whatever thread the target reads on. Chunks are raw
/// bytes: not split at lines, not escaped.
#[derive(Clone)]
pub struct OutputSink(Arc<OutputReceiver>);

type OutputReceiver = dyn Fn(OutputStream, &[u8]) + Send + Sync;

impl OutputSink {
    pub fn new(receive: impl Fn(OutputStream, &[u8]) + Send + Sync + 'static) -> Self {
        OutputSink(Arc::new(receive))
    }

    pub fn send(&self, stream: OutputStream, bytes: &[u8]) {
        if !bytes.is_empty() {
            (self.0)(stream, bytes)
        }
    }
}

impl std::fmt::Debug for OutputSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputSink")
    }
}

/// Why a target could not do what was asked (as opposed to a command that ran
/// and failed, which is a `CommandOutput` with a non-zero exit code).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{target} is unreachable: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("`{command}` on {target} did not finish within {seconds:.0} s")]
    Timeout {
        target: String,
        command: String,
        seconds: f64,
    },
    #[error("{target}: {message}")]
    Failed { target: String, message: String },
    /// A command's output or a file passed the bytes kiln would hold; the
    /// target stopped reading there (and ended the command).
    #[error("{target}: {what} passed the limit of {limit} bytes")]
    TooLarge {
        target: String,
        what: String,
        limit: usize,
    },
    /// An exact-path file call met a symlink on the way.
    #[error("{target}: {path} is reached through a symlink ({detail})")]
    Symlink {
        target: String,
        path: String,
        detail: String,
    },
}

/// A target kiln can run validators against.
pub trait Remote: Send {
    /// A short name for messages: "image debian.qcow2", "host web1".
    fn name(&self) -> String;

    /// The distro's ID as the target reports it ("debian", "ubuntu", "centos").
    fn distro(&mut self) -> Result<String, RemoteError>;

    /// Runs a command as root.
    fn run(&mut self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError>;

    /// Runs a command as root like [`Remote::run`], handing its output to
    /// `sink` as it arrives. A target that cannot stream (the disk image:
    /// libguestfs returns a command's output when it ends) keeps this
    /// default, which hands the output over whole once the command ended.
    fn run_streaming(
        &mut self,
        command: &RemoteCommand,
        sink: &OutputSink,
    ) -> Result<CommandOutput, RemoteError> {
        let result = self.run(command);
        if let Ok(output) = &result {
            sink.send(OutputStream::Stdout, &output.stdout);
            sink.send(OutputStream::Stderr, &output.stderr);
        }
        result
    }

    /// Writes a file, replacing it without ever showing a partial one.
    fn write_file(&mut self, write: &FileWrite<'_>) -> Result<(), RemoteError>;

    /// Whether [`write_and_run`](Self::write_and_run) costs one round trip
    /// instead of two. Only then does the interpreter hold a script upload
    /// back to join it with the run that follows; on other targets the
    /// upload goes out when the component makes it, as a call of its own.
    fn joins_upload_and_run(&self) -> bool {
        false
    }

    /// Writes a file, then (only if that worked) runs a command as root:
    /// the upload of a script and its run. A target that can do both in
    /// one round trip overrides this (and
    /// [`joins_upload_and_run`](Self::joins_upload_and_run)); the default
    /// makes the two calls, so what reaches the target is the same either
    /// way. A failed write is this call's error and the command never runs.
    fn write_and_run(
        &mut self,
        write: &FileWrite<'_>,
        command: &RemoteCommand,
    ) -> Result<CommandOutput, RemoteError> {
        self.write_file(write)?;
        self.run(command)
    }

    /// Reads a regular file; `None` when nothing is at the path. Anything
    /// else (a directory, a device, a FIFO) is an error, never read.
    fn read_file(&mut self, read: &FileRead<'_>) -> Result<Option<Vec<u8>>, RemoteError>;

    /// The metadata of the path itself (`lstat`); `None` when nothing is
    /// there. `read.max_bytes` does not apply.
    fn metadata(&mut self, read: &FileRead<'_>) -> Result<Option<FileMetadata>, RemoteError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_line_passes_env_as_quoted_assignments() {
        let mut command = RemoteCommand::new("echo \"$v\"");
        command.env.push(("v".into(), "$(touch /pwned)".into()));
        assert_eq!(
            command.to_shell_line(),
            r#"env -- 'v=$(touch /pwned)' /bin/sh -c 'echo "$v"'"#
        );
    }
}

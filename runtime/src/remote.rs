//! The `Remote` trait: everything kiln needs from a target (a disk image
//! through libguestfs, a host over SSH, or the in-memory scripted remote the
//! tests use), plus the shell quoting every target shares.
//!
//! Validators never see a target directly: the component host turns their
//! `run-command`, `write-file` and `read-file` imports into calls here.

use std::time::Duration;

/// A command to run on the target as root through `/bin/sh -c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCommand {
    /// Shell text, run by `/bin/sh -c`.
    pub script: String,
    /// Extra environment entries, passed without any shell interpretation.
    pub env: Vec<(String, String)>,
    /// How long the command may run; `None` means no limit of its own.
    pub timeout: Option<Duration>,
}

impl RemoteCommand {
    pub fn new(script: impl Into<String>) -> Self {
        RemoteCommand {
            script: script.into(),
            env: Vec::new(),
            timeout: None,
        }
    }

    /// The whole command as one line of POSIX shell: `env` entries are
    /// assigned with quoted values, then the script runs under `/bin/sh -c`.
    /// Quoting keeps any value or script text from being parsed as shell.
    pub fn to_shell_line(&self) -> String {
        let mut line = String::new();
        if !self.env.is_empty() {
            line.push_str("env");
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
}

/// A target kiln can run validators against.
pub trait Remote: Send {
    /// A short name for messages: "image debian.qcow2", "host web1".
    fn name(&self) -> String;

    /// The distro's ID as the target reports it ("debian", "ubuntu", "centos").
    fn distro(&mut self) -> Result<String, RemoteError>;

    /// Runs a command as root.
    fn run(&mut self, command: &RemoteCommand) -> Result<CommandOutput, RemoteError>;

    /// Writes `contents` to `path` with permission bits `mode`, replacing it.
    fn write_file(&mut self, path: &str, contents: &[u8], mode: u32) -> Result<(), RemoteError>;

    /// Reads `path`; `None` when it does not exist.
    fn read_file(&mut self, path: &str) -> Result<Option<Vec<u8>>, RemoteError>;
}

/// Quotes `word` for a POSIX shell so that it is passed as one literal word.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:+,@%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Maps a distro ID to its family, the way `os_case` and `package` match.
/// Returns `None` for distros kiln knows no family for.
pub fn family_of(distro: &str) -> Option<&'static str> {
    let id = distro.trim().to_ascii_lowercase();
    let family = match id.as_str() {
        "redhat"
        | "rhel"
        | "redhatenterpriseserver"
        | "redhatenterprise"
        | "centos"
        | "centos7"
        | "centos8"
        | "centos-stream"
        | "fedora"
        | "rocky"
        | "almalinux"
        | "ol"
        | "oraclelinux"
        | "scientificlinux"
        | "amzn"
        | "amazon"
        | "cloudlinux"
        | "eurolinux"
        | "circle"
        | "openeuler" => "redhat",
        "debian" | "ubuntu" | "linuxmint" | "raspbian" | "devuan" | "kali" | "pop"
        | "elementary" | "neon" | "zorin" | "pureos" | "deepin" => "debian",
        "suse"
        | "sles"
        | "sled"
        | "opensuse"
        | "opensuse-leap"
        | "opensuse-tumbleweed"
        | "sle-micro" => "suse",
        _ => return None,
    };
    Some(family)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_hostile_values_literal() {
        assert_eq!(shell_quote("plain-word_1.0"), "plain-word_1.0");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("x'; rm -rf /; '"), r"'x'\''; rm -rf /; '\'''");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn shell_line_passes_env_as_quoted_assignments() {
        let mut command = RemoteCommand::new("echo \"$v\"");
        command.env.push(("v".into(), "$(touch /pwned)".into()));
        assert_eq!(
            command.to_shell_line(),
            r#"env 'v=$(touch /pwned)' /bin/sh -c 'echo "$v"'"#
        );
    }

    #[test]
    fn families_cover_common_distros() {
        assert_eq!(family_of("centos"), Some("redhat"));
        assert_eq!(family_of("rocky"), Some("redhat"));
        assert_eq!(family_of("ubuntu"), Some("debian"));
        assert_eq!(family_of("debian"), Some("debian"));
        assert_eq!(family_of("opensuse-leap"), Some("suse"));
        assert_eq!(family_of("plan9"), None);
    }
}

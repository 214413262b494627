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
    /// patterns (see [`command_match`]).
    pub command_patterns: Vec<String>,
    /// Environment names the type may pass although they change which
    /// program runs or what it loads (see [`SENSITIVE_ENV_NAMES`]).
    pub env_names: Vec<String>,
    /// When non-empty, `read-file` and `file-metadata` only reach paths
    /// matching one of these patterns (see [`path_match`]).
    pub read_paths: Vec<String>,
    /// When non-empty, `write-file` only reaches paths matching one of these.
    pub write_paths: Vec<String>,
}

impl Grants {
    pub fn new(granted: impl IntoIterator<Item = Grant>) -> Self {
        let mut granted: Vec<Grant> = granted.into_iter().collect();
        granted.sort();
        granted.dedup();
        Grants {
            granted,
            ..Grants::default()
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

    /// Whether a shell command is inside the `exec` grant's patterns.
    pub fn allows_command(&self, command: &str) -> bool {
        self.command_patterns.is_empty()
            || self
                .command_patterns
                .iter()
                .any(|p| command_match(p, command, Shell::Parsed))
    }

    /// Whether a program and its arguments (run without a shell) are inside
    /// the `exec` grant's patterns, matched against the words joined by
    /// single spaces.
    pub fn allows_program(&self, argv: &[String]) -> bool {
        let line = argv.join(" ");
        self.command_patterns.is_empty()
            || self
                .command_patterns
                .iter()
                .any(|p| command_match(p, &line, Shell::None))
    }

    /// Whether the type may pass an environment entry named `name`.
    pub fn check_env_name(&self, name: &str) -> Result<(), EnvRefusal> {
        if !is_identifier(name) {
            return Err(EnvRefusal::NotAnIdentifier);
        }
        if is_sensitive_env_name(name) && !self.env_names.iter().any(|n| n == name) {
            return Err(EnvRefusal::Sensitive);
        }
        Ok(())
    }

    /// The path patterns that narrow `access`; empty when it is not narrowed.
    pub fn path_patterns(&self, access: FileAccess) -> &[String] {
        match access {
            FileAccess::Read => &self.read_paths,
            FileAccess::Write => &self.write_paths,
        }
    }
}

/// Which of the file grants a path is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAccess {
    /// `read-file` and `file-metadata`, narrowed by `paths.read`.
    Read,
    /// `write-file` and `write-file-with`, narrowed by `paths.write`.
    Write,
}

impl fmt::Display for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.granted.iter().map(|g| g.as_str()).collect();
        if names.is_empty() {
            f.write_str("none")?;
        } else {
            f.write_str(&names.join(", "))?;
        }
        let narrowed = [
            ("commands", &self.command_patterns),
            ("env", &self.env_names),
            ("read paths", &self.read_paths),
            ("write paths", &self.write_paths),
        ];
        for (what, list) in narrowed {
            if !list.is_empty() {
                write!(f, " ({what}: {})", list.join(" | "))?;
            }
        }
        Ok(())
    }
}

/// Why an environment entry was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvRefusal {
    /// The name is not `[A-Za-z_][A-Za-z0-9_]*`: it could be read as an
    /// option of `env(1)` or smuggle an `=`.
    NotAnIdentifier,
    /// The name changes which program runs or what it loads, and the
    /// declaration does not allow it by name.
    Sensitive,
}

/// Environment names that change which program a command runs, what it
/// loads or what a shell executes before the command. A type passes one
/// only when its declaration names it in `env`.
pub const SENSITIVE_ENV_NAMES: &[&str] = &[
    "PATH",
    "ENV",
    "BASH_ENV",
    "IFS",
    "CDPATH",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "HOME",
    "ZDOTDIR",
    "XDG_CONFIG_HOME",
    "GLIBC_TUNABLES",
    "GCONV_PATH",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "APT_CONFIG",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PERL5LIB",
    "PERL5OPT",
    "PERLLIB",
    "RUBYLIB",
    "RUBYOPT",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
];

/// Prefixes of environment names treated like [`SENSITIVE_ENV_NAMES`]
/// (the dynamic loader's and allocator's switches, exported shell functions).
pub const SENSITIVE_ENV_PREFIXES: &[&str] = &["LD_", "DYLD_", "MALLOC_", "BASH_FUNC_"];

pub fn is_sensitive_env_name(name: &str) -> bool {
    SENSITIVE_ENV_NAMES.contains(&name)
        || SENSITIVE_ENV_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// `[A-Za-z_][A-Za-z0-9_]*`, the names a POSIX shell can assign.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Characters a wildcard never matches in a shell command. Commands run
/// through `/bin/sh -c`, so without this `systemctl **` would also allow
/// `systemctl status; rm -rf /`, `systemctl $(curl evil)` or (with `#`)
/// `chmod u+s /x # /srv/app` for `chmod * /srv/app`. Glob, brace and tilde
/// characters would let the shell expand one matched word into other
/// paths. A pattern may still contain any of them literally.
const SHELL_METACHARACTERS: &[char] = &[
    ';', '&', '|', '$', '`', '<', '>', '(', ')', '\n', '\r', '\\', '#', '*', '?', '[', ']', '{',
    '}', '~', '\0',
];

/// Whether the matched text goes through a shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// `run-command`: the text is parsed by `/bin/sh -c`.
    Parsed,
    /// `run-program`: the words are passed as they are.
    None,
}

/// Matches a command against an `exec` pattern. In a pattern `*` is one
/// word or part of one (any run of characters without white space), `**`
/// any run of words, `?` one character. For shell commands no wildcard
/// matches a shell metacharacter (see `SHELL_METACHARACTERS`); literal
/// pattern text matches itself. The match is iterative: no backtracking
/// blow-up on hostile patterns.
///
/// A `..` path component in the text never comes from a wildcard: unless
/// the pattern spells `..` out, a command with one does not match, so
/// `chmod 0644 /srv/app/*` cannot reach `/srv/app/../../etc/shadow`.
pub fn command_match(pattern: &str, text: &str, shell: Shell) -> bool {
    if !pattern.contains("..") && climbs_out(text) {
        return false;
    }
    let within_word = |c: char| !c.is_whitespace() && c != '\0';
    let plain = |c: char| match shell {
        Shell::Parsed => !SHELL_METACHARACTERS.contains(&c),
        Shell::None => c != '\0',
    };
    glob(pattern, text, &|c| plain(c) && within_word(c), &|c| {
        plain(c) && c != '\n'
    })
}

/// Whether any word of a command has a `..` path component (quotes around
/// or inside the word do not hide it).
fn climbs_out(text: &str) -> bool {
    text.split_whitespace().any(|word| {
        word.split('/')
            .any(|part| part.trim_matches(|c| c == '\'' || c == '"') == "..")
    })
}

/// Matches a path against a `paths` pattern: `*` is any run of characters
/// within one path component, `**` any run of components, `?` one
/// character other than `/`.
pub fn path_match(pattern: &str, path: &str) -> bool {
    glob(pattern, path, &|c| c != '/', &|_| true)
}

/// A plain absolute path: starts with `/`, and has no `.`, `..` or empty
/// components (a trailing `/` included), so that the text kiln matches is
/// the path the target opens (up to symlinks, which exact-path calls refuse).
pub fn is_plain_absolute_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() > 1
        && !path.contains('\0')
        && path[1..]
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// Scratch space a test-only run may write to.
pub const SCRATCH_DIR: &str = "/tmp";

/// Whether `path` (a plain absolute path) lies inside [`SCRATCH_DIR`].
pub fn is_scratch_path(path: &str) -> bool {
    path.strip_prefix(SCRATCH_DIR)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// Glob matching with `*` (a run of `single` characters), `**` (a run of
/// `double` characters) and `?` (one `single` character), tried left to
/// right with one remembered star per kind of run, as the classic linear
/// wildcard matcher does. A `**` restarts the search like `*`; a text that
/// only a different split could match is refused, which errs on the side
/// of a narrower grant.
fn glob(
    pattern: &str,
    text: &str,
    single: &dyn Fn(char) -> bool,
    double: &dyn Fn(char) -> bool,
) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // (pattern index after the star, text index the star has reached, double?)
    let mut star: Option<(usize, usize, bool)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            let double_star = p.get(pi + 1) == Some(&'*');
            pi += if double_star { 2 } else { 1 };
            star = Some((pi, ti, double_star));
        } else if pi < p.len()
            && ((p[pi] == '?' && single(t[ti])) || (p[pi] != '?' && p[pi] == t[ti]))
        {
            pi += 1;
            ti += 1;
        } else if let Some((after, reached, double_star)) = star {
            let takes = if double_star { double } else { single };
            if !takes(t[reached]) {
                return false;
            }
            pi = after;
            ti = reached + 1;
            star = Some((after, reached + 1, double_star));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Hard limits on one validator run. Every byte a component can make kiln
/// hold and every second it can make kiln wait is counted against one of
/// these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time of one run, not counting nested blocks (they have
    /// their own). Holds inside host calls: commands and file calls get the
    /// remaining time as their timeout. `None`: no limit of its own.
    pub wall_clock: Option<Duration>,
    /// Linear memory the component may grow to.
    pub memory_bytes: usize,
    /// Bytes the component may log (and print) in one run.
    pub log_bytes: usize,
    /// Bytes one command's stdout plus stderr, or one file read, may hand
    /// back to the component; the target stops reading past it.
    pub command_output_bytes: usize,
    /// Bytes of argument names and values the component may set in one run.
    pub argument_bytes: usize,
    /// Times one run may run the same nested block: nested time does not
    /// count against the run's wall clock, so this bounds how long a
    /// flow-control type can keep its call alive by re-running children.
    pub nested_reruns: u32,
}

impl Limits {
    /// The built-in types: no wall-clock limit of their own (Sahara had
    /// none; a large install under software emulation can take an hour),
    /// sized for package managers' output and script results.
    pub const BUILTIN: Limits = Limits {
        wall_clock: None,
        memory_bytes: 64 << 20,
        log_bytes: 1 << 20,
        command_output_bytes: 64 << 20,
        argument_bytes: 16 << 20,
        nested_reruns: 4,
    };

    /// The defaults for third-party types; a declaration may change them.
    pub const THIRD_PARTY: Limits = Limits {
        wall_clock: Some(Duration::from_secs(600)),
        memory_bytes: 64 << 20,
        log_bytes: 1 << 20,
        command_output_bytes: 16 << 20,
        argument_bytes: 1 << 20,
        nested_reruns: 4,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(pattern: &str, text: &str) -> bool {
        command_match(pattern, text, Shell::Parsed)
    }

    #[test]
    fn star_is_one_word_and_double_star_any_words() {
        assert!(shell("systemctl **", "systemctl enable nginx"));
        assert!(!shell("systemctl *", "systemctl enable nginx"));
        assert!(shell("systemctl enable *", "systemctl enable nginx"));
        assert!(shell("a?c", "abc"));
        assert!(shell("*", ""));
        assert!(!shell("a*b*c", "aXbX"));
        assert!(shell(&"*a".repeat(20), &"a".repeat(40)));
        assert!(shell(&"**a".repeat(20), &"a".repeat(40)));
        // The pattern means one mode argument, not any arguments.
        assert!(shell("chmod * /srv/app", "chmod 0755 /srv/app"));
        assert!(!shell("chmod * /srv/app", "chmod 777 /etc/shadow /srv/app"));
    }

    #[test]
    fn wildcards_do_not_smuggle_shell() {
        for text in [
            "systemctl status; rm -rf /",
            "systemctl $(curl evil)",
            "systemctl x | sh",
            "systemctl x\nrm -rf /",
            "systemctl x # comment",
            "systemctl /etc/*",
            "systemctl ~root",
            "systemctl {a,b}",
            "systemctl 'quoted; rm'",
        ] {
            assert!(!shell("systemctl **", text), "{text}");
        }
        assert!(!shell("systemctl ?", "systemctl ;"));
        // `#` turned `chmod u+s /x` into a comment before the tail matched.
        assert!(!shell("chmod * /srv/app", "chmod u+s /x # /srv/app"));
        assert!(!shell("chmod ** /srv/app", "chmod u+s /x # /srv/app"));
        assert!(shell(
            "systemctl ** || true",
            "systemctl stop nginx || true"
        ));
        assert!(shell("systemctl enable *", "systemctl enable 'my-unit'"));
        // A wildcard never supplies `..`.
        assert!(shell("chmod 0644 /srv/app/*", "chmod 0644 /srv/app/x"));
        for text in [
            "chmod 0644 /srv/app/../../etc/shadow",
            "chmod 0644 /srv/app/..",
            "chmod 0644 /srv/app/'..'/x",
        ] {
            assert!(!shell("chmod 0644 /srv/app/*", text), "{text}");
        }
        assert!(shell("cd .. *", "cd .. x"));
    }

    #[test]
    fn programs_match_their_words_without_shell_rules() {
        let grants =
            Grants::new([Grant::Exec]).with_command_patterns(vec!["chmod * /srv/app".into()]);
        let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        assert!(grants.allows_program(&argv(&["chmod", "u+s", "/srv/app"])));
        assert!(grants.allows_program(&argv(&["chmod", "a#b", "/srv/app"])));
        assert!(!grants.allows_program(&argv(&["chmod", "u+s /x", "/srv/app"])));
        assert!(!grants.allows_program(&argv(&["chmod", "777", "/etc", "/srv/app"])));
    }

    #[test]
    fn env_names_are_identifiers_and_sensitive_ones_need_a_grant() {
        let grants = Grants::new([Grant::Exec]);
        assert_eq!(grants.check_env_name("java_home"), Ok(()));
        assert_eq!(grants.check_env_name("_X1"), Ok(()));
        for name in [
            "--split-string",
            "-S",
            "A=B",
            "",
            "1X",
            "A B",
            "BASH_FUNC_ls%%",
        ] {
            assert_eq!(
                grants.check_env_name(name),
                Err(EnvRefusal::NotAnIdentifier),
                "{name}"
            );
        }
        for name in [
            "PATH",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "BASH_ENV",
            "ENV",
            "IFS",
            "PYTHONPATH",
        ] {
            assert_eq!(
                grants.check_env_name(name),
                Err(EnvRefusal::Sensitive),
                "{name}"
            );
        }
        let mut allowed = grants.clone();
        allowed.env_names = vec!["PATH".into()];
        assert_eq!(allowed.check_env_name("PATH"), Ok(()));
        assert_eq!(
            allowed.check_env_name("LD_PRELOAD"),
            Err(EnvRefusal::Sensitive)
        );
    }

    #[test]
    fn path_patterns() {
        assert!(path_match("/srv/app/*", "/srv/app/config"));
        assert!(!path_match("/srv/app/*", "/srv/app/sub/config"));
        assert!(path_match("/srv/app/**", "/srv/app/sub/config"));
        assert!(path_match("/etc/nginx/*.conf", "/etc/nginx/site.conf"));
        assert!(!path_match("/etc/nginx/*.conf", "/etc/nginx/conf.d/x.conf"));
        assert!(is_plain_absolute_path("/srv/app/x"));
        for path in [
            "srv",
            "/",
            "/srv/../etc",
            "/srv/./x",
            "/srv//x",
            "/srv/x/",
            "/a\0b",
        ] {
            assert!(!is_plain_absolute_path(path), "{path}");
        }
        assert!(is_scratch_path("/tmp/x"));
        assert!(!is_scratch_path("/tmp"));
        assert!(!is_scratch_path("/tmpx/y"));
    }

    #[test]
    fn grants_parse_both_spellings() {
        assert_eq!("write_file".parse::<Grant>().unwrap(), Grant::WriteFile);
        assert_eq!("exec".parse::<Grant>().unwrap(), Grant::Exec);
        assert!("root".parse::<Grant>().unwrap_err().contains("known: exec"));
    }
}

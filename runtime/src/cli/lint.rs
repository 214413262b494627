//! `kiln lint`'s warnings: a script's `env_vars` naming an argument nothing
//! declares or sets (both Sahara and kiln silently leave it out of the
//! script's environment), and grants that load fine but give a third-party
//! validator type more than its declaration seems to say. A type with
//! `exec` runs its commands as root on the target, so a `commands` pattern
//! that lets it choose the program, or pass words of its choosing to a
//! program that runs other programs, is `exec` without `commands` in all
//! but name; so is an `env` entry that changes which program runs or what
//! it loads, and `write-file` that may write anywhere. Warnings never change the exit code: a declaration may mean
//! exactly that, and the manifest runs the same either way.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use kiln::host::grants::{is_identifier, is_sensitive_env_name};
use kiln::host::{ComponentSource, Grant, Origin, ValidatorType};
use kiln::manifest::{Manifest, ValidatorNode};
use kiln::text::escape_controls;
use kiln::yaml::{self, Mark, Yaml, YamlKind, YamlLimits};
use serde_json::Value;

use super::naming::{take_name, ManifestName};
use super::{one_line_error, shown_path, Common, Lookup, Style};

/// One warning: `FILE:LINE:COL: warning: validator type `x`: message`, or
/// `FILE:LINE:COL: warning: PATH: message` for one validator of the tree.
/// Ordered by file and position, as they are printed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub subject: Subject,
    pub message: String,
}

/// What a warning is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subject {
    /// A third-party validator type's declaration.
    Type(String),
    /// One validator in the tree, by its path (`validators[3].script`).
    Validator(String),
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // File names, patterns and env names come from the manifest or a
        // sidecar: data.
        write!(
            f,
            "{}:{}:{}: warning: ",
            escape_controls(&self.file),
            self.line,
            self.col
        )?;
        match &self.subject {
            Subject::Type(name) => write!(f, "validator type `{}`", escape_controls(name))?,
            Subject::Validator(path) => write!(f, "{}", escape_controls(path))?,
        }
        write!(f, ": {}", escape_controls(&self.message))
    }
}

/// The arguments a built-in `script` node passes (`env_vars`, or its
/// synonym `arguments`), each with its JSON pointer in the spec; empty for
/// other nodes. Reads the spec as the built-in type does
/// (validators-wasm/sdk/src/script_spec.rs): a path, or a one-key map from
/// the path to options given as a map or a list of one-key maps.
pub fn script_env_vars(node: &ValidatorNode) -> Vec<(String, String)> {
    if node.type_name != "script" || node.vtype.origin != Origin::BuiltIn {
        return Vec::new();
    }
    script_options(node)
        .into_iter()
        .filter(|(key, _, _)| key == "env_vars" || key == "arguments")
        .flat_map(|(_, value, pointer)| match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    Some((item.as_str()?.to_string(), format!("{pointer}/{i}")))
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// A `script` spec's options as (key, value, pointer).
fn script_options(node: &ValidatorNode) -> Vec<(String, Value, String)> {
    let Ok(Value::Object(spec)) = serde_json::from_str::<Value>(&node.spec_json) else {
        return Vec::new();
    };
    let Some((name, options)) = spec.iter().next().filter(|_| spec.len() == 1) else {
        return Vec::new();
    };
    let base = format!("/{}", escape_pointer(name));
    match options {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.clone(),
                    format!("{base}/{}", escape_pointer(k)),
                )
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::Object(map) if map.len() == 1 => {
                    let (k, v) = map.iter().next()?;
                    Some((
                        k.clone(),
                        v.clone(),
                        format!("{base}/{i}/{}", escape_pointer(k)),
                    ))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The argument names a run can hold besides the declared ones: kiln's
/// own (`distro`, `test_only`) and those the tree sets as it runs (a
/// built-in `script`'s `output`, an `argument_set`'s `argument_name`).
fn names_set_by_the_tree(manifest: &Manifest) -> Vec<String> {
    let mut names = vec!["distro".to_string(), "test_only".to_string()];
    manifest.root.walk(&mut |node, _| {
        if node.vtype.origin != Origin::BuiltIn {
            return;
        }
        match node.type_name.as_str() {
            "script" => names.extend(
                script_options(node)
                    .into_iter()
                    .filter(|(key, _, _)| key == "output")
                    .filter_map(|(_, value, _)| value.as_str().map(str::to_string)),
            ),
            "argument_set" => {
                if let Ok(spec) = serde_json::from_str::<Value>(&node.spec_json) {
                    if let Some(name) = spec.get("argument_name").and_then(Value::as_str) {
                        names.push(name.to_string());
                    }
                }
            }
            _ => {}
        }
    });
    names
}

/// Every argument name a run of `manifest` can hold a value for: the
/// declared ones and [`names_set_by_the_tree`].
pub fn known_argument_names(manifest: &Manifest) -> Vec<String> {
    let mut names: Vec<String> = manifest.arguments.iter().map(|a| a.name.clone()).collect();
    names.extend(names_set_by_the_tree(manifest));
    names
}

/// A script's `env_vars` naming an argument that is neither declared nor
/// set by the tree: the script never sees it (in Sahara either), which is
/// usually a forgotten declaration. A warning, not an error, so that real
/// manifests that do it (Spark's `cdh_version`) keep loading.
pub fn undeclared_env_vars(manifest: &Manifest) -> Vec<Warning> {
    let known = known_argument_names(manifest);
    let is_known = |name: &str| known.iter().any(|k| k == name);
    let document = std::fs::read(&manifest.path).ok().and_then(|bytes| {
        yaml::parse_bytes(&bytes, YamlLimits::default())
            .ok()
            .flatten()
    });
    let mut found = Vec::new();
    manifest.root.walk(&mut |node, _| {
        for (name, pointer) in script_env_vars(node) {
            if is_known(&name) {
                continue;
            }
            let mark = document
                .as_ref()
                .and_then(|doc| spec_at(doc, node.location.mark))
                .and_then(|spec| spec.mark_at_pointer(&pointer))
                .unwrap_or(node.location.mark);
            found.push(Warning {
                file: path_text(&manifest.path),
                line: mark.line,
                col: mark.col,
                subject: Subject::Validator(node.path.clone()),
                message: format!(
                    "env_vars names `{name}`, which the manifest does not declare and nothing sets, so the script never gets it; declare it under `arguments` or drop it"
                ),
            });
        }
    });
    found
}

/// The spec of the validator whose type key stands at `key_mark`.
fn spec_at(document: &Yaml, key_mark: Mark) -> Option<&Yaml> {
    match &document.kind {
        YamlKind::Map(entries) => entries.iter().find_map(|(key, value)| {
            if key.mark == key_mark {
                Some(value)
            } else {
                spec_at(value, key_mark)
            }
        }),
        YamlKind::Seq(items) => items.iter().find_map(|item| spec_at(item, key_mark)),
        _ => None,
    }
}

/// Programs that run other programs, each with the way it does so. A
/// pattern that lets a type pass such a program words of its choosing
/// lets the type run anything. The list errs on the side of warning: shells
/// and the builtins that run their arguments; wrappers that exec their
/// arguments; interpreters and editors, whose code (or shell escape) is an
/// argument; tools with a command-running option, hook or pager; container
/// and package managers (maintainer scripts, `-o` hooks); schedulers, whose
/// commands run later. A name ending in `*` covers versioned names
/// (`python3.11`, `pip3`, `lua5.4`).
const PROGRAM_RUNNERS: &[(&str, &str)] = &[
    ("sh", "sh -c"),
    ("bash", "bash -c"),
    ("dash", "dash -c"),
    ("zsh", "zsh -c"),
    ("ksh", "ksh -c"),
    ("mksh", "mksh -c"),
    ("csh", "csh -c"),
    ("tcsh", "tcsh -c"),
    ("fish", "fish -c"),
    ("busybox", "busybox sh -c"),
    ("toybox", "toybox sh -c"),
    ("exec", "exec PROGRAM"),
    ("eval", "eval"),
    ("command", "command PROGRAM"),
    ("builtin", "builtin eval"),
    (".", ". FILE"),
    ("source", "source FILE"),
    ("time", "time PROGRAM"),
    ("env", "env PROGRAM"),
    ("sudo", "sudo PROGRAM"),
    ("su", "su -c"),
    ("doas", "doas PROGRAM"),
    ("runuser", "runuser -c"),
    ("pkexec", "pkexec PROGRAM"),
    ("setpriv", "setpriv PROGRAM"),
    ("nice", "nice PROGRAM"),
    ("ionice", "ionice PROGRAM"),
    ("nohup", "nohup PROGRAM"),
    ("timeout", "timeout N PROGRAM"),
    ("chroot", "chroot DIR PROGRAM"),
    ("unshare", "unshare PROGRAM"),
    ("nsenter", "nsenter PROGRAM"),
    ("setsid", "setsid PROGRAM"),
    ("taskset", "taskset MASK PROGRAM"),
    ("chrt", "chrt N PROGRAM"),
    ("stdbuf", "stdbuf PROGRAM"),
    ("flock", "flock FILE PROGRAM"),
    ("script", "script -c"),
    ("watch", "watch PROGRAM"),
    ("systemd-run", "systemd-run PROGRAM"),
    ("systemd-nspawn", "systemd-nspawn PROGRAM"),
    ("start-stop-daemon", "start-stop-daemon --exec"),
    ("run-parts", "run-parts DIR"),
    ("xargs", "xargs PROGRAM"),
    ("parallel", "parallel PROGRAM"),
    ("find", "find -exec"),
    ("strace", "strace PROGRAM"),
    ("ltrace", "ltrace PROGRAM"),
    ("gdb", "gdb -ex"),
    ("valgrind", "valgrind PROGRAM"),
    ("ip", "ip netns exec"),
    ("screen", "screen PROGRAM"),
    ("tmux", "tmux new-session PROGRAM"),
    ("socat", "socat EXEC:"),
    ("expect", "expect -c"),
    ("perl", "perl -e"),
    ("python*", "python -c"),
    ("ruby", "ruby -e"),
    ("irb", "irb"),
    ("node", "node -e"),
    ("nodejs", "nodejs -e"),
    ("php", "php -r"),
    ("lua*", "lua -e"),
    ("tclsh", "tclsh"),
    ("awk", "awk's system()"),
    ("gawk", "gawk's system()"),
    ("mawk", "mawk's system()"),
    ("nawk", "nawk's system()"),
    ("sed", "GNU sed's `e` command"),
    ("ed", "ed's `!`"),
    ("ex", "ex's `:!`"),
    ("vi", "vi's `:!`"),
    ("vim", "vim -c '!...'"),
    ("nvim", "nvim -c '!...'"),
    ("view", "view's `:!`"),
    ("emacs", "emacs --eval"),
    ("less", "less's `!`"),
    ("more", "more's `!`"),
    ("man", "man -P"),
    ("git", "git -c core.pager, aliases and hooks"),
    ("make", "make's recipes"),
    ("tar", "tar --to-command and --checkpoint-action"),
    ("zip", "zip -TT"),
    ("rsync", "rsync -e"),
    ("ssh", "ssh -o ProxyCommand"),
    ("scp", "scp -S"),
    ("sftp", "sftp -S"),
    ("wget", "wget --use-askpass"),
    ("docker", "docker run"),
    ("podman", "podman run"),
    ("nerdctl", "nerdctl run"),
    ("ctr", "ctr run"),
    ("crictl", "crictl exec"),
    ("kubectl", "kubectl exec"),
    ("apt-get", "apt-get -o APT::Update::Pre-Invoke"),
    ("apt", "apt -o APT::Update::Pre-Invoke"),
    ("aptitude", "aptitude -o APT::Update::Pre-Invoke"),
    ("dpkg", "dpkg's maintainer scripts"),
    ("yum", "yum's plugins and --setopt"),
    ("dnf", "dnf's plugins and --setopt"),
    ("rpm", "rpm --eval with %{lua:}"),
    ("zypper", "zypper's plugins"),
    ("pip*", "pip install running setup.py"),
    ("npm", "npm's scripts"),
    ("gem", "gem install building extensions"),
    ("crontab", "crontab FILE"),
    ("at", "at"),
    ("batch", "batch"),
    ("mysql", "mysql's `system`"),
    ("psql", "psql's `\\!`"),
    ("sqlite3", "sqlite3's `.shell`"),
];

/// Programs that change the files they are given. `**` after one of them
/// lets a type name any file on the target; a `*` inside a path word is no
/// bound either, since it matches `/` and `..` as well.
const FILE_CHANGERS: &[&str] = &[
    "rm", "rmdir", "unlink", "shred", "mv", "cp", "ln", "install", "chmod", "chown", "chgrp",
    "chattr", "setfacl", "touch", "truncate", "tee", "dd", "mkdir", "mount", "umount",
];

/// The warnings for `manifest`: its scripts' undeclared `env_vars`, and
/// those for the third-party types it can use: those it declares (at their
/// declaration) and those from `--validators` directories (at their
/// sidecar). Built-in types are kiln's own and reviewed with it.
pub fn warnings(manifest: &Manifest) -> Vec<Warning> {
    let mut found = undeclared_env_vars(manifest);
    for vtype in manifest.types.iter() {
        if vtype.origin == Origin::BuiltIn {
            continue;
        }
        let (file, line, col) = declaration_location(manifest, vtype);
        for message in type_warnings(vtype) {
            found.push(Warning {
                file: file.clone(),
                line,
                col,
                subject: Subject::Type(vtype.name.to_string()),
                message,
            });
        }
    }
    found.sort();
    found
}

/// Where the type is declared: its name in the manifest's
/// `validator_types`, or the start of its sidecar `NAME.yaml`.
fn declaration_location(manifest: &Manifest, vtype: &ValidatorType) -> (String, usize, usize) {
    if let Some(location) = manifest.declared_at.get(vtype.name.as_ref()) {
        return (
            path_text(&location.file),
            location.mark.line,
            location.mark.col,
        );
    }
    match &vtype.declaration.source {
        ComponentSource::File(wasm) => (path_text(&wasm.with_extension("yaml")), 1, 1),
        ComponentSource::Builtin(_) => (path_text(&manifest.path), 1, 1),
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn type_warnings(vtype: &ValidatorType) -> Vec<String> {
    let grants = &vtype.grants;
    let mut messages = Vec::new();
    if grants.allows(Grant::Exec) {
        if grants.command_patterns.is_empty() {
            messages.push(
                "exec without `commands` lets the type run any command as root on the target"
                    .to_string(),
            );
        }
        for pattern in &grants.command_patterns {
            messages.extend(pattern_warning(pattern));
        }
    }
    // Writing any file as root is running any program as root: a cron
    // job, a systemd unit or a profile script runs what was written.
    if grants.allows(Grant::WriteFile) && grants.write_paths.is_empty() {
        messages.push(
            "write-file without `paths: {write: [...]}` lets the type write any file on the target as root (a cron job or a systemd unit then runs it)"
                .to_string(),
        );
    }
    for name in &grants.env_names {
        if is_sensitive_env_name(name) {
            messages.push(format!(
                "`env: [{name}]` lets the type {}",
                env_effect(name)
            ));
        }
    }
    messages
}

/// What is wrong with one `commands` pattern, if anything. A pattern
/// without wildcards allows one command, spelled out in the declaration,
/// and is never warned about.
fn pattern_warning(pattern: &str) -> Option<String> {
    if !pattern.contains(['*', '?']) {
        return None;
    }
    let words: Vec<&str> = pattern
        .split_whitespace()
        .skip_while(|word| is_assignment(word))
        .collect();
    let program = *words.first()?;
    let wildcard_only = |word: &str| word.chars().all(|c| c == '*' || c == '?');
    if words.iter().all(|w| wildcard_only(w)) {
        return Some(format!(
            "`{pattern}` lets the type run any command as root on the target (the pattern is only wildcards); name the program and narrow its arguments"
        ));
    }
    if program.contains(['*', '?']) {
        return Some(format!(
            "`{pattern}` lets the type run any program as root (its first word is a wildcard, which matches any program and `../` too); name the program"
        ));
    }
    let base = program.rsplit('/').next().unwrap_or(program);
    if let Some((_, how)) = PROGRAM_RUNNERS
        .iter()
        .find(|(name, _)| match name.strip_suffix('*') {
            Some(prefix) => base.starts_with(prefix),
            None => base == *name,
        })
    {
        return Some(format!(
            "`{pattern}` lets the type run any program as root ({how}); narrow it or drop `exec`"
        ));
    }
    if !FILE_CHANGERS.contains(&base) {
        return None;
    }
    if pattern.contains("**") {
        return Some(format!(
            "`{pattern}` lets the type give {base} any paths on the target, /etc/shadow and /usr/bin included; spell the paths out in the pattern"
        ));
    }
    // `/srv/app/*` stays below /srv/app (a wildcard never supplies `..`),
    // but a command follows symlinks on the target, which no pattern sees.
    if let Some(word) = words[1..]
        .iter()
        .find(|w| w.starts_with('/') && w.contains(['*', '?']))
    {
        let (dir, _) = word.split_once(['*', '?']).unwrap_or((word, ""));
        return Some(format!(
            "`{pattern}` lets {base} follow a symlink under {dir} to any file on the target; spell the paths out, or use `write-file` with `paths` (which refuses symlinks)"
        ));
    }
    None
}

/// `NAME=value`, a shell assignment before the program.
fn is_assignment(word: &str) -> bool {
    word.split_once('=')
        .is_some_and(|(name, _)| is_identifier(name))
}

/// What passing a sensitive environment name lets a type do.
fn env_effect(name: &str) -> &'static str {
    let starts = |prefix: &str| name.starts_with(prefix);
    match name {
        "PATH" => "choose which program every command name runs",
        "BASH_ENV" | "ENV" => "make the shell run a file of its choosing before every command",
        "SHELLOPTS" | "BASHOPTS" | "PS4" | "PROMPT_COMMAND" => {
            "turn on shell options that run code of its choosing (with `xtrace`, PS4 is expanded before every command)"
        }
        "IFS" => "change how the shell splits words, so that an allowed command line runs as another",
        "CDPATH" => "change where `cd` goes in the commands it runs",
        "HOME" | "ZDOTDIR" | "XDG_CONFIG_HOME" => {
            "make programs read their startup and config files (.bashrc, .gitconfig, ...) from a directory of its choosing"
        }
        "GLIBC_TUNABLES" => "tune the C library's internals in every program (the way into CVE-2023-4911)",
        "GCONV_PATH" | "LOCPATH" | "NLSPATH" => {
            "make the C library load modules or locale data from a path of its choosing"
        }
        "HOSTALIASES" => "redirect the host name lookups of the programs it runs",
        "APT_CONFIG" => "give apt a configuration of its choosing, whose hooks run commands",
        _ if starts("LD_") || starts("DYLD_") => {
            "load a shared library of its choosing into every program it runs, as root"
        }
        _ if starts("MALLOC_") => "tune the C library's allocator in every program it runs",
        _ if starts("BASH_FUNC_") => "define shell functions that replace the commands it runs",
        _ if starts("PYTHON") => "load Python code of its choosing into every Python program it runs",
        _ if starts("PERL") => "load Perl code of its choosing into every Perl program it runs",
        _ if starts("RUBY") => "load Ruby code of its choosing into every Ruby program it runs",
        _ if starts("NODE_") => "load JavaScript of its choosing into every Node.js program it runs",
        _ if name.contains("JAVA") => {
            "pass options (such as -javaagent) to every Java program it runs"
        }
        _ => "change which program runs or what it loads",
    }
}

/// `kiln lint`: loads each named manifest, prints its warnings (each
/// once) and a summary line; exit 2 when any fails to load.
pub fn run(
    common: &Common,
    style: Style,
    words: &[OsString],
    manifests: &[PathBuf],
    lookup: &Lookup,
) -> Result<i32> {
    let mut names = Vec::new();
    let mut rest = words;
    while !rest.is_empty() {
        match take_name(rest)? {
            Some((name, after)) => {
                names.push(name);
                rest = after;
            }
            None => bail!("unexpected `{}`", rest[0].to_string_lossy()),
        }
    }
    names.extend(manifests.iter().cloned().map(ManifestName::File));
    if names.is_empty() {
        bail!("name the manifests to check: files, PLUGIN VERSION pairs (see `kiln list`), or --manifest FILE");
    }
    let (config, dirs) = lookup.load()?;
    let kiln = common.kiln(&config)?;
    let options = common.load_options(&config.resource_roots);
    let mut failed = 0;
    // A `--validators` type is linted with every manifest; say it once.
    let mut said = std::collections::HashSet::new();
    for name in &names {
        let loaded = name
            .locate(&dirs)
            .and_then(|(path, _)| kiln.load(&path, &options).map_err(anyhow::Error::from));
        match loaded {
            Ok(manifest) => {
                let mut nodes = 0;
                manifest.root.walk(&mut |_, _| nodes += 1);
                let warnings = warnings(&manifest);
                for warning in &warnings {
                    let line = warning.to_string();
                    if said.insert(line.clone()) {
                        eprintln!("{line}");
                    }
                }
                if !style.quiet {
                    let shared = match &manifest.version {
                        Some(entry) => format!(
                            "version entry for {}, {} value{}; ",
                            shown_path(&manifest.path),
                            entry.values.len(),
                            if entry.values.len() == 1 { "" } else { "s" }
                        ),
                        None => String::new(),
                    };
                    let named = manifest
                        .version
                        .as_ref()
                        .map_or(&manifest.path, |entry| &entry.path);
                    println!(
                        "{}: ok ({shared}{} arguments, {} validators{})",
                        shown_path(named),
                        manifest.arguments.len(),
                        nodes - 1,
                        match warnings.len() {
                            0 => String::new(),
                            1 => ", 1 warning".to_string(),
                            n => format!(", {n} warnings"),
                        }
                    );
                }
            }
            Err(error) => {
                failed += 1;
                eprintln!("{}", one_line_error(&error));
            }
        }
    }
    if failed > 0 {
        eprintln!("kiln: {failed} of {} manifests have errors", names.len());
        return Ok(2);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_that_choose_the_program() {
        assert!(pattern_warning("find *").unwrap().contains("(find -exec)"));
        assert!(pattern_warning("/usr/bin/python3.11 **")
            .unwrap()
            .contains("python -c"));
        assert!(pattern_warning("LANG=C sudo *").unwrap().contains("sudo"));
        assert!(pattern_warning("**").unwrap().contains("only wildcards"));
        assert!(pattern_warning("* --version")
            .unwrap()
            .contains("first word is a wildcard"));
        assert!(pattern_warning("/usr/local/bin/* x")
            .unwrap()
            .contains("first word is a wildcard"));
        assert!(pattern_warning("chmod **").unwrap().contains("any paths"));
        assert!(pattern_warning("chmod 0644 /srv/app/*")
            .unwrap()
            .contains("follow a symlink under /srv/app/"));
        // Spelled out, or narrow: nothing to say.
        assert_eq!(pattern_warning("find /srv -name core -delete"), None);
        assert_eq!(pattern_warning("systemctl restart *"), None);
        assert_eq!(pattern_warning("chmod * /srv/app"), None);
        assert_eq!(pattern_warning("shellcheck *"), None);
    }

    #[test]
    fn every_sensitive_name_has_a_specific_effect() {
        for name in kiln::host::grants::SENSITIVE_ENV_NAMES {
            assert_ne!(
                env_effect(name),
                "change which program runs or what it loads",
                "{name}"
            );
        }
        assert!(env_effect("LD_PRELOAD").contains("shared library"));
    }
}

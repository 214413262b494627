//! The shell lines kiln sends to a host: the wrapping of a command (its
//! output bounded with `head -c` on the host, `timeout(1)`, `sudo -n`), the
//! scripts behind the file calls (write, read, metadata) with the symlink
//! walk that exact-path calls use, the exit statuses those scripts agree on
//! with kiln, and the parsing of what they print. Kept apart from the
//! connection code because it is pure text in and text out: each piece is
//! tested by running it under the local `/bin/sh`.

use std::time::Duration;

use crate::remote::{shell_quote, FileKind, FileMetadata, FileRead, FileWrite, RemoteCommand};

/// The file calls' remote scripts exit with this (sysexits' EX_NOINPUT) when
/// nothing is at the path, which `cat`, `head` and `stat` never do.
pub(super) const MISSING_FILE_EXIT: i32 = 66;

/// The remote scripts of exact-path file calls exit with this (printing the
/// link they met) when a symlink is on the way; `kiln_walk` hard-codes it.
pub(super) const SYMLINK_EXIT: i32 = 67;

/// `read_file`'s remote script exits with this (printing what the path is)
/// when the path is not a regular file.
pub(super) const NOT_REGULAR_EXIT: i32 = 68;

/// The remote `timeout(1)` fires this long after kiln's own deadline, so kiln
/// reports the timeout first and the remote side only cleans up orphans.
const REMOTE_TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// How long the remote `timeout(1)` of a session's command waits after its
/// TERM before it KILLs (`-k`).
pub(super) const KILL_AFTER: Duration = Duration::from_secs(2);

/// A shell function for exact-path calls: walks `$1` from the root and
/// exits with [`SYMLINK_EXIT`], printing "COMPONENT -> WHERE", at the first
/// component that is a symlink; `$2` is `self` to check the last component
/// too, `parents` to stop before it. Each component is tested once its
/// parents are known not to be links, so `[ -L ]` sees the real thing.
const WALK_FUNCTION: &str = r#"kiln_walk() {
  case $1 in /*) cur= ;; *) cur=. ;; esac
  rest=${1#/}
  while [ -n "$rest" ]; do
    case $rest in
      */*) part=${rest%%/*}; rest=${rest#*/} ;;
      *) part=$rest; rest=; [ "$2" = self ] || return 0 ;;
    esac
    [ -n "$part" ] || continue
    cur=$cur/$part
    if [ -L "$cur" ]; then
      printf '%s -> %s\n' "$cur" "$(readlink -- "$cur")"
      exit 67
    fi
  done
}"#;

/// `"1"` or `"0"`, for a flag passed in the environment.
fn flag(value: bool) -> String {
    if value { "1" } else { "0" }.to_string()
}

/// The write call's script: streams stdin into a temp file beside the
/// path, gives it the mode and owner asked for (or the old file's), then
/// renames it over the path, so readers never see half a file.
pub(super) fn write_command(write: &FileWrite<'_>) -> RemoteCommand {
    let path = write.path;
    // `mv -T` (GNU coreutils) renames onto a final symlink even when it
    // points at a directory; plain `mv` would move the file into it.
    // `chown` comes before `chmod` because it clears setuid bits.
    let mut command = RemoteCommand::new(format!(
        r#"set -e
{WALK_FUNCTION}
p=$KILN_PATH
[ "$KILN_EXACT" != 1 ] || kiln_walk "$p" parents
if [ -d "$p" ] && [ ! -L "$p" ]; then echo "$p is a directory" >&2; exit 1; fi
mode=$KILN_MODE
owner=$KILN_UID
group=$KILN_GID
if [ -f "$p" ] && [ ! -L "$p" ]; then
  set -- $(stat -c '%a %u %g' -- "$p")
  mode=${{mode:-$1}}
  owner=${{owner:-$2}}
  group=${{group:-$3}}
fi
case $p in */*) dir=${{p%/*}}; dir=${{dir:-/}} ;; *) dir=. ;; esac
tmp=$(mktemp "$dir/.kiln-write.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chown "${{owner:-0}}:${{group:-0}}" "$tmp"
chmod "${{mode:-644}}" "$tmp"
mv -f -T "$tmp" "$p"
trap - EXIT"#
    ));
    let number = |value: Option<u32>| value.map(|v| v.to_string()).unwrap_or_default();
    command.env = vec![
        ("KILN_PATH".into(), path.into()),
        ("KILN_EXACT".into(), flag(write.exact_path)),
        (
            "KILN_MODE".into(),
            write
                .mode
                .map(|mode| format!("{:o}", mode & 0o7777))
                .unwrap_or_default(),
        ),
        ("KILN_UID".into(), number(write.uid)),
        ("KILN_GID".into(), number(write.gid)),
    ];
    command.timeout = write.timeout;
    command
}

/// The read call's script: checks the path (exit [`MISSING_FILE_EXIT`],
/// [`NOT_REGULAR_EXIT`] or [`SYMLINK_EXIT`]) and prints the file, cut by
/// `head -c` one byte past `max_bytes` so a huge file never crosses the wire.
pub(super) fn read_command(read: &FileRead<'_>) -> RemoteCommand {
    let path = read.path;
    // `[ -f ]` turns away directories, devices (/dev/zero), FIFOs (which
    // would block the read) and sockets before anything opens the path.
    // Swapping the file for a FIFO between the test and `head` is left
    // to the timeout.
    let mut command = RemoteCommand::new(format!(
        r#"{WALK_FUNCTION}
p=$KILN_PATH
[ "$KILN_EXACT" != 1 ] || kiln_walk "$p" self
[ -e "$p" ] || exit {MISSING_FILE_EXIT}
if [ ! -f "$p" ]; then
  if [ -d "$p" ]; then echo a directory
  elif [ -c "$p" ]; then echo a character device
  elif [ -b "$p" ]; then echo a block device
  elif [ -p "$p" ]; then echo a FIFO
  elif [ -S "$p" ]; then echo a socket
  else echo something else
  fi
  exit {NOT_REGULAR_EXIT}
fi
[ -z "$KILN_HEAD" ] || exec head -c "$KILN_HEAD" -- "$p"
exec cat -- "$p""#
    ));
    command.env = vec![
        ("KILN_PATH".into(), path.into()),
        ("KILN_EXACT".into(), flag(read.exact_path)),
        (
            "KILN_HEAD".into(),
            read.max_bytes
                .map(|max| max.saturating_add(1).to_string())
                .unwrap_or_default(),
        ),
    ];
    command.timeout = read.timeout;
    command
}

/// The metadata call's script: `stat -c` without `-L` (an lstat), printing
/// what [`parse_stat`] reads, or exit [`MISSING_FILE_EXIT`].
pub(super) fn metadata_command(read: &FileRead<'_>) -> RemoteCommand {
    let path = read.path;
    let mut command = RemoteCommand::new(format!(
        r#"{WALK_FUNCTION}
p=$KILN_PATH
[ "$KILN_EXACT" != 1 ] || kiln_walk "$p" parents
[ -e "$p" ] || [ -L "$p" ] || exit {MISSING_FILE_EXIT}
exec stat -c '%f %s %u %g' -- "$p""#
    ));
    command.env = vec![
        ("KILN_PATH".into(), path.into()),
        ("KILN_EXACT".into(), flag(read.exact_path)),
    ];
    command.timeout = read.timeout;
    command
}

/// Parses `stat -c '%f %s %u %g'`.
pub(super) fn parse_stat(text: &str) -> Option<FileMetadata> {
    let mut fields = text.split_whitespace();
    let raw = u32::from_str_radix(fields.next()?, 16).ok()?;
    let size = fields.next()?.parse().ok()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some(FileMetadata {
        kind: FileKind::from_mode(raw),
        size,
        mode: raw & 0o7777,
        uid,
        gid,
    })
}

/// The line the remote login shell runs for `command`: the command's own
/// quoted line, bounded to its output limit, under `timeout` when limited
/// (and the host has it), under `sudo -n` unless the login user is root.
/// `timeout` goes inside sudo so that it may signal the command.
pub(super) fn remote_line(
    command: &RemoteCommand,
    limit: Option<Duration>,
    has_timeout: bool,
    login_is_root: bool,
    streams: bool,
) -> String {
    let mut line = command.to_shell_line();
    if let Some(output_limit) = command.output_limit {
        line = bounded_line(&line, output_limit, streams);
    }
    if let (Some(limit), true) = (limit, has_timeout) {
        let seconds = (limit + REMOTE_TIMEOUT_GRACE).as_secs_f64().ceil() as u64;
        line = format!("timeout -k 5 {seconds} {line}");
    }
    if !login_is_root {
        line = format!("sudo -n -- {line}");
    }
    line
}

/// Whose script a command runs, which decides how a session starts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// A validator's: run by a `/bin/sh` of its own, as over a login.
    Validator,
    /// kiln's own file-call scripts (this module's): written for the
    /// loop's subshell, so without a time or output limit they run in it,
    /// one process fewer.
    Kiln,
}

/// The line a session runs for `command` (the session already runs as
/// root, and runs the line in a subshell of its loop): the command's own
/// line, under `timeout` at its limit (when the host has it), so the host
/// ends the command at its deadline and answers; with an output limit,
/// under the loop's `kiln_bounded`, which cuts each stream at LIMIT+1 (see
/// `frame::LOOP`). The line `exec`s the command, so the loop's subshell is
/// its only process besides the bounds' two `head`s; kiln's own scripts
/// with no limit on time or output need no `exec` at all.
pub(super) fn session_line(
    command: &RemoteCommand,
    origin: Origin,
    limit: Option<Duration>,
    has_timeout: bool,
) -> String {
    let timed = limit.filter(|_| has_timeout);
    let (exports, mut line) = session_command(command);
    let exported = !exports.is_empty() || command.env.is_empty();
    if origin == Origin::Kiln && timed.is_none() && command.output_limit.is_none() && exported {
        return format!("{exports}{}", command.script);
    }
    if let Some(limit) = timed {
        let seconds = remote_seconds(limit).as_secs();
        line = format!("timeout -k {} {seconds} {line}", KILL_AFTER.as_secs());
    }
    let line = format!("{exports}exec {line}");
    match command.output_limit {
        Some(output_limit) => format!(
            "kiln_bounded {} {}",
            output_limit.saturating_add(1),
            shell_quote(&line)
        ),
        None => line,
    }
}

/// `command` as `export` assignments for the loop's subshell and the
/// `/bin/sh -c` line that `exec` then starts with them: one process fewer
/// than `env -- NAME=VALUE …`. A name the shell would not take, or one
/// that would change how the subshell itself finds or splits the command
/// (`PATH`, `IFS`, `LD_*`), keeps `env`.
fn session_command(command: &RemoteCommand) -> (String, String) {
    let exportable = |name: &str| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
            && !matches!(name, "PATH" | "IFS")
            && !name.starts_with("LD_")
    };
    if !command.env.iter().all(|(name, _)| exportable(name)) {
        return (String::new(), command.to_shell_line());
    }
    let exports: String = command
        .env
        .iter()
        .map(|(name, value)| format!("export {}; ", shell_quote(&format!("{name}={value}"))))
        .collect();
    let line = format!("/bin/sh -c {}", shell_quote(&command.script));
    (exports, line)
}

/// The whole seconds the remote `timeout(1)` is given for `limit` (busybox
/// takes no fractions).
pub(super) fn remote_seconds(limit: Duration) -> Duration {
    Duration::from_secs(limit.as_secs_f64().ceil() as u64)
}

/// `line` with its stdout and stderr each passed through `head -c
/// LIMIT+1` on the target: once kiln has seen more than it will hold, the
/// command dies of SIGPIPE on its next write even if the session (held
/// open by the ssh master) lingers after kiln killed its client. The
/// command's exit status comes back through fd 5 (POSIX sh has no
/// `pipefail`); fds 3 to 5 are closed for the command so it cannot write
/// around the `head`s or hold the status pipe open.
///
/// `head` writes through stdio, so into a pipe it passes output on only in
/// 4 KiB blocks or at the end; while the output streams (`-vv`) it runs
/// under `stdbuf -o0` where the target has it, so each line arrives as the
/// command writes it.
fn bounded_line(line: &str, output_limit: usize, streams: bool) -> String {
    let bytes = output_limit.saturating_add(1);
    let head = if streams {
        "kiln_head() { if command -v stdbuf >/dev/null 2>&1; then stdbuf -o0 head \"$@\"; else head \"$@\"; fi; }\n"
    } else {
        "kiln_head() { head \"$@\"; }\n"
    };
    let wrapper = format!(
        "{head}exec 3>&1 4>&2\n\
         status=$( {{ {{ {{ {line} 3>&- 4>&- 5>&-; echo \"$?\" >&5; }} | kiln_head -c {bytes} >&3; }} 2>&1 | kiln_head -c {bytes} >&4; }} 5>&1 )\n\
         exit \"${{status:-1}}\""
    );
    format!("/bin/sh -c {}", shell_quote(&wrapper))
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use super::*;

    #[test]
    fn root_commands_go_through_sudo_and_timeout() {
        let mut command = RemoteCommand::new("apt-get install -y \"$p\"");
        command.env.push(("p".into(), "x'$(id)".into()));
        let plain = command.to_shell_line();
        assert_eq!(remote_line(&command, None, true, true, false), plain);
        assert_eq!(
            remote_line(&command, None, true, false, false),
            format!("sudo -n -- {plain}")
        );
        let limit = Some(Duration::from_millis(1500));
        assert_eq!(
            remote_line(&command, limit, true, false, false),
            format!("sudo -n -- timeout -k 5 7 {plain}")
        );
        assert_eq!(remote_line(&command, limit, false, true, false), plain);
    }

    #[test]
    fn session_lines_time_out_at_the_limit_on_the_host() {
        let v = Origin::Validator;
        let mut command = RemoteCommand::new("sleep 30");
        assert_eq!(
            session_line(&command, v, None, true),
            "exec /bin/sh -c 'sleep 30'"
        );
        let limit = Some(Duration::from_millis(1500));
        assert_eq!(
            session_line(&command, v, limit, true),
            "exec timeout -k 2 2 /bin/sh -c 'sleep 30'"
        );
        assert_eq!(
            session_line(&command, v, limit, false),
            "exec /bin/sh -c 'sleep 30'"
        );
        // kiln's own script runs in the loop's subshell unless limited.
        assert_eq!(session_line(&command, Origin::Kiln, None, true), "sleep 30");
        assert_eq!(
            session_line(&command, Origin::Kiln, limit, true),
            "exec timeout -k 2 2 /bin/sh -c 'sleep 30'"
        );
        command.output_limit = Some(10);
        assert_eq!(
            session_line(&command, v, limit, true),
            format!(
                "kiln_bounded 11 {}",
                shell_quote("exec timeout -k 2 2 /bin/sh -c 'sleep 30'")
            )
        );
        let line = session_line(&RemoteCommand::new("echo hi; exit 3"), v, None, false);
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(line)
            .output()
            .unwrap();
        assert_eq!(
            (output.status.code(), output.stdout),
            (Some(3), b"hi\n".to_vec())
        );
    }

    /// Names the shell takes become `export`s (no `env` process); any
    /// other name, or one that changes how the line itself runs, keeps
    /// `env`; the values arrive byte for byte either way.
    #[test]
    fn session_lines_export_what_the_shell_can() {
        let v = Origin::Validator;
        let printed = "printf '%s|' \"$a_b\" \"$X1\"; env | grep -c '^PATH=/x' || :";
        let mut command = RemoteCommand::new(printed);
        command.env = vec![
            ("a_b".into(), "it's $(id) `x`\nline".into()),
            ("X1".into(), String::new()),
        ];
        let line = session_line(&command, v, None, false);
        assert!(line.starts_with("export 'a_b=it'"), "{line}");
        let run = |line: &str| {
            let output = Command::new("/bin/sh")
                .arg("-c")
                .arg(line)
                .output()
                .unwrap();
            String::from_utf8(output.stdout).unwrap()
        };
        assert_eq!(run(&line), "it's $(id) `x`\nline||0\n");
        assert_eq!(
            run(&session_line(&command, Origin::Kiln, None, false)),
            "it's $(id) `x`\nline||0\n"
        );
        for name in ["PATH", "IFS", "LD_PRELOAD", "my-arg", "1x"] {
            let mut with = command.clone();
            with.env.push((name.into(), "/x".into()));
            let line = session_line(&with, v, None, false);
            assert!(line.starts_with("exec env -- "), "{name}: {line}");
            let line = session_line(&with, Origin::Kiln, None, false);
            assert!(line.starts_with("exec env -- "), "{name}: {line}");
        }
        let mut with_path = command.clone();
        with_path
            .env
            .push(("PATH".into(), "/x:/usr/bin:/bin".into()));
        assert_eq!(
            run(&session_line(&with_path, v, None, false)),
            "it's $(id) `x`\nline||1\n"
        );
    }

    /// Runs a bounded line under the local /bin/sh, as the target would.
    fn run_bounded(script: &str, limit: usize) -> std::process::Output {
        let mut command = RemoteCommand::new(script);
        command.env.push(("V".into(), "it's".into()));
        command.output_limit = Some(limit);
        let line = remote_line(&command, None, false, true, false);
        Command::new("/bin/sh")
            .arg("-c")
            .arg(line)
            .output()
            .unwrap()
    }

    #[test]
    fn a_streaming_bounded_line_passes_each_line_on_as_it_is_written() {
        use std::io::BufRead;
        let mut command = RemoteCommand::new("echo first; sleep 3; echo second");
        command.output_limit = Some(1000);
        let line = remote_line(&command, None, false, true, true);
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(line)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(first, "first\n");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        child.wait().unwrap();
    }

    #[test]
    fn bounded_lines_keep_streams_and_status_and_cut_floods() {
        let output = run_bounded(r#"printf '%s' "$V"; echo err >&2; exit 3"#, 100);
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"it's");
        assert_eq!(output.stderr, b"err\n");
        // A flood on either stream stops one byte past the limit: the
        // command dies of SIGPIPE instead of running on.
        let output = run_bounded("yes", 1000);
        assert_eq!(output.stdout.len(), 1001);
        assert_eq!(output.status.code(), Some(128 + libc::SIGPIPE));
        let output = run_bounded("yes >&2", 1000);
        assert_eq!((output.stdout.len(), output.stderr.len()), (0, 1001));
        // The command cannot write around the `head`s.
        let output = run_bounded("yes >&3", 1000);
        assert!(output.stdout.is_empty(), "{}", output.stdout.len());
    }

    #[test]
    fn stat_output_parses_into_metadata() {
        assert_eq!(
            parse_stat("81a4 5 33 34\n"),
            Some(FileMetadata {
                kind: FileKind::Regular,
                size: 5,
                mode: 0o644,
                uid: 33,
                gid: 34
            })
        );
        let kind = |text: &str| parse_stat(text).map(|m| (m.kind, m.mode));
        assert_eq!(kind("43ed 4096 0 0"), Some((FileKind::Directory, 0o1755)));
        assert_eq!(kind("a1ff 4 0 0"), Some((FileKind::Symlink, 0o777)));
        assert_eq!(kind("21b6 0 0 0"), Some((FileKind::Other, 0o666)));
        assert_eq!(kind("89ed 0 0 0"), Some((FileKind::Regular, 0o4755)));
        assert_eq!(parse_stat("stat: cannot stat"), None);
    }
}

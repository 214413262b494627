//! How a command reaches the guest. libguestfs's `sh` call bind-mounts /dev,
//! /dev/pts, /proc and /sys into the guest and lends it the appliance's
//! /etc/resolv.conf around *every* call — a dozen `mount`, `umount` and `cp`
//! processes, about 0.7 s per command under software emulation. A
//! [`CommandChannel::SessionChroot`] session does that set-up once, when its
//! first command runs ([`setup_script`]), sends each command through the
//! appliance's own shell (guestfsd's `debug sh`) into the guest with
//! `chroot` ([`appliance_script`]), and undoes the set-up before the
//! appliance shuts down ([`ChrootSetup::teardown_script`]), so a committed
//! image holds exactly what it would after `sh`. Where the appliance lacks
//! `debug sh` (it is outside libguestfs's stable API) commands go through
//! `sh` inside the guest ([`capture_script`]). Both wrappers capture the
//! command's exit status and streams, each stream cut at the command's
//! output limit on the guest's side ([`capped_run`]), and answer in the
//! same reply frame ([`parse_reply`]).

use std::time::Duration;

use crate::remote::{shell_quote, CommandOutput, RemoteCommand};

/// How an image session sends commands into the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommandChannel {
    /// Set the guest up once per session and `chroot` into it for each
    /// command; libguestfs's `sh` where the appliance cannot.
    #[default]
    SessionChroot,
    /// libguestfs's `sh` for every command, with its set-up each time.
    DaemonSh,
}

/// The guest's resolver configuration, which commands see replaced by the
/// appliance's while the network is on (as libguestfs's `sh` does).
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Shell text for the appliance (guestfsd sets `$root` to the guest's
/// mount point) that binds what libguestfs's `sh` binds and, with the
/// network on, moves the guest's resolv.conf to `backup` and lends the
/// appliance's. Each step that succeeded prints a marker line, which
/// [`ChrootSetup::from_reply`] reads back so that exactly those steps are
/// undone. The script always exits 0: a failed bind only means the command
/// sees less of /dev or /proc, as with `sh`, which ignores those failures
/// too.
pub(super) fn setup_script(network: bool, backup: &str) -> String {
    setup_script_lending(network, backup, "/etc/resolv.conf")
}

/// [`setup_script`] with the resolver to lend given (the unit tests lend a
/// file of their own).
fn setup_script_lending(network: bool, backup: &str, lent: &str) -> String {
    let mut script = String::from(
        "r=$root\n\
         [ -n \"$r\" ] && [ -d \"$r\" ] || { echo kiln-setup-no-root; exit 0; }\n\
         for d in /dev /dev/pts /proc /sys; do\n\
         [ -d \"$r$d\" ] && mount --bind \"$d\" \"$r$d\" 2>/dev/null && echo \"kiln-bound $d\"\n\
         done\n\
         if [ -d /sys/fs/selinux ]; then\n\
         for d in /selinux /sys/fs/selinux; do\n\
         [ -d \"$r$d\" ] && mount --bind /sys/fs/selinux \"$r$d\" 2>/dev/null && echo \"kiln-bound $d\"\n\
         done\n\
         fi\n",
    );
    if network {
        let conf = shell_quote(RESOLV_CONF);
        let backup = shell_quote(backup);
        let lent = shell_quote(lent);
        script.push_str(&format!(
            "c=\"$r\"{conf}; b=\"$r\"{backup}\n\
             if [ -e \"$c\" ] || [ -L \"$c\" ]; then\n\
             mv -f \"$c\" \"$b\" && echo kiln-saved-resolver && cp {lent} \"$c\" && echo kiln-lent-resolver\n\
             elif [ -d \"$r/etc\" ]; then\n\
             cp {lent} \"$c\" && echo kiln-lent-resolver\n\
             fi\n"
        ));
    }
    script.push_str("echo kiln-setup-done\nexit 0\n");
    script
}

/// What the session set-up changed in the guest, so that it can be undone.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ChrootSetup {
    /// Guest directories with a bind mount on them, in mount order.
    bound: Vec<String>,
    /// Where the guest's own resolv.conf waits (and where file calls on it
    /// go) while the appliance's is lent.
    resolver_backup: Option<String>,
    /// Whether the appliance's resolv.conf sits in the guest.
    lent_resolver: bool,
}

impl ChrootSetup {
    /// Reads the set-up's markers; `None` when there was nothing to set up
    /// (no guest mounted).
    pub(super) fn from_reply(reply: &str, backup: &str) -> Option<ChrootSetup> {
        let mut setup = ChrootSetup::default();
        let mut saved = false;
        for line in reply.lines() {
            match line.split_once(' ') {
                Some(("kiln-bound", dir)) => setup.bound.push(dir.to_string()),
                _ if line == "kiln-saved-resolver" => saved = true,
                _ if line == "kiln-lent-resolver" => setup.lent_resolver = true,
                _ if line == "kiln-setup-no-root" => return None,
                _ => {}
            }
        }
        if saved || setup.lent_resolver {
            setup.resolver_backup = Some(backup.to_string());
        }
        Some(setup)
    }

    /// The path a file call should use for the guest's `path`: the guest's
    /// own resolv.conf while the appliance's is lent, so reading and writing
    /// it through the file calls sees what the image will hold.
    pub(super) fn file_path<'a>(&'a self, path: &'a str) -> &'a str {
        match &self.resolver_backup {
            Some(backup) if path == RESOLV_CONF => backup,
            _ => path,
        }
    }

    /// Shell text that puts the guest's resolv.conf back (or none, if it had
    /// none) and removes the bind mounts, innermost first. It prints
    /// `kiln-restored` at the end, or `kiln-restore-failed` when the guest's
    /// resolv.conf could not be put back.
    pub(super) fn teardown_script(&self) -> String {
        let mut script = String::from("r=$root\n");
        if let Some(backup) = &self.resolver_backup {
            let conf = shell_quote(RESOLV_CONF);
            let backup = shell_quote(backup);
            script.push_str(&format!("c=\"$r\"{conf}; b=\"$r\"{backup}\n"));
            if self.lent_resolver {
                script.push_str("rm -f \"$c\" || echo kiln-restore-failed\n");
            }
            script.push_str(
                "if [ -e \"$b\" ] || [ -L \"$b\" ]; then mv -f \"$b\" \"$c\" || echo kiln-restore-failed; fi\n",
            );
        }
        for dir in self.bound.iter().rev() {
            let dir = shell_quote(dir);
            script.push_str(&format!(
                "umount \"$r\"{dir} 2>/dev/null || umount -l \"$r\"{dir} 2>/dev/null\n"
            ));
        }
        script.push_str("echo kiln-restored\nexit 0\n");
        script
    }

    /// Whether the teardown's reply says the guest is back as it was.
    pub(super) fn restored(reply: &str) -> bool {
        let lines: Vec<&str> = reply.lines().collect();
        lines.contains(&"kiln-restored") && !lines.contains(&"kiln-restore-failed")
    }
}

/// Grace after the timeout's TERM before `timeout` sends KILL.
const KILL_GRACE_SECONDS: u64 = 10;

/// Output (stdout and stderr together) up to this size comes back inline in
/// the reply. Base64 makes it 4/3 bigger plus a newline every 76
/// characters, and libguestfs refuses protocol messages over 4 MB, so
/// 2 MiB leaves room; bigger output is downloaded from the capture files.
const INLINE_OUTPUT_LIMIT: u64 = 2 << 20;

/// The first word of the wrapper's reply.
const REPLY_TAG: &str = "kiln-run";

/// Seconds the stream readers wait past a command's own limit (and its
/// KILL grace) before giving up on a stream something still holds open.
const READER_GRACE_SECONDS: u64 = 5;

/// Shell text that runs `launch` followed by the command's line with its
/// streams through two FIFOs into `out` and `err`, and sets `kiln_status`.
/// `launch` must start `timeout` (kiln's `$kiln_run` in the guest, or the
/// appliance's own) so that the command and everything it starts share
/// one process group, which the wrapper can end as a whole.
///
/// With an output limit each reader is `head -c LIMIT+1`: a flood stops
/// there (the writer gets SIGPIPE once the reader is gone, and the reader
/// that filled up also kills the command's group, which ends a command
/// that ignores SIGPIPE), so neither capture file ever holds more than
/// LIMIT+1 bytes. When the command itself exits, whatever it left running
/// in its group is ended too: a background child holding the stream open
/// would otherwise keep the readers, and so the whole call, waiting. The
/// readers give up `READER_GRACE_SECONDS` after the command's own timeout
/// in case something outside the group (a daemon that called `setsid`)
/// still holds a stream.
fn capped_run(command: &RemoteCommand, launch: &str, read: &str, files: &CaptureFiles) -> String {
    let line = command.to_shell_line();
    let CaptureFiles {
        out,
        err,
        out_fifo,
        err_fifo,
    } = files;
    let (reader, cut) = match command.output_limit {
        Some(limit) => {
            let cap = limit as u64 + 1;
            (
                format!("head -c {cap}"),
                format!(
                    "\n[ \"$(wc -c <\"$1\")\" -lt {cap} ] 2>/dev/null || {{ kill -s KILL -- \"-$kiln_pid\" || kill -s KILL \"$kiln_pid\"; }} 2>/dev/null"
                ),
            )
        }
        None => ("cat".to_string(), String::new()),
    };
    format!(
        "rm -f {out} {err} {out_fifo} {err_fifo}\n\
         if mkfifo -m 600 {out_fifo} {err_fifo}; then\n\
         {launch} {line} >{out_fifo} 2>{err_fifo} </dev/null &\n\
         kiln_pid=$!\n\
         kiln_read() {{ {read} {reader} <\"$2\" >\"$1\"{cut}\n}}\n\
         kiln_read {out} {out_fifo} & kiln_out=$!\n\
         kiln_read {err} {err_fifo} & kiln_err=$!\n\
         wait \"$kiln_pid\"\n\
         kiln_status=$?\n\
         kill -s KILL -- \"-$kiln_pid\" 2>/dev/null\n\
         wait \"$kiln_out\" \"$kiln_err\"\n\
         else\n\
         kiln_status=lost\n\
         fi\n\
         rm -f {out_fifo} {err_fifo}\n"
    )
}

/// Where [`capped_run`] keeps a command's streams (shell words, quoted).
struct CaptureFiles {
    out: String,
    err: String,
    out_fifo: String,
    err_fifo: String,
}

impl CaptureFiles {
    /// The four files at `prefix` + `.stdout`, `.stderr`, `.out-fifo`,
    /// `.err-fifo`, or with `/` as the separator when `prefix` is a directory.
    fn at(prefix: &str, separator: char) -> CaptureFiles {
        let file = |name: &str| shell_quote(&format!("{prefix}{separator}{name}"));
        CaptureFiles {
            out: file("stdout"),
            err: file("stderr"),
            out_fifo: file("out-fifo"),
            err_fifo: file("err-fifo"),
        }
    }
}

/// `timeout` arguments for the command's limit; `0` (no limit) still puts
/// the command in a process group of its own.
fn timeout_args(command: &RemoteCommand) -> String {
    match command.timeout {
        Some(limit) => format!("-k {KILL_GRACE_SECONDS} {}", whole_seconds(limit)),
        None => "0".into(),
    }
}

/// The readers' own limit, when the command has one.
fn reader_timeout(command: &RemoteCommand) -> Option<u64> {
    command
        .timeout
        .map(|limit| whole_seconds(limit) + KILL_GRACE_SECONDS + READER_GRACE_SECONDS)
}

/// The reply frame's test for output past the command's limit: true (and
/// the frame is `kiln-run STATUS toolarge`, nothing of the output sent)
/// when `$kiln_total` passes it.
fn too_large_test(command: &RemoteCommand) -> String {
    match command.output_limit {
        Some(limit) => format!("[ \"$kiln_total\" -gt {limit} ] 2>/dev/null"),
        None => "false".into(),
    }
}

/// The shell text libguestfs's `sh` runs in the guest: the command (under
/// coreutils `timeout` when the guest has it) with its streams captured in
/// `capture` through [`capped_run`], then the reply frame: `kiln-run
/// STATUS inline`, stdout in base64, a `.` line, stderr in base64, a `.`
/// line (the capture is then removed); `kiln-run STATUS toolarge` when the
/// output passed the command's limit (the capture is removed, nothing of it
/// sent); or `kiln-run STATUS files` when the output is too large to inline
/// or the guest lacks `base64`, leaving the files to be downloaded. The
/// wrapper itself always succeeds, so libguestfs's `sh` reports only real
/// failures (no `/bin/sh`, no space). Name resolution inside the command
/// works because the appliance's resolv.conf is lent to the guest while
/// commands run (per session, or by `sh` per command).
pub(super) fn capture_script(command: &RemoteCommand, capture: &str) -> String {
    let files = CaptureFiles::at(capture, '/');
    let read_timeout = match reader_timeout(command) {
        Some(seconds) => format!("timeout {seconds}"),
        None => String::new(),
    };
    let run = capped_run(command, "$kiln_run", "$kiln_read", &files);
    let too_large = too_large_test(command);
    let capture = shell_quote(capture);
    let CaptureFiles { out, err, .. } = files;
    format!(
        "PATH={GUEST_PATH}; HOME=/root; export PATH HOME\n\
         mkdir -p -m 700 {capture} || exit 1\n\
         if command -v timeout >/dev/null 2>&1; then kiln_run='timeout {timeout}'; kiln_read='{read_timeout}'; else kiln_run=; kiln_read=; fi\n\
         {run}\
         if [ \"$kiln_status\" = lost ]; then\n\
         echo 'kiln-run-lost the guest could not make the capture FIFOs'; rm -rf {capture}; exit 0\n\
         fi\n\
         kiln_total=$(cat {out} {err} | wc -c)\n\
         if {too_large}; then\n\
         echo \"{REPLY_TAG} $kiln_status toolarge\"; rm -rf {capture}\n\
         elif command -v base64 >/dev/null 2>&1 && [ \"$kiln_total\" -le {INLINE_OUTPUT_LIMIT} ] 2>/dev/null; then\n\
         echo \"{REPLY_TAG} $kiln_status inline\"\n\
         base64 <{out} && echo . && base64 <{err} && echo . && rm -rf {capture}\n\
         else\n\
         echo \"{REPLY_TAG} $kiln_status files\"\n\
         fi\n\
         exit 0\n",
        timeout = timeout_args(command),
    )
}

/// Where the appliance-side wrapper keeps a command's streams, and how it
/// enters the guest. One session runs one command at a time, so fixed names
/// serve every command: each overwrites the last one's capture.
pub(super) struct ApplianceSide<'a> {
    /// Prefix of the capture files and FIFOs, in the appliance (never the guest).
    pub scratch: &'a str,
    /// The command that puts the rest of the line into the guest's root.
    pub enter: &'a str,
}

impl ApplianceSide<'static> {
    pub(super) const CHROOT: ApplianceSide<'static> = ApplianceSide {
        scratch: "/tmp/.kiln-capture",
        enter: "chroot \"$kiln_root\"",
    };
}

/// The shell text the appliance runs (through `debug sh`) for one command
/// of a session chroot: the command enters the guest with `chroot`, under
/// the appliance's coreutils `timeout`, with its streams captured in the
/// appliance through [`capped_run`], so nothing is written to the guest
/// for it; the reply frame is [`capture_script`]'s. Output too large to
/// inline (but within the command's limit) is moved into the guest at
/// `spill` (`stdout`, `stderr`) for download. guestfsd's `debug sh`
/// exports `root` and `sd` to every shell it starts; they are the
/// appliance's business, so the guest never sees them.
pub(super) fn appliance_script(
    command: &RemoteCommand,
    spill: &str,
    side: &ApplianceSide,
) -> String {
    let files = CaptureFiles::at(side.scratch, '.');
    let launch = format!(
        "PATH={GUEST_PATH} HOME=/root timeout {} {}",
        timeout_args(command),
        side.enter
    );
    let read_timeout = match reader_timeout(command) {
        Some(seconds) => format!("timeout {seconds}"),
        None => String::new(),
    };
    let run = capped_run(command, &launch, &read_timeout, &files);
    let too_large = too_large_test(command);
    let spill = shell_quote(spill);
    let CaptureFiles { out, err, .. } = files;
    format!(
        "kiln_root=$root; unset root sd\n\
         {run}\
         set -- $(wc -c {out} {err} 2>/dev/null)\n\
         kiln_total=$5\n\
         if [ \"$kiln_status\" = lost ]; then\n\
         echo 'kiln-run-lost the appliance could not make the capture FIFOs'\n\
         elif {too_large}; then\n\
         echo \"{REPLY_TAG} $kiln_status toolarge\"; rm -f {out} {err}\n\
         elif [ \"$kiln_total\" -le {INLINE_OUTPUT_LIMIT} ] 2>/dev/null && command -v base64 >/dev/null 2>&1; then\n\
         echo \"{REPLY_TAG} $kiln_status inline\"\n\
         if [ -s {out} ]; then base64 {out}; fi; echo .\n\
         if [ -s {err} ]; then base64 {err}; fi; echo .\n\
         elif mkdir -p -m 700 \"$kiln_root\"{spill} && mv -f {out} \"$kiln_root\"{spill}/stdout && mv -f {err} \"$kiln_root\"{spill}/stderr; then\n\
         echo \"{REPLY_TAG} $kiln_status files\"\n\
         else\n\
         echo 'kiln-run-lost the output could not be kept'\n\
         fi\n\
         exit 0\n"
    )
}

/// The PATH commands get in the guest.
const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A limit in whole seconds for `timeout`, rounded up, at least 1.
fn whole_seconds(limit: Duration) -> u64 {
    (limit.as_secs() + u64::from(limit.subsec_nanos() > 0)).max(1)
}

/// What the wrapper replied.
#[derive(Debug, PartialEq)]
pub(super) enum Reply {
    /// The whole result, decoded.
    Inline(CommandOutput),
    /// Only the exit status; the streams wait in the capture files (large
    /// output, no `base64` in the guest, or an inline frame cut short).
    Files(i32),
    /// The output passed the command's limit; nothing of it was sent and
    /// the capture is gone.
    TooLarge,
    /// Not a reply of the wrapper at all.
    Garbled,
}

pub(super) fn parse_reply(reply: &str) -> Reply {
    let mut lines = reply.split('\n');
    let header: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    let (exit_code, mode) = match header[..] {
        [REPLY_TAG, status, mode] => match status.parse::<i32>() {
            Ok(code) => (code, mode),
            Err(_) => return Reply::Garbled,
        },
        _ => return Reply::Garbled,
    };
    match mode {
        "files" => return Reply::Files(exit_code),
        "toolarge" => return Reply::TooLarge,
        "inline" => {}
        _ => return Reply::Garbled,
    }
    // Base64 lines never equal ".", so the two sections end at the first
    // two "." lines; without both, the frame was cut short.
    let mut sections = [String::new(), String::new()];
    let mut ended = 0;
    for line in lines {
        if ended == 2 {
            break;
        }
        if line == "." {
            ended += 1;
        } else {
            sections[ended].push_str(line);
        }
    }
    match (
        ended,
        decode_base64(&sections[0]),
        decode_base64(&sections[1]),
    ) {
        (2, Some(stdout), Some(stderr)) => Reply::Inline(CommandOutput {
            exit_code,
            stdout,
            stderr,
        }),
        _ => Reply::Files(exit_code),
    }
}

/// Decodes standard base64 (padding and line breaks ignored); `None` on any
/// other character.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0u32);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// `timeout` exits 124 (or 137 after KILL); a command that itself exits 124
/// quickly is not a timeout.
pub(super) fn timed_out(exit_code: i32, elapsed: Duration, limit: Duration) -> bool {
    matches!(exit_code, 124 | 137) && elapsed >= limit
}

#[cfg(test)]
mod tests;

//! The wire format of a session (see [`super::session`]): the POSIX-sh loop
//! that runs on the host, the requests kiln writes to its stdin and the
//! replies it writes back, and kiln's bounded parsing of those replies.
//! Pure text and bytes, no processes: the session feeds it.
//!
//! A request is one header line `SEQ CMDLINES STDINLEN THENLINES`, then
//! CMDLINES lines of shell text, STDINLEN bytes for its stdin, and
//! THENLINES lines of a second shell text to run (stdin from /dev/null)
//! only when the first exits 0 — an upload and the script it uploaded, in
//! one trip. Each shell text and a non-empty stdin are followed by a
//! trailer line `#kiln-NONCE`, which the loop checks before it runs
//! anything, so a request cut short by a dropped connection is never run.
//!
//! The loop spawns as little as it can per request, since on a host each
//! process costs about a millisecond: shell text is read line by line with
//! the shell's own `read` (no NUL can be in it, see [`NulInCommand`]), and
//! run by `eval` in a subshell of the loop (each line `exec`s its command,
//! so the subshell is the command's only process). Only the stdin bytes
//! need a process: `head -c N`, which GNU coreutils reads exactly (it never
//! asks the pipe for more than is left); a `head` that over-reads (busybox
//! reads through stdio) is detected at start and replaced by `dd bs=1`.
//! stdin is stored and its trailer checked before the command starts, so a
//! truncated upload never reaches a file.
//!
//! A reply is one header line `KILN-REPLY SEQ STEP STATUS OUTLEN ERRLEN`,
//! then OUTLEN bytes of stdout and ERRLEN of stderr. The loop keeps the
//! output in files in its private directory until the command ends, so
//! lengths are known up front (`wc`, skipped when both are empty); a line
//! with an output limit runs under the loop's `kiln_bounded`, whose two
//! `head -c LIMIT+1` (reading the command's stdout and stderr through
//! FIFOs made once per session) keep those files at the limit and end a
//! flooding command with SIGPIPE. The `head`s end when the command's last
//! writer does: `timeout(1)` kills the command's process group at its
//! deadline; a process that left the group and keeps the output open is
//! covered by kiln's own deadline, which gives the session up.

/// The loop the host runs, as the script of `/bin/sh -c LOOP kiln-loop
/// NONCE`. `$1` is the nonce: the ready line and every shell line's
/// trailer carry it, so stray output (a noisy shell rc) is never taken for
/// a frame. Header fields are checked to be digits before any use.
pub(super) const LOOP: &str = r##"n=$1
d=$(mktemp -d /tmp/kiln-loop.XXXXXX) || exit 1
trap 'rm -rf "$d"' EXIT
trap 'exit 1' HUP INT TERM PIPE
mkfifo "$d/po" "$d/pe" || exit 1
if [ "$(printf ab | { head -c 1 >/dev/null; head -c 1; })" = b ]; then
  kiln_take() { head -c "$1"; }
else
  kiln_take() { dd bs=1 count="$1" 2>/dev/null; }
fi
kiln_nl='
'
kiln_trailer() {
  IFS= read -r kiln_t || exit 3
  [ "$kiln_t" = "#kiln-$n" ] || exit 3
}
kiln_line() {
  line= kiln_k=0
  while [ "$kiln_k" -lt "$1" ]; do
    IFS= read -r kiln_l || exit 3
    line=$line$kiln_l$kiln_nl
    kiln_k=$((kiln_k + 1))
  done
  kiln_trailer
}
kiln_bounded() {
  head -c "$1" <"$d/po" &
  head -c "$1" <"$d/pe" >&2 &
  ( eval "$2" ) >"$d/po" 2>"$d/pe"
  kiln_s=$?
  wait
  return "$kiln_s"
}
printf '\nKILN-READY %s\n' "$n"
while IFS=' ' read -r seq clen ilen tlen; do
  case "$seq-$clen-$ilen-$tlen" in *[!0-9-]*|-*|*--*|*-) exit 2 ;; esac
  kiln_line "$clen"; cmd=$line
  in=/dev/null
  if [ "$ilen" -gt 0 ]; then
    kiln_take "$ilen" >"$d/i"
    kiln_trailer
    in=$d/i
  fi
  then=
  [ "$tlen" -eq 0 ] || { kiln_line "$tlen"; then=$line; }
  step=1
  ( eval "$cmd" ) <"$in" >"$d/o" 2>"$d/e"
  s=$?
  if [ -n "$then" ] && [ "$s" -eq 0 ]; then
    step=2
    ( eval "$then" ) </dev/null >"$d/o" 2>"$d/e"
    s=$?
  fi
  [ "$in" = /dev/null ] || : >"$d/i"
  if [ -s "$d/o" ] || [ -s "$d/e" ]; then
    wc -c "$d/o" "$d/e" >"$d/n"
    { read -r olen x; read -r elen x; } <"$d/n"
    printf 'KILN-REPLY %s %s %s %s %s\n' "$seq" "$step" "$s" "$olen" "$elen"
    cat "$d/o" "$d/e"
  else
    printf 'KILN-REPLY %s %s %s 0 0\n' "$seq" "$step" "$s"
  fi
done
"##;

/// What the loop prints once it is ready for requests, before the nonce.
pub(super) const READY: &str = "KILN-READY ";

/// The longest header line kiln accepts: a longer one is garbage.
pub(super) const MAX_HEADER: usize = 128;

/// One request: a shell line with its stdin, and optionally a second line
/// run only when the first succeeded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Request<'a> {
    pub line: &'a str,
    pub stdin: &'a [u8],
    pub then: Option<&'a str>,
}

/// Why a request cannot be framed: shell lines travel as text, and a NUL
/// would not survive the shell's variables (nor could it in an argv).
#[derive(Debug, thiserror::Error)]
#[error("the command holds a NUL byte, which no shell line can carry")]
pub(super) struct NulInCommand;

/// The bytes of `request` as the loop reads them.
pub(super) fn encode(
    request: &Request<'_>,
    seq: u64,
    nonce: &str,
) -> Result<Vec<u8>, NulInCommand> {
    let trailer = format!("#kiln-{nonce}\n");
    // A shell text as the loop reads it: its lines, then the trailer.
    let framed = |text: &str| -> Result<(usize, String), NulInCommand> {
        if text.contains('\0') {
            return Err(NulInCommand);
        }
        Ok((text.split('\n').count(), format!("{text}\n{trailer}")))
    };
    let (line_count, line) = framed(request.line)?;
    let (then_count, then) = request.then.map(framed).transpose()?.unwrap_or_default();
    let stdin_trailer = if request.stdin.is_empty() {
        ""
    } else {
        &trailer
    };
    let header = format!("{seq} {line_count} {} {then_count}\n", request.stdin.len());
    let mut bytes = Vec::with_capacity(
        header.len() + line.len() + request.stdin.len() + stdin_trailer.len() + then.len(),
    );
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(request.stdin);
    bytes.extend_from_slice(stdin_trailer.as_bytes());
    bytes.extend_from_slice(then.as_bytes());
    Ok(bytes)
}

/// Which of a request's shell lines a reply is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The first line (the only one, or the upload that failed).
    First,
    /// The second line, which ran because the first exited 0.
    Then,
}

/// A reply's header line, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReplyHeader {
    pub seq: u64,
    pub step: Step,
    pub status: i32,
    pub stdout_len: u64,
    pub stderr_len: u64,
}

impl ReplyHeader {
    /// Parses `KILN-REPLY SEQ STEP STATUS OUTLEN ERRLEN` (no newline);
    /// `None` for anything else. `wc` may pad its numbers with spaces.
    pub(super) fn parse(line: &[u8]) -> Option<ReplyHeader> {
        let text = std::str::from_utf8(line).ok()?;
        let mut fields = text.split_ascii_whitespace();
        if fields.next()? != "KILN-REPLY" {
            return None;
        }
        let seq = fields.next()?.parse().ok()?;
        let step = match fields.next()? {
            "1" => Step::First,
            "2" => Step::Then,
            _ => return None,
        };
        let status = fields.next()?.parse().ok()?;
        let stdout_len = fields.next()?.parse().ok()?;
        let stderr_len = fields.next()?.parse().ok()?;
        if fields.next().is_some() {
            return None;
        }
        Some(ReplyHeader {
            seq,
            step,
            status,
            stdout_len,
            stderr_len,
        })
    }

    /// The reply's stdout plus stderr, in bytes.
    pub(super) fn output_len(&self) -> u64 {
        self.stdout_len.saturating_add(self.stderr_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_line_counts_lengths_and_trailers() {
        let request = Request {
            line: "echo hi\necho there",
            stdin: b"\0\xff",
            then: Some("true"),
        };
        let bytes = encode(&request, 7, "abc").unwrap();
        let mut expected = b"7 2 2 1\necho hi\necho there\n#kiln-abc\n".to_vec();
        expected.extend_from_slice(b"\0\xff#kiln-abc\ntrue\n#kiln-abc\n");
        assert_eq!(bytes, expected);
        let plain = Request {
            line: "true",
            stdin: b"",
            then: None,
        };
        assert_eq!(
            encode(&plain, 1, "abc").unwrap(),
            b"1 1 0 0\ntrue\n#kiln-abc\n"
        );
        let nul = Request {
            line: "echo \0",
            stdin: b"",
            then: None,
        };
        assert!(encode(&nul, 1, "abc").is_err());
    }

    #[test]
    fn reply_headers_parse_strictly() {
        assert_eq!(
            ReplyHeader::parse(b"KILN-REPLY 3 2 1   12 0"),
            Some(ReplyHeader {
                seq: 3,
                step: Step::Then,
                status: 1,
                stdout_len: 12,
                stderr_len: 0
            })
        );
        for bad in [
            &b"KILN-REPLY 3 1 0 12"[..],
            b"KILN-REPLY 3 3 0 1 2",
            b"KILN-REPLY 3 1 0 -1 2",
            b"KILN-REPLY 3 1 0 1 2 9",
            b"garbage",
            b"KILN-REPLY \xff",
        ] {
            assert_eq!(ReplyHeader::parse(bad), None, "{bad:?}");
        }
    }
}

#!/bin/sh
# Makes /etc/motd say "$motd (Debian $os_version)". In test-only mode it
# only checks, and fails when the file says anything else.
set -eu
want="$motd (Debian $os_version)"
if [ "$(cat /etc/motd 2>/dev/null)" = "$want" ]; then
  exit 0
fi
if [ "$test_only" = 1 ]; then
  echo "/etc/motd does not say: $want" >&2
  exit 1
fi
printf '%s\n' "$want" > /etc/motd

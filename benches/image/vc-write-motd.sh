#!/bin/sh
# virt-customize's half of the benchmark: what the kiln manifest's
# os_version.sh + write_motd.sh do together (write /etc/motd once, leave it
# when it already says the right thing).
set -eu
want="Packed by kiln (Debian $(cat /etc/debian_version))"
[ "$(cat /etc/motd 2>/dev/null)" = "$want" ] || printf '%s\n' "$want" > /etc/motd

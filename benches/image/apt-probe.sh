#!/usr/bin/env bash
# Where one first pack's apt/dpkg time goes under software emulation
# (issue 14, part 1, round 2): one appliance set up the way a reconciling
# kiln pack sets it up (overlay with cachemode=unsafe, network on, 1 vCPU,
# 2 GB, force_tcg) on a throwaway overlay of the demo image, running
# apt-probe-guest.sh inside the guest. It prints, with the guest's own
# clock and its ext4 journal's commit counter (/proc/fs/jbd2/*/info):
#   - dpkg -i of the packages apt downloaded for less, file and procps, default against --force-unsafe-io,
#     alternating, with the journal commits each one caused;
#   - what one journal commit costs (400 appending 4 KiB writes, plain
#     against O_DSYNC, one process);
#   - apt-get's fixed cost: `-s install` of a package that is not
#     installed against one that is;
#   - apt-get install of less, file and procps with and without
#     DPKG_FORCE=unsafe-io (the environment variable that would carry it).
# Numbers are the guest's wall clock: on a shared host read them as pairs
# taken side by side, not as absolutes. The overlay is removed at the end;
# the cached demo image is never written.
#
#   benches/image/apt-probe.sh            # 2 rounds of each pair
#   ROUNDS=3 benches/image/apt-probe.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${KILN_BENCH_DIR:-/var/tmp/kiln-bench}
rounds=${ROUNDS:-2}
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg

mkdir -p "$dir"
base=$("$repo/scripts/build-demo-image.sh")
overlay=$(mktemp "$dir/apt-probe.XXXXXX.qcow2")
trap 'rm -f "$overlay"' EXIT
qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$overlay"

guestfish <<GF
add-drive $overlay format:qcow2 cachemode:unsafe
set-network true
set-smp 1
set-memsize 2048
run
mount /dev/sda1 /
upload $repo/benches/image/apt-probe-guest.sh /var/tmp/apt-probe-guest.sh
sh "bash /var/tmp/apt-probe-guest.sh $rounds 2>&1"
GF

#!/bin/bash
# The guest side of apt-probe.sh (run by its guestfish `sh`, so inside the
# guest's root with /dev, /proc and /sys bound and the network lent).
# Argument: how many rounds of each side-by-side pair.
set -u
rounds=${1:-2}
TIMEFORMAT="%R s wall, %U s user, %S s sys"
export DEBIAN_FRONTEND=noninteractive
# The journal of the file system mounted as the guest's root (the
# appliance's own disk may have one too).
root_device=$(awk '$2 == "/" { print $1 }' /proc/mounts | tail -1)
journal=/proc/fs/jbd2/${root_device##*/}-8
[ -r "$journal/info" ] || { echo "apt-probe: no journal at $journal" >&2; exit 1; }
commits() { awk '/transactions/ { print $1 }' "$journal/info"; }
packages="less file procps"
# Filled in once the packages are downloaded: what installing them adds.
added=
purge() { dpkg --purge $added >/dev/null 2>&1; sync; }

echo "guest: $(nproc) vCPU, $(awk '/MemTotal/ { print $2 }' /proc/meminfo) kB, $(dpkg-query -W -f '${Version}' dpkg) dpkg, $(dpkg-query -W -f '${Version}' apt) apt"
echo "## apt-get update (builds srcpkgcache.bin and pkgcache.bin)"
time apt-get update -q >/dev/null
echo "## apt-get --download-only install $packages"
time apt-get -y --download-only install $packages >/dev/null
cd /var/cache/apt/archives || exit 1
debs=$(ls ./*.deb)
added=$(for deb in $debs; do dpkg-deb -f "$deb" Package; done)
echo "downloaded: $(echo $added)"

for ((round = 1; round <= rounds; round++)); do
  for io in default --force-unsafe-io; do
    purge
    before=$(commits)
    echo "## round $round: dpkg -i of them, $io"
    if [ "$io" = default ]; then time dpkg -i $debs >/dev/null; else time dpkg "$io" -i $debs >/dev/null; fi
    echo "   journal commits: $(($(commits) - before))"
  done
done

for ((round = 1; round <= rounds; round++)); do
  rm -f /var/tmp/probe-plain /var/tmp/probe-dsync
  sync
  echo "## round $round: 400 appending 4 KiB writes, no sync"
  time dd if=/dev/zero of=/var/tmp/probe-plain bs=4k count=400 status=none
  before=$(commits)
  echo "## round $round: 400 appending 4 KiB writes, O_DSYNC"
  time dd if=/dev/zero of=/var/tmp/probe-dsync bs=4k count=400 oflag=dsync status=none
  echo "   journal commits: $(($(commits) - before))"
done
rm -f /var/tmp/probe-plain /var/tmp/probe-dsync

purge
for ((round = 1; round <= rounds; round++)); do
  echo "## round $round: apt-get -s install zstd (not installed)"
  time apt-get -s install zstd >/dev/null
  echo "## round $round: apt-get -s install dpkg (installed: nothing to do)"
  time apt-get -s install dpkg >/dev/null
done

for ((round = 1; round <= rounds; round++)); do
  for io in default unsafe-io; do
    purge
    before=$(commits)
    echo "## round $round: apt-get -y install $packages, dpkg $io"
    if [ "$io" = default ]; then
      time apt-get -y install $packages >/dev/null 2>&1
    else
      time DPKG_FORCE=unsafe-io,downgrade,security-mac apt-get -y install $packages >/dev/null 2>&1
    fi
    echo "   journal commits: $(($(commits) - before))"
  done
done

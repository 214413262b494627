#!/usr/bin/env bash
# Prints the path of a cached minimal Debian 12 root filesystem tarball,
# building it with debootstrap when absent. The cache key is this script's own
# content, so changing how the root filesystem is built rebuilds it.
#
#   scripts/debian-rootfs.sh            # -> /root/.cache/kiln/rootfs/bookworm-minbase-<key>.tar
#
# KILN_CACHE_DIR (kiln's cache root, as for kiln itself) overrides it (default: ${XDG_CACHE_HOME:-$HOME/.cache}/kiln).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KILN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}
key=$(sha256sum "$here/debian-rootfs.sh" | cut -c1-12)
tarball="$cache/rootfs/bookworm-minbase-$key.tar"

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "debian-rootfs.sh: debootstrap is not installed (run .ci/install-deps)" >&2; exit 1; }
  mkdir -p "$cache/rootfs"
  work=$(mktemp -d "$cache/rootfs/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "debian-rootfs.sh: debootstrapping Debian 12 (about 30 s)..." >&2
  # kmod, systemd-sysv and a kernel are left out: images and test hosts only
  # need a package manager, a shell and coreutils.
  debootstrap --variant=minbase --include=ca-certificates bookworm "$work/root" >"$work/log" 2>&1 \
    || { tail -20 "$work/log" >&2; exit 1; }
  # debootstrap copies the build host's resolv.conf; a target gets its own.
  rm -f "$work/root/etc/resolv.conf"
  apt_clean="$work/root/var/cache/apt/archives"
  find "$apt_clean" -name '*.deb' -delete
  tar -C "$work/root" -cf "$work/rootfs.tar" .
  mv "$work/rootfs.tar" "$tarball"
fi
echo "$tarball"

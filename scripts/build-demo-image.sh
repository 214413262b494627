#!/usr/bin/env bash
# Prints the path of a cached small Debian 12 qcow2 disk image (one MBR
# partition, ext4, about 1.5 GB free) for kiln's image-target tests and demos,
# building it from scripts/debian-rootfs.sh's root filesystem when absent.
# The cache key is the content of this script and of debian-rootfs.sh, so
# changing how either builds rebuilds the image.
#
#   scripts/build-demo-image.sh      # -> /root/.cache/kiln/images/debian12-<key>.qcow2
#
# Only the path goes to stdout; progress goes to stderr. Callers that modify
# the image must copy it first: the cached file is shared.
# KILN_CACHE_DIR (kiln's cache root, as for kiln itself) overrides it (default: ${XDG_CACHE_HOME:-$HOME/.cache}/kiln).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KILN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}
key=$(cat "$here/build-demo-image.sh" "$here/debian-rootfs.sh" | sha256sum | cut -c1-12)
image="$cache/images/debian12-$key.qcow2"

# The file system label the guest's /etc/fstab mounts its root by, so
# inspection finds the root without knowing the UUID virt-make-fs picks.
root_label=kiln-root

if [ ! -s "$image" ]; then
  command -v virt-make-fs >/dev/null \
    || { echo "build-demo-image.sh: virt-make-fs is not installed (run .ci/install-deps)" >&2; exit 1; }
  tarball=$("$here/debian-rootfs.sh")
  mkdir -p "$cache/images"
  work=$(mktemp -d "$cache/images/build.XXXXXX")
  trap 'rm -rf "$work"' EXIT

  echo "build-demo-image.sh: unpacking $tarball..." >&2
  mkdir "$work/root"
  tar -C "$work/root" --numeric-owner -xpf "$tarball"
  printf 'LABEL=%s / ext4 errors=remount-ro 0 1\n' "$root_label" >"$work/root/etc/fstab"

  # Hardware acceleration fails on nested and CI hosts (qemu aborts with
  # "failed to set MSR"); the build runs once per cache key, so software
  # emulation's extra seconds are cheaper than a failed build. A setting the
  # caller chose wins.
  export LIBGUESTFS_BACKEND_SETTINGS=${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}
  echo "build-demo-image.sh: building the qcow2 image (about 40 s)..." >&2
  virt-make-fs --format=qcow2 --type=ext4 --partition=mbr --size=+1500M \
    --label="$root_label" "$work/root" "$work/image.qcow2" >"$work/log" 2>&1 \
    || { tail -20 "$work/log" >&2; exit 1; }
  # virt-make-fs leaves every cluster allocated (a sparse 1.7 GB file); a
  # compacted copy is about 200 MB, so tests copy it quickly.
  qemu-img convert -f qcow2 -O qcow2 "$work/image.qcow2" "$work/compact.qcow2"
  mv "$work/compact.qcow2" "$image"
fi
echo "$image"

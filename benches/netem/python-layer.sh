#!/usr/bin/env bash
# Builds an overlayfs layer holding python3 and python3-apt on top of the
# sshd fleet's golden Debian 12 tree, for the netem benchmark's Ansible hosts
# (Ansible's modules run in Python on the target; apt's check mode needs
# python3-apt). The golden tree itself is never written: apt runs in a chroot
# on an overlay whose upper directory becomes the layer.
#
#   benches/netem/python-layer.sh GOLDEN LAYER   # LAYER/ is created; no-op if it exists
set -euo pipefail

golden=$1
layer=$2
[ -d "$layer" ] && exit 0

work=$(mktemp -d "$layer.build.XXXXXX")
merged="$work/merged"
cleanup() {
  for m in "$merged/proc" "$merged"; do
    mountpoint -q "$m" && umount -l "$m"
  done
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/upper" "$work/work" "$merged"
mount -t overlay overlay -o "lowerdir=$golden,upperdir=$work/upper,workdir=$work/work" "$merged"
mount -t proc proc "$merged/proc"
cp /etc/resolv.conf "$merged/etc/resolv.conf"
chroot "$merged" env DEBIAN_FRONTEND=noninteractive sh -c \
  'apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-apt >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*'
rm -f "$merged/etc/resolv.conf"
umount "$merged/proc"
umount "$merged"
chmod 755 "$work/upper"
mv "$work/upper" "$layer"

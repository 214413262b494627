#!/usr/bin/env bash
# The quick start: installs what kiln needs (Debian 12, as root), builds kiln,
# builds a small Debian 12 disk image when IMAGE (default: demo.qcow2) is
# absent, packs it with the bundled demo manifest, and proves the result
# with a read-only test-only run.
#
#   scripts/demo.sh [IMAGE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

image=${1:-demo.qcow2}
bash .ci/install-deps
cargo build
kiln=${CARGO_TARGET_DIR:-target}/debug/kiln

echo "demo: \$ kiln explain demo 1.0"
"$kiln" explain demo 1.0

if [ ! -f "$image" ]; then
  echo "demo: building $image (a minimal Debian 12, about a minute the first time)..."
  cp "$(scripts/build-demo-image.sh)" "$image"
fi

echo "demo: \$ kiln pack --image $image demo 1.0"
"$kiln" pack --image "$image" demo 1.0
echo "demo: \$ kiln pack --image $image --test-only demo 1.0"
"$kiln" pack --image "$image" --test-only demo 1.0

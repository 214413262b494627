#!/usr/bin/env bash
# kiln's start-up cost without a target: `kiln lint` of the demo manifest
# with a cold component cache (a fresh --cache-dir every run, so the eight
# built-in components are compiled) and a warm one (deserialised), timed by
# hyperfine (Debian: apt-get install hyperfine). Release build. Beside them,
# the same warm lint by kiln-pack: the same command line with libguestfs
# linked, which is what every verb paid at start-up before `kiln` handed
# `pack` over to it.
#
#   cargo build --release && benches/startup.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kiln=${KILN:-$repo/target/release/kiln}
kiln_pack=$(dirname "$kiln")/kiln-pack
manifest=$repo/manifests/demo/1.0/image.yaml
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
"$kiln" --cache-dir "$cache/warm" lint "$manifest" >/dev/null
# One --prepare per command: only the cold run empties its cache.
hyperfine -N --warmup 3 --runs "${RUNS:-30}" --export-markdown "$cache/table.md" \
  --prepare true -n "kiln lint, warm cache" "$kiln --cache-dir $cache/warm lint $manifest" \
  --prepare true -n "kiln-pack lint, warm cache" "$kiln_pack --cache-dir $cache/warm lint $manifest" \
  --prepare "rm -rf $cache/cold" -n "kiln lint, cold cache" "$kiln --cache-dir $cache/cold lint $manifest" >&2
cat "$cache/table.md"

#!/usr/bin/env bash
# The many-images benchmark (issue 14, part 2): one `kiln pack` of N images
# (default 4) in one appliance boot against N separate `kiln pack` runs of
# the same images, side by side in one run, alternating which goes first;
# then the same for `--test-only` on the packed images. Every image is a
# fresh copy of the Debian 12 demo image; the manifest
# (benches/multi-image/image.yaml) is cheap work without apt, so the boots
# dominate. Software emulation throughout (--accel tcg). The summary prints
# medians and the ratio batch / separate (target: <= 0.6 for 4 images).
# VERSUS=batchfile compares the same batch written as a `kiln pack --batch`
# file instead (one line per image, each with its own --motd) against the
# repeated --image, to show what reading and checking the file costs.
#
#   benches/multi-image.sh                    # 2 runs, 4 images
#   RUNS=3 IMAGES=4 KILN=target/release/kiln benches/multi-image.sh
#   VERSUS=batchfile benches/multi-image.sh
#
# Images, results (results.tsv) and each run's kiln output
# (PHASE-TOOL-RUN.log) live in $KILN_BENCH_DIR (default
# /var/tmp/kiln-bench-multi); the images are deleted at the end.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${RUNS:-2}
count=${IMAGES:-4}
versus=${VERSUS:-separate}
case $versus in separate | batchfile) ;; *) echo "multi-image.sh: VERSUS is separate or batchfile" >&2; exit 1 ;; esac
dir=${KILN_BENCH_DIR:-/var/tmp/kiln-bench-multi}
kiln=${KILN:-$repo/target/release/kiln}
manifest=$repo/benches/multi-image/image.yaml
results=$dir/results.tsv
session=$(date +%Y%m%dT%H%M%S)
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg

mkdir -p "$dir"
[ -x "$kiln" ] || { echo "multi-image.sh: $kiln missing; run cargo build --release or set KILN" >&2; exit 1; }
base=$("$repo/scripts/build-demo-image.sh")
trap 'rm -f "$dir"/batch-*.qcow2 "$dir"/separate-*.qcow2 "$dir"/batchfile-*.qcow2' EXIT

record() {
  printf '%s\t%s\t%s\t%s\t-\n' "$session" "$1" "$2" "$3" >>"$results"
  printf '  %-10s %-10s %8s s\n' "$1" "$2" "$3" >&2
}

# timed PHASE TOOL LOG -- COMMAND...
timed() {
  local phase=$1 tool=$2 log=$3
  shift 4
  local start end
  start=$EPOCHREALTIME
  if "$@" >"$log" 2>&1; then
    end=$EPOCHREALTIME
    record "$phase" "$tool" "$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')"
  else
    record "$phase" "$tool" FAIL
    tail -5 "$log" >&2
  fi
}

kpack() {
  "$kiln" pack --accel tcg --resource-root "$repo/manifests/demo/1.0" --manifest "$manifest" "$@"
}

images() { for ((n = 1; n <= count; n++)); do printf '%s\n' "$dir/$1-$n.qcow2"; done; }

# One kiln pack with every image.
batch() {
  local args=() image
  while read -r image; do args+=(--image "$image"); done < <(images batch)
  kpack "${args[@]}" "$@"
}

# One kiln pack per image, one after the other.
separate() {
  local image
  while read -r image; do kpack --image "$image" "$@" || return 1; done < <(images separate)
}

# One kiln pack --batch FILE naming every image, each line with its own
# --motd (the images sit beside the file, so the lines name them relatively).
batchfile() {
  local image n=0 file=$dir/batchfile.txt
  : >"$file"
  while read -r image; do
    n=$((n + 1))
    printf '%s %s --motd "image %d of the batch"\n' "$(basename "$image")" "$manifest" "$n" >>"$file"
  done < <(images batchfile)
  "$kiln" pack --accel tcg --resource-root "$repo/manifests/demo/1.0" --batch "$file" "$@"
}

alternate() {
  local i=$1 first=$2 second=$3
  if ((i % 2 == 0)); then eval "$second"; eval "$first"; else eval "$first"; eval "$second"; fi
}

for ((i = 1; i <= runs; i++)); do
  echo "run $i of $runs ($count images, load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  for kind in batch "$versus"; do
    while read -r image; do cp --sparse=always "$base" "$image"; done < <(images "$kind")
  done
  alternate "$i" \
    'timed pack batch "$dir/pack-batch-$i.log" -- batch' \
    'timed pack "$versus" "$dir/pack-$versus-$i.log" -- "$versus"'
  alternate "$i" \
    'timed testonly batch "$dir/testonly-batch-$i.log" -- batch --test-only' \
    'timed testonly "$versus" "$dir/testonly-$versus-$i.log" -- "$versus" --test-only'
done

echo
echo "Results of session $session ($runs runs, $count images; medians in seconds)"
python3 - "$results" "$session" "$versus" <<'PY'
import sys, statistics, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
times = collections.defaultdict(list)
for s, phase, tool, secs, _ in rows:
    if s == sys.argv[2] and secs != "FAIL":
        times[(phase, tool)].append(float(secs))
versus = sys.argv[3]
print(f"| phase | {versus} (s) | one batch of --images (s) | batch / {versus} | runs |")
print("| --- | ---: | ---: | ---: | ---: |")
for phase in ("pack", "testonly"):
    sep, bat = times.get((phase, versus)), times.get((phase, "batch"))
    if sep and bat:
        s, b = statistics.median(sep), statistics.median(bat)
        print(f"| {phase} | {s:.1f} | {b:.1f} | {b / s:.2f}x | {len(bat)} |")
PY

#!/usr/bin/env bash
# The disk-image benchmark: kiln against virt-customize doing the same work
# (benches/image/image.yaml vs --install + --run + --upload) on copies of the
# same Debian 12 demo image, side by side in one run, plus the libguestfs
# launch-only floor (`guestfish --ro -a IMG -i sh true`: launch, inspect,
# mount, one command). Every tool runs under software emulation
# (LIBGUESTFS_BACKEND_SETTINGS=force_tcg; kiln also gets --accel tcg) so the
# numbers are comparable on hosts where KVM cannot run guests. Runs alternate
# which tool goes first to spread the noise of a shared machine; the summary
# prints medians and ratios as a Markdown table.
#
#   cargo build --release
#   benches/image.sh                          # 2 runs of every phase
#   RUNS=3 PHASES="repack floor testonly" benches/image.sh
#
# Phases: first (pack a clean copy), repack (pack the image the same tool
# produced; kiln also as "kiln-sh-full", i.e. with --commands sh
# --full-inspection, how it ran before those two changes), floor, testonly
# (kiln and kiln-sh-full), verify (kiln re-pack with --verify), rtt
# (cargo bench --bench image_roundtrip: time per Remote call). Images and
# results live in $KILN_BENCH_DIR (default /var/tmp/kiln-bench); phases other
# than `first` reuse the packed images a previous `first` left there.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${RUNS:-2}
phases=${PHASES:-first repack floor testonly verify rtt}
dir=${KILN_BENCH_DIR:-/var/tmp/kiln-bench}
kiln=${KILN:-$repo/target/release/kiln}
manifest=$repo/benches/image/image.yaml
results=$dir/results.tsv
session=$(date +%Y%m%dT%H%M%S)
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg

mkdir -p "$dir"
[ -x "$kiln" ] || { echo "image.sh: $kiln missing; run cargo build --release" >&2; exit 1; }
base=$("$repo/scripts/build-demo-image.sh")

has_phase() { [[ " $phases " == *" $1 "* ]]; }

# record PHASE TOOL SECONDS COMMANDS
record() {
  printf '%s\t%s\t%s\t%s\t%s\n' "$session" "$1" "$2" "$3" "$4" >>"$results"
  printf '  %-10s %-16s %8s s  commands=%s\n' "$1" "$2" "$3" "$4" >&2
}

# timed PHASE TOOL LOG -- COMMAND...: runs COMMAND, records its wall time
# (or FAIL); a kiln command's --report gives the round-trip count.
timed() {
  local phase=$1 tool=$2 log=$3
  shift 4
  local start end commands=-
  start=$EPOCHREALTIME
  if "$@" >"$log" 2>&1; then
    end=$EPOCHREALTIME
    if [ -s "$dir/report.json" ]; then
      commands=$(jq '.targets[0].commands' "$dir/report.json")
      rm -f "$dir/report.json"
    fi
    record "$phase" "$tool" "$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')" "$commands"
  else
    record "$phase" "$tool" FAIL -
    tail -5 "$log" >&2
  fi
}

vc() {
  virt-customize -a "$1" --network \
    --install less,file,procps \
    --run "$repo/manifests/demo/1.0/scripts/os_version.sh" \
    --run "$repo/benches/image/vc-write-motd.sh" \
    --mkdir /tmp \
    --upload "$repo/benches/image/scripts/healthcheck.sh:/tmp/healthcheck.sh" \
    --chmod 0755:/tmp/healthcheck.sh
}

kpack() {
  rm -f "$dir/report.json"
  "$kiln" pack --accel tcg --resource-root "$repo/manifests/demo/1.0" --manifest "$manifest" --report "$dir/report.json" --image "$@"
}

# kiln as it was before the session chroot and the quick inspection, for
# before/after figures from the same run.
before="--commands sh --full-inspection"

floor() { guestfish --ro -a "$1" -i sh true; }
floor_net() { guestfish --ro --network -a "$1" -i sh true; }

# Runs "name:command" pairs in the given order.
alternate() {
  local i=$1
  shift
  local pairs=("$@")
  if ((i % 2 == 0)); then
    local reversed=()
    for ((j = ${#pairs[@]} - 1; j >= 0; j--)); do reversed+=("${pairs[j]}"); done
    pairs=("${reversed[@]}")
  fi
  for pair in "${pairs[@]}"; do eval "${pair#*:}"; done
}

for ((i = 1; i <= runs; i++)); do
  echo "run $i of $runs" >&2
  if has_phase first; then
    cp --sparse=always "$base" "$dir/vc.qcow2"
    cp --sparse=always "$base" "$dir/kiln.qcow2"
    alternate "$i" \
      'vc:timed first virt-customize "$dir/vc.log" -- vc "$dir/vc.qcow2"' \
      'kiln:timed first kiln "$dir/kiln.log" -- kpack "$dir/kiln.qcow2"'
  fi
  for image in vc kiln; do
    [ -s "$dir/$image.qcow2" ] || { echo "image.sh: run the first phase once ($dir/$image.qcow2 missing)" >&2; exit 1; }
  done
  if has_phase repack; then
    alternate "$i" \
      'vc:timed repack virt-customize "$dir/vc.log" -- vc "$dir/vc.qcow2"' \
      'kiln:timed repack kiln "$dir/kiln.log" -- kpack "$dir/kiln.qcow2"' \
      'old:timed repack kiln-sh-full "$dir/kiln.log" -- kpack "$dir/kiln.qcow2" $before'
  fi
  if has_phase floor || has_phase testonly; then
    alternate "$i" \
      'floor:has_phase floor && timed floor guestfish "$dir/floor.log" -- floor "$dir/kiln.qcow2"' \
      'floornet:has_phase floor && timed floor guestfish-network "$dir/floor.log" -- floor_net "$dir/kiln.qcow2"' \
      'test:has_phase testonly && timed testonly kiln "$dir/kiln.log" -- kpack "$dir/kiln.qcow2" --test-only' \
      'old:has_phase testonly && timed testonly kiln-sh-full "$dir/kiln.log" -- kpack "$dir/kiln.qcow2" --test-only $before'
  fi
  if has_phase verify; then
    timed verify kiln "$dir/kiln.log" -- kpack "$dir/kiln.qcow2" --verify
  fi
done

if has_phase rtt; then
  echo "round trips (cargo bench --bench image_roundtrip)" >&2
  (cd "$repo" && KILN_BENCH_IMAGE="$dir/kiln.qcow2" cargo bench -q --bench image_roundtrip) \
    | tee "$dir/rtt-$session.txt"
fi

echo
echo "Results of session $session ($runs runs; medians in seconds; commands = kiln round trips)"
"$repo/benches/summarize.sh" "$results" "$session"

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
#   KILN_BEFORE=/path/to/old/kiln PHASES="first packages compare" benches/image.sh
#   KILN_ONLY=1 PHASES="repack floor testonly" benches/image.sh
#
# Phases: first (pack a clean copy), repack (pack the image the same tool
# produced; kiln also as "kiln-sh-full", i.e. with --commands sh
# --full-inspection, how it ran before those two changes), floor, testonly
# (kiln and kiln-sh-full), verify (kiln re-pack with --verify), rtt
# (cargo bench --bench image_roundtrip: time per Remote call). Images and
# results live in $KILN_BENCH_DIR (default /var/tmp/kiln-bench); phases other
# than `first` reuse the packed images a previous `first` left there.
# packages: the first pack of benches/image/packages.yaml (four apt-get runs,
# one failing inside an `any`) against virt-customize running the same
# apt-get commands. With KILN_BEFORE (another kiln binary, e.g. main's
# build) `first` and `packages` also pack a third copy with it
# ("kiln-before"), and `compare` then checks that both kilns' images hold
# the same packages and files (dpkg status, and every file's type, mode,
# owner, size and link target, times ignored; apt's lists, caches and logs
# and /tmp are listed but not compared: see compare_images).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=${RUNS:-2}
phases=${PHASES:-first repack floor testonly verify rtt}
dir=${KILN_BENCH_DIR:-/var/tmp/kiln-bench}
kiln=${KILN:-$repo/target/release/kiln}
kiln_before=${KILN_BEFORE:-}
# KILN_ONLY=1: re-pack and test-only without virt-customize's re-pack and
# the kiln-sh-full runs (the floor ratios only).
kiln_only=${KILN_ONLY:-}
manifest=$repo/benches/image/image.yaml
results=$dir/results.tsv
session=$(date +%Y%m%dT%H%M%S)
export LIBGUESTFS_BACKEND_SETTINGS=force_tcg

mkdir -p "$dir"
[ -x "$kiln" ] || { echo "image.sh: $kiln missing; run cargo build --release" >&2; exit 1; }
base=$("$repo/scripts/build-demo-image.sh")

has_phase() { [[ " $phases " == *" $1 "* ]]; }

# record PHASE TOOL SECONDS COMMANDS [CPU_SECONDS]
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$session" "$1" "$2" "$3" "$4" "${5:--}" >>"$results"
  printf '  %-10s %-16s %8s s  commands=%s  cpu=%s s\n' "$1" "$2" "$3" "$4" "${5:--}" >&2
}

# The CPU seconds (user + system) this shell's finished children used so
# far, qemu included (each tool waits for its appliance). On a shared
# machine whose load stretches wall times 2-3x, the CPU an emulated
# appliance burns for the same work moves much less.
children_cpu() {
  times >"$dir/times.txt" # not in a pipe or $(...): a subshell has no children yet
  tail -1 "$dir/times.txt" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] } printf "%.2f", t }'
}

# timed PHASE TOOL LOG -- COMMAND...: runs COMMAND, records its wall time
# (or FAIL); a kiln command's --report gives the round-trip count.
timed() {
  local phase=$1 tool=$2 log=$3
  shift 4
  local start end commands=- cpu_start cpu_end
  children_cpu >"$dir/cpu.txt"
  cpu_start=$(<"$dir/cpu.txt")
  start=$EPOCHREALTIME
  if "$@" >"$log" 2>&1; then
    end=$EPOCHREALTIME
    children_cpu >"$dir/cpu.txt"
    cpu_end=$(<"$dir/cpu.txt")
    if [ -s "$dir/report.json" ]; then
      commands=$(jq '.targets[0].commands' "$dir/report.json")
      rm -f "$dir/report.json"
    fi
    record "$phase" "$tool" "$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')" "$commands" \
      "$(awk -v s="$cpu_start" -v e="$cpu_end" 'BEGIN { printf "%.2f", e - s }')"
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

# kpack_with BINARY MANIFEST IMAGE [ARGS...]
kpack_with() {
  local binary=$1 with_manifest=$2
  shift 2
  rm -f "$dir/report.json"
  "$binary" pack --accel tcg --resource-root "$repo/manifests/demo/1.0" --manifest "$with_manifest" --report "$dir/report.json" --image "$@"
}
kpack() { kpack_with "$kiln" "$manifest" "$@"; }

# What benches/image/packages.yaml does, as the package validator runs it
# (check with dpkg -s, install when missing), one apt-get per step.
vc_packages() {
  local install='dpkg -s PKG >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get -y install PKG'
  virt-customize -a "$1" --network \
    --run-command "find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -1440 | grep -q . || apt-get update -q" \
    --run-command "${install//PKG/less}" \
    --run-command "${install//PKG/java-1.8.0-openjdk-devel} || ${install//PKG/file}" \
    --run-command "${install//PKG/procps}"
}

# The listing compare_images diffs: dpkg's status, then one line per file
# (path, type, mode, owner, group, size, link target; no times), from one
# read-only appliance.
image_listing() {
  guestfish --ro -a "$1" -i <<'GF'
cat /var/lib/dpkg/status
sh "find / -xdev -printf '%p %y %m %U %G %s %l\\n' | LC_ALL=C sort"
GF
}

# compare_images NAME A B: what differs between two packed images, ignoring
# what differs between any two packs of the same image (apt's downloaded
# lists and caches, logs, ldconfig's aux cache, /tmp, /root's history).
compare_images() {
  local name=$1 a=$2 b=$3 out="$dir/compare-$1-$session.txt"
  local ignore='^(/var/lib/apt/lists/|/var/cache/apt/|/var/cache/ldconfig/|/var/cache/debconf/.*-old|/var/log/|/tmp/)'
  image_listing "$a" >"$dir/listing-a.txt"
  image_listing "$b" >"$dir/listing-b.txt"
  {
    echo "== $name: $a vs $b"
    echo "files listed: $(grep -c '^/' "$dir/listing-a.txt") vs $(grep -c '^/' "$dir/listing-b.txt")"
    echo "ignored lines (apt lists/caches, logs, ldconfig aux cache, debconf -old, /tmp): $(grep -Ec "$ignore" "$dir/listing-a.txt") vs $(grep -Ec "$ignore" "$dir/listing-b.txt")"
    echo "differences outside them (diff of listings):"
    diff <(grep -Ev "$ignore" "$dir/listing-a.txt") <(grep -Ev "$ignore" "$dir/listing-b.txt") && echo "none: identical"
  } >"$out" || true
  cat "$out" >&2
  rm -f "$dir/listing-a.txt" "$dir/listing-b.txt"
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
    before_pair=()
    if [ -n "$kiln_before" ]; then
      cp --sparse=always "$base" "$dir/kiln-before.qcow2"
      before_pair=('before:timed first kiln-before "$dir/kiln-before.log" -- kpack_with "$kiln_before" "$manifest" "$dir/kiln-before.qcow2"')
    fi
    alternate "$i" \
      'vc:timed first virt-customize "$dir/vc.log" -- vc "$dir/vc.qcow2"' \
      'kiln:timed first kiln "$dir/kiln.log" -- kpack "$dir/kiln.qcow2"' \
      "${before_pair[@]}"
  fi
  if has_phase packages; then
    packages=$repo/benches/image/packages.yaml
    for image in pk-vc pk-kiln pk-before; do cp --sparse=always "$base" "$dir/$image.qcow2"; done
    before_pair=()
    [ -n "$kiln_before" ] \
      && before_pair=('before:timed packages kiln-before "$dir/kiln-before.log" -- kpack_with "$kiln_before" "$packages" "$dir/pk-before.qcow2"')
    alternate "$i" \
      'vc:timed packages virt-customize "$dir/vc.log" -- vc_packages "$dir/pk-vc.qcow2"' \
      'kiln:timed packages kiln "$dir/kiln.log" -- kpack_with "$kiln" "$packages" "$dir/pk-kiln.qcow2"' \
      "${before_pair[@]}"
  fi
  if has_phase compare && [ "$i" = 1 ]; then
    [ -s "$dir/kiln-before.qcow2" ] && compare_images first "$dir/kiln-before.qcow2" "$dir/kiln.qcow2"
    [ -s "$dir/pk-before.qcow2" ] && compare_images packages "$dir/pk-before.qcow2" "$dir/pk-kiln.qcow2"
  fi
  for image in vc kiln; do
    [ -s "$dir/$image.qcow2" ] || { echo "image.sh: run the first phase once ($dir/$image.qcow2 missing)" >&2; exit 1; }
  done
  if has_phase repack; then
    alternate "$i" \
      'vc:if [ -z "$kiln_only" ]; then timed repack virt-customize "$dir/vc.log" -- vc "$dir/vc.qcow2"; fi' \
      'kiln:timed repack kiln "$dir/kiln.log" -- kpack "$dir/kiln.qcow2"' \
      'old:if [ -z "$kiln_only" ]; then timed repack kiln-sh-full "$dir/kiln.log" -- kpack "$dir/kiln.qcow2" $before; fi'
  fi
  if has_phase floor || has_phase testonly; then
    alternate "$i" \
      'floor:if has_phase floor; then timed floor guestfish "$dir/floor.log" -- floor "$dir/kiln.qcow2"; fi' \
      'floornet:if has_phase floor; then timed floor guestfish-network "$dir/floor.log" -- floor_net "$dir/kiln.qcow2"; fi' \
      'test:if has_phase testonly; then timed testonly kiln "$dir/kiln.log" -- kpack "$dir/kiln.qcow2" --test-only; fi' \
      'old:if has_phase testonly && [ -z "$kiln_only" ]; then timed testonly kiln-sh-full "$dir/kiln.log" -- kpack "$dir/kiln.qcow2" --test-only $before; fi'
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

#!/usr/bin/env bash
# Prints the Markdown table of one session of benches/image.sh's results
# (TSV: session, phase, tool, seconds, commands): the median of each phase
# and tool, how many runs it had, and the ratios the issue's targets are
# stated in.
#
#   benches/summarize.sh /var/tmp/kiln-bench/results.tsv [SESSION]
set -euo pipefail
exec python3 - "$@" <<'PY'
import sys, statistics, collections
path = sys.argv[1]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
session = sys.argv[2] if len(sys.argv) > 2 else rows[-1][0]
times, commands = collections.defaultdict(list), {}
for s, phase, tool, secs, cmds in rows:
    if s != session:
        continue
    if secs != "FAIL":
        times[(phase, tool)].append(float(secs))
    else:
        times.setdefault((phase, tool), [])
    if cmds != "-":
        commands[(phase, tool)] = cmds
med = {k: statistics.median(v) for k, v in times.items() if v}
print("| phase | tool | median s | runs | kiln commands |")
print("| --- | --- | ---: | ---: | ---: |")
for (phase, tool), v in sorted(times.items()):
    m = f"{med[(phase, tool)]:.1f}" if v else "FAIL"
    print(f"| {phase} | {tool} | {m} | {len(v)} | {commands.get((phase, tool), '')} |")
def ratio(label, a, b, target=None):
    if a in med and b in med:
        r = med[a] / med[b]
        verdict = "" if target is None else (" (target <= %.2f: %s)" % (target, "met" if r <= target else "NOT met"))
        print(f"- {label}: {r:.2f}{verdict}")
floor = ("floor", "guestfish")
print()
print("Ratios (of medians):")
ratio("first pack, kiln / virt-customize", ("first", "kiln"), ("first", "virt-customize"), 1.0)
ratio("re-pack, kiln / virt-customize", ("repack", "kiln"), ("repack", "virt-customize"), 0.2)
ratio("re-pack, kiln / launch-only floor", ("repack", "kiln"), floor, 1.15)
ratio("re-pack, kiln / launch-only floor with network", ("repack", "kiln"), ("floor", "guestfish-network"))
ratio("test-only, kiln / launch-only floor", ("testonly", "kiln"), floor, 1.10)
ratio("re-pack, kiln / kiln-sh-full (before the session chroot and quick inspection)", ("repack", "kiln"), ("repack", "kiln-sh-full"))
ratio("test-only, kiln / kiln-sh-full", ("testonly", "kiln"), ("testonly", "kiln-sh-full"))
ratio("re-pack, kiln-sh-full / launch-only floor", ("repack", "kiln-sh-full"), floor)
ratio("test-only, kiln-sh-full / launch-only floor", ("testonly", "kiln-sh-full"), floor)
ratio("re-pack --verify, kiln / launch-only floor", ("verify", "kiln"), floor)
ratio("re-pack, virt-customize / launch-only floor", ("repack", "virt-customize"), floor)
ratio("launch-only floor, network / none", ("floor", "guestfish-network"), floor)
PY

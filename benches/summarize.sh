#!/usr/bin/env bash
# Prints the Markdown table of one session of benches/image.sh's results
# (TSV: session, phase, tool, seconds, commands[, CPU seconds]): the median
# of each phase and tool (wall, and the CPU its processes and their qemu
# used, when recorded), how many runs it had, and the ratios the issues'
# targets are stated in.
#
#   benches/summarize.sh /var/tmp/kiln-bench/results.tsv [SESSION]
set -euo pipefail
exec python3 - "$@" <<'PY'
import sys, statistics, collections
path = sys.argv[1]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
session = sys.argv[2] if len(sys.argv) > 2 else rows[-1][0]
times, cpus, commands = collections.defaultdict(list), collections.defaultdict(list), {}
for row in rows:
    s, phase, tool, secs, cmds = row[:5]
    cpu = row[5] if len(row) > 5 else "-"
    if s != session:
        continue
    if cpu != "-":
        cpus[(phase, tool)].append(float(cpu))
    if secs != "FAIL":
        times[(phase, tool)].append(float(secs))
    else:
        times.setdefault((phase, tool), [])
    if cmds != "-":
        commands[(phase, tool)] = cmds
med = {k: statistics.median(v) for k, v in times.items() if v}
cpu_med = {k: statistics.median(v) for k, v in cpus.items() if v}
print("| phase | tool | median s | median CPU s | runs | kiln commands |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for (phase, tool), v in sorted(times.items()):
    m = f"{med[(phase, tool)]:.1f}" if v else "FAIL"
    c = f"{cpu_med[(phase, tool)]:.1f}" if (phase, tool) in cpu_med else ""
    print(f"| {phase} | {tool} | {m} | {c} | {len(v)} | {commands.get((phase, tool), '')} |")
def ratio(label, a, b, target=None):
    if a in med and b in med:
        r = med[a] / med[b]
        verdict = "" if target is None else (" (target <= %.2f: %s)" % (target, "met" if r <= target else "NOT met"))
        cpu = f"; CPU {cpu_med[a] / cpu_med[b]:.2f}" if a in cpu_med and b in cpu_med else ""
        print(f"- {label}: {r:.2f}{verdict}{cpu}")
floor = ("floor", "guestfish")
print()
print("Ratios (of medians):")
ratio("first pack, kiln / virt-customize", ("first", "kiln"), ("first", "virt-customize"), 0.5)
ratio("first pack, kiln / kiln-before", ("first", "kiln"), ("first", "kiln-before"))
ratio("first pack, kiln-before / virt-customize", ("first", "kiln-before"), ("first", "virt-customize"))
ratio("packages.yaml first pack, kiln / virt-customize", ("packages", "kiln"), ("packages", "virt-customize"), 0.5)
ratio("packages.yaml first pack, kiln / kiln-before", ("packages", "kiln"), ("packages", "kiln-before"))
ratio("packages.yaml first pack, kiln-before / virt-customize", ("packages", "kiln-before"), ("packages", "virt-customize"))
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

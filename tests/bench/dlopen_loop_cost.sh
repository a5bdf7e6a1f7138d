#!/usr/bin/env bash
# The recorder's cost on the tiny dlopen loop (issue 16), repeatably: instructions per iteration
# of BUILD_DIR/fixtures/rt_dlopen_loop under callgrind (the difference of two loop lengths, so
# start-up cancels, as run_benchmarks.sh computes it), native and over native with stacks off and
# at the default depth; instructions of /bin/true traced over native; and CPU time of the whole
# 2000-iteration process, traced over native, median and minimum of RUNS interleaved runs, beside
# the preload loaded and recording nothing (the floor).
#
#   tests/bench/dlopen_loop_cost.sh BUILD_DIR [RUNS]
set -euo pipefail
BUILD_DIR=$(cd "${1:?usage: dlopen_loop_cost.sh BUILD_DIR [RUNS]}" && pwd)
RUNS=${2:-9}
PRELOAD=$BUILD_DIR/lib/libdltrace.so
LOOP=$BUILD_DIR/fixtures/rt_dlopen_loop
for f in "$PRELOAD" "$LOOP"; do
  [ -e "$f" ] || { echo "dlopen_loop_cost.sh: missing $f (build first)" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "dlopen_loop_cost.sh: needs valgrind" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dltrace-loop-cost.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
traced=(LD_PRELOAD="$PRELOAD" DLTRACE_OUTPUT="$WORK/" DLTRACE_QUIET=1)

ir() { valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=/dev/null "$@" 2>&1 |
  awk '/Collected/ { n = $4 } END { print n }'; }
per_iteration() {
  local a b
  a=$(ir env "$@" "$LOOP" 50); b=$(ir env "$@" "$LOOP" 250)
  rm -f "$WORK"/*.trace
  echo $(((b - a) / 200))
}
n=$(per_iteration X=1)
off=$(per_iteration "${traced[@]}" DLTRACE_STACK_DEPTH=0)
on=$(per_iteration "${traced[@]}")
nothing=$(per_iteration "${traced[@]}" DLTRACE_ONLY=no-such-program)
printf 'instructions per iteration: native %d, traced stacks off %+d, default stacks %+d, ' \
  "$n" $((off - n)) $((on - n))
printf 'preload recording nothing %+d\n' $((nothing - n))
t0=$(ir env X=1 /bin/true); t1=$(ir env "${traced[@]}" /bin/true)
rm -f "$WORK"/*.trace
printf '/bin/true instructions: native %d, traced %+d\n' "$t0" $((t1 - t0))

# CPU time (user + system, wait4) of the whole 2000-iteration process, the four variants
# interleaved: the median and the minimum of RUNS runs each (the minimum is the run least disturbed
# by the rest of a shared VM; both are ratios over native's).
PYTHONPATH="$(cd "$(dirname "$0")" && pwd)" /usr/bin/python3 - "$RUNS" "$LOOP" "$PRELOAD" "$WORK" <<'EOF'
import os, statistics, sys
import process_start as ps
runs, loop, preload, work = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
base = ps.untraced_env()
traced = ps.traced_env(base, preload, work)
variants = [("native", base), ("stacks off", dict(traced, DLTRACE_STACK_DEPTH="0")),
            ("default stacks", traced), ("preload recording nothing",
                                         dict(traced, DLTRACE_ONLY="no-such-program"))]
cpu = {name: [] for name, _ in variants}
out = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the loop's own output
for _ in range(runs):
    for name, env in variants:
        cpu[name].append(ps.once([loop, "2000"], env)[1])
        ps.clear(work)
n_med, n_min = statistics.median(cpu["native"]), min(cpu["native"])
line = f"CPU time of 2000 iterations, {runs} interleaved runs: native {n_med * 1e3:.1f} ms median"
for name, _ in variants[1:]:
    line += f", {name} {statistics.median(cpu[name]) / n_med:.3f}x ({min(cpu[name]) / n_min:.3f}x min)"
print(line, file=out)
EOF

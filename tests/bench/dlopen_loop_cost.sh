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

. "$(dirname "$0")/callgrind.sh"
n=$(loop_instructions "$LOOP" "$WORK" X=1)
off=$(loop_instructions "$LOOP" "$WORK" "${traced[@]}" DLTRACE_STACK_DEPTH=0)
on=$(loop_instructions "$LOOP" "$WORK" "${traced[@]}")
nothing=$(loop_instructions "$LOOP" "$WORK" "${traced[@]}" DLTRACE_ONLY=no-such-program)
printf 'instructions per iteration: native %d, traced stacks off %+d, default stacks %+d, ' \
  "$n" $((off - n)) $((on - n))
printf 'preload recording nothing %+d\n' $((nothing - n))
t0=$(callgrind_ir env X=1 /bin/true); t1=$(callgrind_ir env "${traced[@]}" /bin/true)
rm -f "$WORK"/*.trace
printf '/bin/true instructions: native %d, traced %+d\n' "$t0" $((t1 - t0))

# CPU time (user + system, wait4) of the whole 2000-iteration process, the four variants
# interleaved: the median and the minimum of RUNS runs each (the minimum is the run least disturbed
# by the rest of a shared VM; both are ratios over native's). With BUILD_DIR/bench's
# libdltrace_ablation.so (preload/bench_ablation.h), the same runs also time the recorder with one
# part of its work left out at a time, and with all of them: what each part costs, and what is
# left without them.
ABLATION=$BUILD_DIR/bench/libdltrace_ablation.so
[ -e "$ABLATION" ] || ABLATION=
PYTHONPATH="$(cd "$(dirname "$0")" && pwd)" /usr/bin/python3 - "$RUNS" "$LOOP" "$PRELOAD" "$WORK" \
  "$ABLATION" <<'EOF'
import os, statistics, sys
import process_start as ps
runs, loop, preload, work, ablation = (int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4],
                                       sys.argv[5])
base = ps.untraced_env()
traced = ps.traced_env(base, preload, work)
variants = [("native", base), ("stacks off", dict(traced, DLTRACE_STACK_DEPTH="0")),
            ("default stacks", traced), ("preload recording nothing",
                                         dict(traced, DLTRACE_ONLY="no-such-program"))]
# DLTRACE_ABLATE bits (bench_ablation.h), stacks off.
parts = [("the vfork check (getpid)", 0x1), ("the object-table look before dlopen", 0x2),
         ("the in-flight mark", 0x4), ("the object-table syncs after start", 0x8),
         ("event commits", 0x10)]
parts.append(("all five", sum(bits for _, bits in parts)))
ablated = []
if ablation:
    ablation_env = dict(ps.traced_env(base, ablation, work), DLTRACE_STACK_DEPTH="0")
    ablated = [("ablation library, whole", dict(ablation_env, DLTRACE_ABLATE="0"))]
    ablated += [("without " + name, dict(ablation_env, DLTRACE_ABLATE=f"{bits:x}"))
                for name, bits in parts]
    variants += ablated
cpu = {name: [] for name, _ in variants}
out = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the loop's own output
for _ in range(runs):
    for name, env in variants:
        cpu[name].append(ps.once([loop, "2000"], env)[1])
        ps.clear(work)
n_med, n_min = statistics.median(cpu["native"]), min(cpu["native"])
line = f"CPU time of 2000 iterations, {runs} interleaved runs: native {n_med * 1e3:.1f} ms median"
for name, _ in variants[1:4]:
    line += f", {name} {statistics.median(cpu[name]) / n_med:.3f}x ({min(cpu[name]) / n_min:.3f}x min)"
print(line, file=out)
if ablated:
    # Paired by round (each round runs every variant once, one after the other): ratios and
    # differences taken within a round, then their median, cancel the VM's slower and faster
    # minutes, which move whole rounds by more than a part costs.
    def paired(fn):
        return statistics.median(fn(r) for r in range(runs))
    def ratio(name):
        return paired(lambda r: cpu[name][r] / cpu["native"][r])
    line = "the same runs, stacks off, libdltrace_ablation.so with parts of recording left out" \
           " (median of per-round ratios over native):"
    for name, _ in ablated:
        line += f"\n  {name:<44} {ratio(name):.3f}x"
    print(line, file=out)
    # What each part costs is the whole minus the run without it, and what is left with all five
    # out is the rest of the recorder (interposing, the call's bookkeeping, object lookups) over
    # the preload recording nothing. A part under ~0.01 is within this VM's round-to-round noise.
    whole = "ablation library, whole"
    cost = {name: paired(lambda r: (cpu[whole][r] - cpu["without " + name][r]) / cpu["native"][r])
            for name, _ in parts}
    rest = paired(lambda r: (cpu["without all five"][r] - cpu["preload recording nothing"][r]) /
                  cpu["native"][r])
    print("each part, the whole minus the run without it (per round, median): " +
          ", ".join(f"{name} {cost[name]:+.3f}" for name, _ in parts[:-1]) +
          f"; all five {cost['all five']:+.3f}; left without them, over recording nothing:"
          f" {rest:+.3f}", file=out)
EOF

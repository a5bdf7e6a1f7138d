#!/usr/bin/env bash
# The recorder's cost on the tiny dlopen loop (issue 16), repeatably: instructions per iteration
# of BUILD_DIR/fixtures/rt_dlopen_loop under callgrind (the difference of two loop lengths, so
# start-up cancels, as run_benchmarks.sh computes it), native and over native with stacks off and
# at the default depth; instructions of /bin/true traced over native; and CPU time (perf's
# task-clock where perf runs, else none) of the whole 2000-iteration process, traced over native,
# median of RUNS interleaved runs, beside the preload loaded and recording nothing (the floor).
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

if perf stat -x, -e task-clock true >/dev/null 2>&1; then
  cpu() { perf stat -x, -e task-clock "$@" 2>&1 >/dev/null | awk -F, '/task-clock/ { print $1 }'; }
  for _ in $(seq "$RUNS"); do
    cpu env X=1 "$LOOP" 2000 >>"$WORK/native"
    cpu env "${traced[@]}" DLTRACE_STACK_DEPTH=0 "$LOOP" 2000 >>"$WORK/off"
    cpu env "${traced[@]}" "$LOOP" 2000 >>"$WORK/on"
    cpu env "${traced[@]}" DLTRACE_ONLY=no-such-program "$LOOP" 2000 >>"$WORK/nothing"
    rm -f "$WORK"/*.trace
  done
  median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
  awk -v n="$(median "$WORK/native")" -v off="$(median "$WORK/off")" -v on="$(median "$WORK/on")" \
    -v nothing="$(median "$WORK/nothing")" -v runs="$RUNS" \
    'BEGIN { printf "CPU time of 2000 iterations, median of %d: native %.1f ms, " \
    "stacks off %.3fx, default stacks %.3fx, preload recording nothing %.3fx\n", \
    runs, n, off / n, on / n, nothing / n }'
fi

#!/usr/bin/env bash
# Every viewer command and export on every crafted trace (make_hostile_traces), each under
# `ulimit -v`, `ulimit -f` and `timeout`: it must finish on its own (no hang on a FIFO, no quadratic work on
# 100,000 nested dlopens, no gigabytes from /dev/zero), never crash, never print a byte of the
# files the trace points at, and never let a control byte of the trace reach text output.
# Usage: run_bounded.sh MAKE_HOSTILE_TRACES DLTRACE WORK_DIR
# Environment: DLTRACE_BOUNDED_MEMORY_KB (default 2 GiB; 0: no limit, for sanitizer builds),
# DLTRACE_BOUNDED_SECONDS (default 120 per command, for a loaded machine), DLTRACE_BOUNDED_OUTPUT_KB (default 256 MiB
# per output file), DLTRACE_NESTED_DEPTH (default 100000).
set -uo pipefail

make_traces=${1:?usage: run_bounded.sh MAKE_HOSTILE_TRACES DLTRACE WORK_DIR}
dltrace=${2:?usage: run_bounded.sh MAKE_HOSTILE_TRACES DLTRACE WORK_DIR}
work=${3:?usage: run_bounded.sh MAKE_HOSTILE_TRACES DLTRACE WORK_DIR}
memory_kb=${DLTRACE_BOUNDED_MEMORY_KB:-2097152}
seconds=${DLTRACE_BOUNDED_SECONDS:-120}
output_kb=${DLTRACE_BOUNDED_OUTPUT_KB:-262144}

rm -rf "$work"
mkdir -p "$work/out"
"$make_traces" "$work" "${DLTRACE_NESTED_DEPTH:-100000}" || { echo "FAIL: cannot write the traces"; exit 1; }

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# run NAME EXPECT_TEXT -- ARGS...: runs dltrace ARGS with stdout to $work/out/NAME.
run() {
  local name=$1 text=$2
  shift 3
  local out="$work/out/$name" start end status
  start=$(date +%s%N)
  (
    [ "$memory_kb" != 0 ] && ulimit -v "$memory_kb"
    ulimit -f "$output_kb"  # output that grows with an attacker-chosen number: SIGXFSZ
    exec timeout -k 5 "$seconds" "$dltrace" "$@" </dev/null >"$out" 2>"$out.err"
  )
  status=$?
  end=$(date +%s%N)
  printf '%-40s exit %3d  %6d ms  %9d bytes\n' "$name" "$status" $(((end - start) / 1000000)) \
    "$(stat -c %s "$out")"
  # 0: fine, 1: problems found or the trace cannot be read; anything else is a crash, a kill
  # (124/137: timeout), or a usage error in this script.
  if [ "$status" -gt 1 ]; then
    fail "$name: exit status $status"
    head -c 2000 "$out.err"
  fi
  if grep -q -a "SECRET-HASH-LINE" "$out" "$out.err" $(ls "$work/out/$name".* 2>/dev/null); then
    fail "$name: printed the content of a file the trace points at"
  fi
  if [ "$text" = text ] && LC_ALL=C grep -q -a -P '[\x00-\x08\x0b-\x1f\x7f]' "$out" "$out.err"; then
    fail "$name: a control byte reached text output"
    LC_ALL=C grep -n -a -P '[\x00-\x08\x0b-\x1f\x7f]' "$out" "$out.err" | head -5 | cat -v
  fi
}

for trace in escape pointing nested; do
  t="$work/$trace.trace"
  run "$trace.show" text -- show "$t"
  run "$trace.show-stacks" text -- show --stacks "$t"
  run "$trace.tree" text -- tree --all "$t"
  run "$trace.explain" text -- explain --probes "$t"
  run "$trace.explain-json" json -- explain --json "$t"
  run "$trace.scopes" text -- scopes "$t"
  run "$trace.stats" text -- stats "$t"
  run "$trace.stats-json" json -- stats --json "$t"
  run "$trace.dot" dot -- dot "$t"
  run "$trace.html" html -- html -o "$work/out/$trace.html.report" "$t"
  for format in json jsonl chrome; do
    run "$trace.export-$format" json -- export --format "$format" "$t"
  done
done
# The trace argument itself names a FIFO, a device, a directory.
run "fifo-argument.show" text -- show "$work/fifo.so"
run "zero-argument.show" text -- show /dev/zero
run "dir-argument.tree" text -- tree "$work/subdir.so"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "every command finished within ${seconds}s and ${memory_kb} KiB on every crafted trace"

# Instruction counts under callgrind, for the bench scripts (sourced by run_benchmarks.sh and
# dlopen_loop_cost.sh): repeatable where this VM's wall times move by ±30%.

# callgrind_ir CMD...: the instructions of one run of CMD (the last process's, when CMD execs).
callgrind_ir() {
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=/dev/null "$@" 2>&1 |
    awk '/Collected/ { n = $4 } END { print n }'
}

# loop_instructions LOOP TRACE_DIR [NAME=VALUE...]: instructions per iteration of the tiny dlopen
# loop LOOP (fixtures/rt_dlopen_loop) with those settings: the difference of a 250- and a
# 50-iteration run, so that start-up and exit cancel. Removes the traces left in TRACE_DIR.
loop_instructions() {
  local loop=$1 dir=$2 a b
  shift 2
  a=$(callgrind_ir env "$@" "$loop" 50)
  b=$(callgrind_ir env "$@" "$loop" 250)
  rm -f "$dir"/*.trace
  echo $(((b - a) / 200))
}

#!/usr/bin/env bash
# Overhead of the dltrace recorder.
#
#   tests/bench/run_benchmarks.sh BUILD_DIR [--smoke] [--runs N]
#
# 1. BUILD_DIR/bench/dl_bench under the preload: native (libc's own dl* through pointers) vs
#    traced (interposed) dlsym with a real handle / RTLD_DEFAULT / RTLD_NEXT, stacks off and at
#    the default depth, and dlopen+dlclose of a small library: a table with the delta per call.
# 2. Whole-process wall time, traced vs untraced, median of N runs each (interleaved):
#    /usr/bin/python3 -c "import json, decimal, ssl, sqlite3, ctypes", -c "import numpy" and a
#    dlopen+dlsym+dlclose loop (at the default stack depth, with stacks off, and loaded recording nothing); and the
#    per-call cost of a dlsym made from Python code (Python stacks).
# 3. Instructions (callgrind, repeatable where wall times on a shared VM are not): per dlsym over
#    1, 50 and 2,000 distinct names (bench/dlsym_names: the difference of two loop lengths, so
#    start-up cancels), per iteration of the tiny dlopen loop, and per process start.
# 4. Process start: /bin/true native, traced, and with the preload loaded but recording nothing
#    (DLTRACE_ONLY names no process: the floor of any LD_PRELOAD recorder), interleaved, median
#    wall and CPU time; the disk an idle process's trace takes; and a shell loop of short
#    processes (sh, true, uname, sed, which), whole, under each.
# Each is compared with the project's targets (issue 16). --smoke (used by ctest) only checks that
# dl_bench runs under the preload, with --benchmark_min_time=0.01.
set -euo pipefail

BUILD_DIR=${1:?usage: run_benchmarks.sh BUILD_DIR [--smoke] [--runs N]}
shift
SMOKE=0
RUNS=15
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --runs) RUNS=$2; shift ;;
    *) echo "run_benchmarks.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)  # process_start.py: the process-start measuring
PRELOAD=$BUILD_DIR/lib/libdltrace.so
BENCH=$BUILD_DIR/bench/dl_bench
LOOP=$BUILD_DIR/fixtures/rt_dlopen_loop
PY=/usr/bin/python3
for f in "$PRELOAD" "$BENCH"; do
  [ -e "$f" ] || { echo "run_benchmarks.sh: missing $f (build first)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dltrace-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/traces"

traced_env=(env LD_PRELOAD="$PRELOAD" DLTRACE_OUTPUT="$WORK/traces/" DLTRACE_QUIET=1)

if [ "$SMOKE" = 1 ]; then
  "${traced_env[@]}" DLTRACE_BUFFER_SIZE=4M "$BENCH" --benchmark_min_time=0.01 \
    --benchmark_format=console
  ntraces=$(find "$WORK/traces" -name '*.trace' | wc -l)
  [ "$ntraces" -ge 1 ] || { echo "run_benchmarks.sh: no trace written under the preload" >&2; exit 1; }
  echo "bench smoke: OK ($ntraces trace file(s))"
  exit 0
fi

echo "== micro-benchmarks: dl_bench under the preload (buffer 256M, ring wraps freely) =="
"${traced_env[@]}" DLTRACE_BUFFER_SIZE=256M "$BENCH" --benchmark_repetitions=5 \
  --benchmark_report_aggregates_only=true --benchmark_out="$WORK/bench.json" \
  --benchmark_out_format=json --benchmark_format=console >"$WORK/bench.txt" 2>&1 || {
  cat "$WORK/bench.txt" >&2
  exit 1
}
grep -i -E 'warning|skipped|error' "$WORK/bench.txt" || true
rm -f "$WORK"/traces/*

"$PY" - "$WORK/bench.json" "$WORK/floor.json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
med = {}
for b in data["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    name = b["run_name"]
    if b.get("error_occurred"):
        med[name] = None
        continue
    scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
    med[name] = b["cpu_time"] * scale  # single-threaded: CPU time is robust to a busy machine
targets = {  # (group, variant) -> max delta in ns
    ("dlsym_handle", "traced_stacks_off"): 50,
    ("dlsym_handle", "traced_stacks_32"): 300,
    ("dlsym_handle_50_names", "traced_stacks_off"): 50,
    ("dlsym_handle_50_names", "traced_stacks_32"): 300,
    ("dlsym_handle_2000_names", "traced_stacks_off"): 50,
    ("dlsym_handle_2000_names", "traced_stacks_32"): 300,
    ("dlsym_default", "traced_stacks_off"): 100,
    ("dlsym_next", "traced_stacks_off"): 100,
    ("dlsym_default_50_names", "traced_stacks_off"): 100,
    ("dlsym_next_50_names", "traced_stacks_off"): 100,
}
groups = []
for name in med:
    g = name.split("/")[0]
    if g not in groups and g != "floor":
        groups.append(g)
print("median CPU time per call")
print(f"{'call':<24}{'variant':<22}{'native ns':>12}{'traced ns':>12}{'delta ns':>12}  target")
for g in groups:
    native = med.get(g + "/native")
    for name, t in med.items():
        grp, _, variant = name.partition("/")
        if grp != g or variant == "native":
            continue
        if native is None or t is None:
            print(f"{g:<24}{variant:<22}{'error':>12}")
            continue
        delta = t - native
        tgt = targets.get((g, variant))
        verdict = "" if tgt is None else (f"<= +{tgt} ns " + ("MET" if delta <= tgt else "MISSED"))
        print(f"{g:<24}{variant:<22}{native:>12.1f}{t:>12.1f}{delta:>+12.1f}  {verdict}")
floor = {name.partition("/")[2]: t for name, t in med.items() if name.startswith("floor/") and t is not None}
if floor:
    print("floor per event (paid whatever else is saved): " +
          ", ".join(f"{k.replace('_', ' ')} {v:.1f} ns" for k, v in floor.items()))
    if "event_write" in floor and "callers_behalf" in floor and "plain_call" in floor:
        behalf = floor["callers_behalf"] - floor["plain_call"]
        print(f"floor of a traced dlsym: through a handle {floor['event_write']:.1f} ns (one event); "
              f"RTLD_DEFAULT / RTLD_NEXT {floor['event_write'] + behalf:.1f} ns (one event, and "
              f"the call made on the caller's behalf: +{behalf:.1f} ns)")
json.dump(floor, open(sys.argv[2], "w"))  # for the tiny dlopen loop's floor below
EOF

echo
echo "== whole process: wall time, median of $RUNS runs each, traced / untraced =="
[ -x "$LOOP" ] || echo "(no $LOOP: dlopen loop skipped)"
PYTHONPATH="$BENCH_DIR" "$PY" - "$RUNS" "$PRELOAD" "$WORK/traces" "$LOOP" "$WORK/floor.json" <<'EOF'
import json, os, statistics, subprocess, sys, time
import process_start as ps
runs, preload, traces, loop = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
floor_per_event = json.load(open(sys.argv[5])) if os.path.exists(sys.argv[5]) else {}
base = ps.untraced_env()
traced = ps.traced_env(base, preload, traces)

def clear():
    ps.clear(traces)

def once(cmd, env):
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return dt

def compare(label, cmd, target, extra_env=None):
    env = dict(traced, **(extra_env or {}))
    once(cmd, base); once(cmd, env); clear()  # warm the page cache
    plain, tr = [], []
    for _ in range(runs):  # interleaved, so drift hits both sides alike
        plain.append(once(cmd, base))
        tr.append(once(cmd, env))
        clear()
    p, t = statistics.median(plain), statistics.median(tr)
    ratio = t / p
    print(f"{label:<44} untraced {p*1e3:8.2f} ms  traced {t*1e3:8.2f} ms  ratio {ratio:5.3f}x"
          f"  target <= {target:.2f}x {'MET' if ratio <= target else 'MISSED'}")
    return p, ratio

compare("python3 -c 'import json, decimal, ssl, sqlite3, ctypes'",
        ["/usr/bin/python3", "-c", "import json, decimal, ssl, sqlite3, ctypes"], 1.03)
if subprocess.run(["/usr/bin/python3", "-c", "import numpy"], capture_output=True).returncode == 0:
    compare("python3 -c 'import numpy'", ["/usr/bin/python3", "-c", "import numpy"], 1.03)
if os.access(loop, os.X_OK):
    compare("rt_dlopen_loop 2000 (dlopen+dlsym+dlclose)", [loop, "2000"], 1.05)
    compare("  the same, native stacks off", [loop, "2000"], 1.05, {"DLTRACE_STACK_DEPTH": "0"})
    # The floor of any LD_PRELOAD recorder here: the interposers and the caller trampoline, no record.
    native_loop, nothing = compare("  the same, preload loaded, recording nothing", [loop, "2000"],
                                   1.05, {"DLTRACE_ONLY": "no-such-program"})
    # What recording this loop cannot avoid on top of that (dl_bench's floors, this run): three
    # events written, and a look at the loader's list under its lock after the dlopen and after
    # the dlclose.
    if "event_write" in floor_per_event and "loader_walk" in floor_per_event:
        must = 3 * floor_per_event["event_write"] + 2 * floor_per_event["loader_walk"]
        per_iteration = native_loop / 2000 * 1e9
        print(f"  floor: recording nothing {nothing:.3f}x + 3 event writes and 2 loader walks "
              f"({must:.0f} ns of {per_iteration:.0f} ns per iteration) = "
              f"{nothing + must / per_iteration:.3f}x")

# Python stack capture: dlsym made from Python code (ctypes' CDLL[name] looks the name up each
# time), timed inside the process; native stacks off, so the traced delta is the recorder plus
# the Python stack. Compare with dl_bench's "stacks off" dlsym delta for the Python part alone.
N = 200000
code = ("import ctypes, time\n"
        "lib = ctypes.CDLL('libm.so.6')\n"
        "for _ in range(1000): lib['cos']\n"
        "t = time.perf_counter()\n"
        f"for _ in range({N}): lib['cos']\n"
        f"print((time.perf_counter() - t) / {N} * 1e9)\n")
def per_call(env):
    out = subprocess.run(["/usr/bin/python3", "-c", code], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"python dlsym loop failed: {out.stderr}")
    clear()
    return float(out.stdout)
plain = statistics.median(per_call(base) for _ in range(5))
py_traced = statistics.median(per_call(dict(traced, DLTRACE_STACK_DEPTH="0", DLTRACE_BUFFER_SIZE="256M")) for _ in range(5))
print(f"{'python ctypes lib[name] (one dlsym each)':<44} untraced {plain:8.0f} ns  traced {py_traced:8.0f} ns"
      f"  delta {py_traced - plain:6.0f} ns per call (recorder + Python stack, native stacks off)")
EOF

echo
echo "== instructions (callgrind): traced minus native, per call / per iteration / per process =="
NAMES=$BUILD_DIR/bench/dlsym_names
if ! command -v valgrind >/dev/null; then
  echo "(no valgrind: instruction counts skipped)"
else
  . "$BENCH_DIR/callgrind.sh"
  per_call() {  # VARIANT(native|off|32) HANDLE K: instructions per dlsym (two loop lengths)
    local mode=traced depth=$1
    [ "$1" = native ] && { mode=native; depth=0; }
    [ "$1" = off ] && depth=0
    local a b
    # Once without valgrind first: every lookup must succeed (valgrind hides some crashes).
    env LD_PRELOAD="$PRELOAD" DLTRACE_OUTPUT="$WORK/traces/" DLTRACE_QUIET=1 \
      DLTRACE_STACK_DEPTH=$depth "$NAMES" $mode "$2" "$3" 2000 ||
      { echo "run_benchmarks.sh: dlsym_names $mode $2 $3 failed" >&2; exit 1; }
    a=$(callgrind_ir env LD_PRELOAD="$PRELOAD" DLTRACE_OUTPUT="$WORK/traces/" DLTRACE_QUIET=1 \
      DLTRACE_BUFFER_SIZE=64M DLTRACE_STACK_DEPTH=$depth "$NAMES" $mode "$2" "$3" 2000)
    b=$(callgrind_ir env LD_PRELOAD="$PRELOAD" DLTRACE_OUTPUT="$WORK/traces/" DLTRACE_QUIET=1 \
      DLTRACE_BUFFER_SIZE=64M DLTRACE_STACK_DEPTH=$depth "$NAMES" $mode "$2" "$3" 12000)
    rm -f "$WORK"/traces/*
    echo $(((b - a) / 10000))
  }
  printf '%-38s %10s %12s %12s\n' "instructions per call" native "stacks off" "32 frames"
  for c in "lib 1" "lib 50" "lib 2000" "default 50" "next 50"; do
    set -- $c
    n=$(per_call native "$1" "$2"); o=$(per_call off "$1" "$2"); t=$(per_call 32 "$1" "$2")
    printf '%-38s %10d %+12d %+12d\n' "dlsym $1, $2 distinct name(s)" "$n" $((o - n)) $((t - n))
  done
  if [ -x "$LOOP" ]; then
    n=$(loop_instructions "$LOOP" "$WORK/traces" X=1)
    o=$(loop_instructions "$LOOP" "$WORK/traces" LD_PRELOAD="$PRELOAD" \
      DLTRACE_OUTPUT="$WORK/traces/" DLTRACE_QUIET=1 DLTRACE_STACK_DEPTH=0)
    t=$(loop_instructions "$LOOP" "$WORK/traces" LD_PRELOAD="$PRELOAD" \
      DLTRACE_OUTPUT="$WORK/traces/" DLTRACE_QUIET=1)
    printf '%-38s %10d %+12d %+12d\n' "dlopen+dlsym+dlclose, tiny library" "$n" $((o - n)) $((t - n))
  fi
  n=$(callgrind_ir env X=1 /bin/true)
  f=$(callgrind_ir env LD_PRELOAD="$PRELOAD" DLTRACE_ONLY=no-such-program /bin/true)
  t=$(callgrind_ir env LD_PRELOAD="$PRELOAD" DLTRACE_OUTPUT="$WORK/traces/" DLTRACE_QUIET=1 /bin/true)
  rm -f "$WORK"/traces/*
  printf '%-38s %10d %+12d (preload loaded, recording nothing: %+d; user space only)\n' \
    "/bin/true, the whole process" "$n" $((t - n)) $((f - n))
fi

echo
echo "== process start: /bin/true and a shell loop of short processes, interleaved medians =="
PYTHONPATH="$BENCH_DIR" "$PY" - "$RUNS" "$PRELOAD" "$WORK/traces" "$BUILD_DIR/bench/create_one_file" <<'EOF'
import os, sys
import process_start as ps
runs, preload, traces, create_one_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
base = ps.untraced_env()
traced = ps.traced_env(base, preload, traces)
# The floor of any LD_PRELOAD recorder: the library mapped, relocated and its constructor run,
# recording nothing (DLTRACE_ONLY matches no process).
floor = dict(traced, DLTRACE_ONLY="no-such-program")
variants = [("native", base), ("preload, records nothing", floor), ("traced", traced)]
# The file system's share, whatever records: a small program that creates one file in the
# traces' directory, against the same program creating none (no preload either way).
file_variants = [("create_one_file, no file", base, [create_one_file]),
                 ("create_one_file, one file", base, [create_one_file, traces])]

def clear(*_):
    ps.clear(traces)

def trace_sizes():
    apparent = used = 0
    for f in os.listdir(traces):
        st = os.stat(os.path.join(traces, f))
        apparent += st.st_size
        used += st.st_blocks * 512
    return apparent, used

# /bin/true: rounds of 50 processes per variant, interleaved; the median of the round medians.
med = ps.true_medians(variants + file_variants, runs, clear)
nat_w, nat_c = med["native"]
for name, _ in variants:
    w, c = med[name]
    verdict = ""
    if name == "traced":
        verdict = f"  target <= +0.30 ms {'MET' if w - nat_w <= 0.3e-3 else 'MISSED'}"
    print(f"/bin/true, {name:<26} wall {w*1e3:6.3f} ms ({(w-nat_w)*1e3:+6.3f})"
          f"  CPU {c*1e3:6.3f} ms ({(c-nat_c)*1e3:+6.3f}){verdict}")
preload_w = med["preload, records nothing"][0] - nat_w
file_w = med["create_one_file, one file"][0] - med["create_one_file, no file"][0]
print(f"  floor: the preload recording nothing {preload_w*1e3:+6.3f} ms, and creating a file there "
      f"{file_w*1e3:+6.3f} ms (create_one_file with and without one) = "
      f"{(preload_w + file_w)*1e3:+6.3f} ms; the recorder's own start-up: "
      f"{(med['traced'][0] - nat_w - preload_w - file_w)*1e3:+6.3f} ms")
ps.once(ps.TRUE, traced)
apparent, used = trace_sizes()
clear()
print(f"trace of a process that makes no dl* call: {apparent} bytes (ls -l), {used // 1024} KiB on disk"
      f"  target <= 64 KiB on disk {'MET' if used <= 64 * 1024 else 'MISSED'}")

# A shell loop of short processes, as a build or a test suite's wrapper script runs them.
only = dict(traced, DLTRACE_ONLY="python3*")  # dltrace run --only 'python3*': none of these
loop_variants = [("native", base), ("traced, --only 'python3*'", only), ("traced", traced)]
files = {}
def count_and_clear(name):
    files[name] = (len(os.listdir(traces)),) + trace_sizes()
    clear()
res = ps.shell_loop_medians(loop_variants, max(3, runs // 3), count_and_clear)
nat = res["native"]
for name, _ in loop_variants:
    m = res[name]
    n, apparent, used = files[name]
    print(f"shell loop of ~240 processes, {name:<26} {m*1e3:7.1f} ms  {m/nat:5.2f}x"
          f"  {n} traces, {apparent / 2**20:.1f} MiB (ls -l), {used / 2**20:.1f} MiB on disk")
EOF

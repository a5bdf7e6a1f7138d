#!/usr/bin/env bash
# Builds the trace reader fuzzer with clang (libFuzzer + ASan + UBSan) straight from the sources,
# seeds a corpus with real traces from the writer, and fuzzes for a bounded time.
# Usage: run_fuzz.sh SOURCE_DIR WORK_DIR [SECONDS]
# Exit 77 (ctest: skipped) only if clang++ is missing.
set -euo pipefail

src=${1:?usage: run_fuzz.sh SOURCE_DIR WORK_DIR [SECONDS]}
work=${2:?usage: run_fuzz.sh SOURCE_DIR WORK_DIR [SECONDS]}
seconds=${3:-30}

fuzz_name=fuzz_trace_reader
source "$(dirname "$0")/find_clang.sh"

mkdir -p "$work"
corpus="$work/corpus"
seeds="$work/seeds"
rm -rf "$seeds"
mkdir -p "$corpus" "$seeds"

common=(-std=c++20 -g -I"$src/include" -I"$src" -I"$src/preload")

# The writer stamps the build's version (common/version.h), generated in the build tree: the seed
# maker gets its own.
cat >"$work/version.cpp" <<'CPP'
#include "common/version.h"
namespace dltrace {
const char kBuildVersion[] = "0.0.0";
const char kBuildCommit[] = "";
const char kBuildVersionTag[] = "0.0.0+fuzz-seed";
}  // namespace dltrace
CPP

echo "fuzz_trace_reader: building with $clang"
"$clang" "${common[@]}" -O1 -o "$work/make_seed_traces" \
  "$src/tests/fuzz/make_seed_traces.cpp" "$src/preload/trace_writer.cpp" "$src/preload/stderr_line.cpp" \
  "$src/preload/run_report.cpp" "$src/preload/self_exe.cpp" "$work/version.cpp"
"$clang" "${common[@]}" -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -o "$work/trace_reader_fuzz" \
  "$src/tests/fuzz/trace_reader_fuzz.cpp" "$src/viewer/reader/trace_reader.cpp" \
  "$src/viewer/reader/trace_extents.cpp"

# Seeds: complete traces, plus truncated copies (a crashed or copied-too-early trace).
"$work/make_seed_traces" "$seeds"
for f in "$seeds"/*.trace; do
  for n in 4096 8192 20000 70000; do head -c "$n" "$f" > "$f.head$n"; done
done
cp "$seeds"/* "$corpus"/

echo "fuzz_trace_reader: fuzzing for ${seconds}s"
"$work/trace_reader_fuzz" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
  -max_len=300000 -print_final_stats=1 -artifact_prefix="$work/" "$corpus"

#!/usr/bin/env bash
# Builds the config parser + glob fuzzer with clang (libFuzzer + ASan + UBSan) straight from the
# sources, exactly as libdltrace_config.so compiles config.cpp, and fuzzes for a bounded time from
# the seed corpus kept in tests/fuzz/config_corpus (configs toml++ once asserted or reached UB on).
# Usage: run_config_fuzz.sh SOURCE_DIR WORK_DIR [SECONDS]
# Exit 77 (ctest: skipped) only if clang++ is missing.
set -euo pipefail

src=${1:?usage: run_config_fuzz.sh SOURCE_DIR WORK_DIR [SECONDS]}
work=${2:?usage: run_config_fuzz.sh SOURCE_DIR WORK_DIR [SECONDS]}
seconds=${3:-30}

fuzz_name=fuzz_config
source "$(dirname "$0")/find_clang.sh"

mkdir -p "$work/corpus"
echo "fuzz_config: building with $clang"
# -fexceptions and the toml++ settings as in common/CMakeLists.txt; no NDEBUG, so any toml++
# assertion config.cpp failed to disable would abort the run.
"$clang" -std=c++20 -g -O1 -fexceptions -DTOML_EXCEPTIONS=0 -DTOML_HEADER_ONLY=1 \
  -I"$src/include" -I"$src" -I"$src/preload" \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -o "$work/config_fuzz" "$src/tests/fuzz/config_fuzz.cpp" "$src/common/config.cpp" \
  "$src/common/glob.cpp" "$src/common/config_error.cpp"

# Replay every seed first (a regression on any of them fails here), then fuzz.
"$work/config_fuzz" -runs=0 -artifact_prefix="$work/" "$src/tests/fuzz/config_corpus"
echo "fuzz_config: fuzzing for ${seconds}s"
"$work/config_fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -dict="$src/tests/fuzz/config.dict" -print_final_stats=1 -artifact_prefix="$work/" \
  "$work/corpus" "$src/tests/fuzz/config_corpus"

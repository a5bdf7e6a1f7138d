#!/usr/bin/env bash
# Builds the viewer fuzzers with clang (libFuzzer + ASan + UBSan) straight from the sources, the
# viewer's files as viewer/CMakeLists.txt lists them, replays the corpus kept in the repository,
# then fuzzes each for a bounded time:
#   viewer_fuzz  recipes -> traces (TraceWriter) -> model, scopes, explain, tree, show, stats,
#                html, dot, exports (tests/fuzz/viewer_corpus)
#   elf_fuzz     any bytes as the file an object's path names -> ELF reading, file kind,
#                symbolizer (tests/fuzz/elf_corpus)
# Usage: run_viewer_fuzz.sh SOURCE_DIR WORK_DIR [SECONDS_EACH]
# Exit 77 (ctest: skipped) only if clang++ is missing.
set -euo pipefail

src=${1:?usage: run_viewer_fuzz.sh SOURCE_DIR WORK_DIR [SECONDS_EACH]}
work=${2:?usage: run_viewer_fuzz.sh SOURCE_DIR WORK_DIR [SECONDS_EACH]}
seconds=${3:-30}

fuzz_name=fuzz_viewer
source "$(dirname "$0")/find_clang.sh"
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(ccache); fi

mkdir -p "$work/obj" "$work/viewer_corpus" "$work/elf_corpus"
arch=$(uname -m)
[ "$arch" = aarch64 ] || arch=x86_64
viewer_sources=$(sed -n '/^add_library(dltrace_viewer_lib STATIC/,/^)/p' "$src/viewer/CMakeLists.txt" |
  grep -o '[a-z_/]*\.cpp' | sed "s|^|$src/viewer/|")
# The build's version (common/version.h) is generated in the build tree: the fuzz build gets its
# own definition.
cat >"$work/version.cpp" <<'CPP'
#include "common/version.h"
namespace dltrace {
const char kBuildVersion[] = "0.0.0";
const char kBuildCommit[] = "";
const char kBuildVersionTag[] = "0.0.0+fuzz";
}  // namespace dltrace
CPP
sources=($viewer_sources "$src/viewer/reader/trace_reader.cpp" "$src/viewer/reader/trace_extents.cpp"
  "$work/version.cpp"
  "$src/common/library_search.cpp" "$src/common/loader_platform.cpp" "$src/common/hwcaps.cpp"
  "$src/common/arch/$arch/hwcaps.cpp" "$src/common/config.cpp" "$src/common/glob.cpp"
  "$src/common/config_error.cpp"
  "$src/preload/trace_writer.cpp" "$src/preload/stderr_line.cpp" "$src/preload/run_report.cpp"
  "$src/preload/self_exe.cpp")
flags=(-std=c++20 -g -O1 -DTOML_EXCEPTIONS=0 -DTOML_HEADER_ONLY=1 -I"$src/include" -I"$src"
  -I"$src/viewer" -I"$src/preload" -I"$src/preload/arch/$arch" $(pkg-config --cflags libdw libgvc)
  -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined)
absl=(absl_status absl_statusor absl_strings absl_flat_hash_map absl_node_hash_map
  absl_flat_hash_set absl_str_format)
libs=($(pkg-config --libs fmt libdw libgvc libcgraph "${absl[@]}") -lpthread)

echo "fuzz_viewer: building with $clang (${#sources[@]} files)"
objects=()
for s in "${sources[@]}"; do objects+=("$work/obj/$(echo "${s#$src/}" | tr / _).o"); done
rm -f "$work/obj/FAILED"
for i in "${!sources[@]}"; do
  ("${launcher[@]}" "$clang" "${flags[@]}" -c "${sources[$i]}" -o "${objects[$i]}" ||
    touch "$work/obj/FAILED") &
  while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do sleep 0.2; done
done
wait
if [ -e "$work/obj/FAILED" ]; then
  echo "fuzz_viewer: build failed"
  exit 1
fi
for target in viewer_fuzz elf_fuzz; do
  "${launcher[@]}" "$clang" "${flags[@]}" -c "$src/tests/fuzz/$target.cpp" -o "$work/obj/$target.o"
  "$clang" -fsanitize=fuzzer,address,undefined -o "$work/$target" "$work/obj/$target.o" \
    "${objects[@]}" "${libs[@]}"
done

export ASAN_OPTIONS=detect_leaks=0  # caches held until exit are not leaks worth failing on
for target in viewer elf; do
  corpus="$src/tests/fuzz/${target}_corpus"
  # Replay every seed first (a regression on any of them fails here), then fuzz.
  "$work/${target}_fuzz" -runs=0 -timeout=20 -rss_limit_mb=2048 -artifact_prefix="$work/" "$corpus"
  echo "fuzz_viewer: fuzzing ${target}_fuzz for ${seconds}s"
  "$work/${target}_fuzz" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
    -max_len=8192 -print_final_stats=1 -artifact_prefix="$work/" "$work/${target}_corpus" "$corpus"
done

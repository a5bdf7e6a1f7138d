# Sourced by the fuzz scripts: sets $clang to the first clang++ found, or exits 77 (ctest:
# skipped) naming $fuzz_name, because libFuzzer needs clang.
clang=""
for c in clang++ clang++-19 clang++-18 clang++-17 clang++-16 clang++-15 clang++-14; do
  if command -v "$c" >/dev/null 2>&1; then clang=$(command -v "$c"); break; fi
done
if [ -z "$clang" ]; then
  echo "$fuzz_name: SKIPPED: clang++ not found (libFuzzer needs clang)"
  exit 77
fi

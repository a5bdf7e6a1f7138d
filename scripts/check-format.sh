#!/usr/bin/env bash
# Fails when a C/C++ source of the tree does not match .clang-format (clang-format 14, Debian 12).
# Run by ctest (test "clang_format"); fix with: scripts/check-format.sh --fix
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(find common include preload viewer tests examples \
  \( -name '*.h' -o -name '*.cpp' -o -name '*.c' \) -not -path '*/config_corpus/*' | sort)
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
clang-format --dry-run -Werror "${files[@]}"
echo "check-format: ${#files[@]} files match .clang-format"

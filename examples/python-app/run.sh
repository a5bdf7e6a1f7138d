#!/bin/sh
# Records app.py with dltrace and shows where its native load time went:
#
#   examples/python-app/run.sh [BUILD_DIR]     (default: ../../build, relative to this script)
#
# Builds nothing: BUILD_DIR must hold a built dltrace (cmake -S . -B build && cmake --build build).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../build}" && pwd)
dltrace=$build/bin/dltrace
python=/usr/bin/python3  # Debian's interpreter (python3-numpy is found by it)
for f in "$dltrace" "$build/lib/libdltrace.so" "$python"; do
  [ -x "$f" ] || [ -f "$f" ] || { echo "run.sh: missing $f (build first?)" >&2; exit 1; }
done

out=$(mktemp -d "${TMPDIR:-/tmp}/python-app.XXXXXX")
trap 'rm -rf "$out"' EXIT

echo "\$ dltrace run -o $out/ -- $python app.py"
"$dltrace" run -o "$out/" -- "$python" "$here/app.py"

echo; echo "\$ dltrace tree $out/"
"$dltrace" tree "$out/"

# The main process's trace: the smallest pid (dltrace.EXE.PID.trace).
main=$(for t in "$out"/*.trace; do p=${t%.trace}; echo "${p##*.} $t"; done | sort -n | head -n 1 | cut -d' ' -f2-)
echo; echo "\$ dltrace stats $main --top 5"
"$dltrace" stats "$main" --top 5

#!/bin/sh
# Records app.py with dltrace and shows where its native load time went:
#
#   examples/python-app/run.sh [BUILD_DIR]     (default: ../../build, relative to this script)
#
# Builds nothing: BUILD_DIR must hold a built dltrace (cmake -S . -B build && cmake --build build).
# Exits 77 (skipped, for ctest) without /usr/bin/python3, and non-zero if the tree does not
# attribute the loads to app.py's statements or misses the worker process.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$here/../../build}" && pwd)
dltrace=$build/bin/dltrace
python=/usr/bin/python3  # Debian's interpreter (python3-numpy is found by it)
[ -x "$python" ] || { echo "run.sh: no $python: skipped" >&2; exit 77; }
for f in "$dltrace" "$build/lib/libdltrace.so"; do
  [ -f "$f" ] || { echo "run.sh: missing $f (build first?)" >&2; exit 1; }
done

out=$(mktemp -d "${TMPDIR:-/tmp}/python-app.XXXXXX")
trap 'rm -rf "$out"' EXIT

echo "\$ dltrace run -o $out/ -- $python app.py"
"$dltrace" run -o "$out/" -- "$python" "$here/app.py"

echo; echo "\$ dltrace tree $out/"
"$dltrace" tree "$out/" > "$out/tree.txt"
cat "$out/tree.txt"

# The main process's trace: the smallest pid (dltrace.EXE.PID.trace).
main=$(for t in "$out"/*.trace; do p=${t%.trace}; echo "${p##*.} $t"; done | sort -n | head -n 1 | cut -d' ' -f2-)
echo; echo "\$ dltrace stats $main --top 5"
"$dltrace" stats "$main" --top 5

# What this example is about: loads under app.py's statements, and the worker's own tree.
grep -q "python $here/app.py:[0-9]*: import json" "$out/tree.txt" || { echo "run.sh: no 'import json' statement in the tree" >&2; exit 1; }
grep -q "_sqlite3" "$out/tree.txt" || { echo "run.sh: the worker's _sqlite3 load is not in the tree" >&2; exit 1; }
[ "$(grep -c "pid [0-9]" "$out/tree.txt")" -ge 2 ] || { echo "run.sh: fewer than 2 processes in the tree" >&2; exit 1; }

#!/usr/bin/env bash
# The dltrace demo (run by `scripts/dev.sh demo`): records two programs and looks at the traces.
#
#   examples/demo.sh BUILD_DIR
#
# 1. A plugin host (BUILD_DIR/fixtures/rt_local_plugin) opens a plugin RTLD_LOCAL, finds a
#    function through the handle, then fails to find the same function through RTLD_DEFAULT:
#    a local object is not in the global scope. dltrace shows both lookups and the exact error.
# 2. Python importing ctypes and loading libm: the extension modules and libraries it dlopens.
# Builds nothing; fails loudly if anything is missing or any step fails.
set -euo pipefail

BUILD_DIR=${1:?usage: examples/demo.sh BUILD_DIR}
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
DLTRACE=$BUILD_DIR/bin/dltrace
HOST=$BUILD_DIR/fixtures/rt_local_plugin
for f in "$DLTRACE" "$BUILD_DIR/lib/libdltrace.so" "$HOST"; do
  [ -e "$f" ] || { echo "demo: missing $f — build first (cmake --build $BUILD_DIR)" >&2; exit 1; }
done

OUT=$(mktemp -d "${TMPDIR:-/tmp}/dltrace-demo.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$'; printf ' %q' "$@"; printf '\n'; "$@"; }

step "1. A plugin host: the plugin is RTLD_LOCAL, so RTLD_DEFAULT cannot see its symbols"
show "$DLTRACE" run -o "$OUT/plugin.trace" -- "$HOST"
[ -s "$OUT/plugin.trace" ] || { echo "demo: no trace written" >&2; exit 1; }

step "The event log"
show "$DLTRACE" show "$OUT/plugin.trace"

# Later subcommands, shown when this build has them.
has() { "$DLTRACE" --help 2>/dev/null | grep -q "^  $1 "; }
if has explain; then
  step "Why the RTLD_DEFAULT lookup failed (explain exits 1: it found a problem)"
  status=0
  show "$DLTRACE" explain "$OUT/plugin.trace" || status=$?
  [ "$status" = 1 ] || { echo "demo: explain should have found the failed lookup (exit $status)" >&2; exit 1; }
fi
if has tree; then
  step "Load order"
  show "$DLTRACE" tree "$OUT/plugin.trace"
fi

step "Machine-readable: JSON export (first lines)"
printf '$ %s | python3 -m json.tool | head -n 60\n' "$DLTRACE export --format json $OUT/plugin.trace"
"$DLTRACE" export --format json "$OUT/plugin.trace" >"$OUT/plugin.json"
python3 -m json.tool "$OUT/plugin.json" >"$OUT/plugin.pretty.json"
head -n 30 "$OUT/plugin.pretty.json"
echo "  ... ($(wc -l <"$OUT/plugin.pretty.json") lines in all)"

step "The failed lookup, from the JSON export"
python3 - "$OUT/plugin.json" <<'PY'
import json, sys
trace = json.load(open(sys.argv[1]))
failed = [e for e in trace["events"] if not e["ok"]]
assert failed, "expected a failed dlsym in the trace"
keep = ("seq", "call", "handle", "symbol", "ok", "error", "caller")
for e in failed:
    print(json.dumps({k: e.get(k) for k in keep}, indent=2))
PY

step "2. Python: import json and ctypes, load libm"
show "$DLTRACE" run -o "$OUT/python.trace" -- /usr/bin/python3 -c \
  "import json, ctypes; m = ctypes.CDLL('libm.so.6'); m.cos.restype = ctypes.c_double; m.cos.argtypes = [ctypes.c_double]; print('cos(0) =', m.cos(0.0))"
show "$DLTRACE" show "$OUT/python.trace"

printf '\ndemo: OK (traces were in %s, removed on exit)\n' "$OUT"

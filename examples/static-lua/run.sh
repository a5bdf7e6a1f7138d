#!/usr/bin/env bash
# A program that links Lua statically cannot load Lua C modules unless it exports the Lua API:
# the failure, dltrace's diagnosis and the fix. One command:
#
#   examples/static-lua/run.sh [BUILD_DIR]    (default: the repository's build/)
#
# BUILD_DIR must hold a built dltrace (bin/dltrace, lib/libdltrace.so). The example's own
# programs are compiled here with cc into BUILD_DIR/examples/static-lua, where they stay (with the
# traces) after the run. Needs liblua5.4.a and the Lua 5.4 headers (Debian: liblua5.4-dev).
# Exits non-zero if the failure does not reproduce or the fix does not work; 77 (skipped) without
# the Lua development files.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
[ -d "$build" ] || { echo "run.sh: no build directory $build (build dltrace first)" >&2; exit 1; }
build=$(cd "$build" && pwd)
for f in "$build/bin/dltrace" "$build/lib/libdltrace.so"; do
  [ -f "$f" ] || { echo "run.sh: missing $f (cmake --build $build --target dltrace dltrace_preload)" >&2; exit 1; }
done
lua_a=$(cc -print-file-name=liblua5.4.a)
[ -f "$lua_a" ] || { echo "run.sh: skipped: cc cannot find liblua5.4.a (install liblua5.4-dev)" >&2; exit 77; }
lua_a=$(realpath "$lua_a")
lua_inc=/usr/include/lua5.4
[ -f "$lua_inc/lua.h" ] || { echo "run.sh: skipped: no $lua_inc/lua.h (install liblua5.4-dev)" >&2; exit 77; }
export PATH=$build/bin:$PATH   # so the commands below read `dltrace ...`
export NO_COLOR=1

work=$build/examples/static-lua
rm -rf "$work"
mkdir -p "$work"
cp "$here/host.c" "$here/luamod.c" "$here/script.lua" "$work/"
cd "$work"

step() { printf '\n== %s\n' "$*"; }
fail() { echo "example: FAILED: $*" >&2; exit 1; }
# show CMD ARGS...: prints "$ CMD ARGS" and runs it, stderr into stdout; the output is also kept
# in $log, the exit status in $status (never stops the script).
log=$work/last.out
show() {
  local line='$' a
  for a in "$@"; do
    if [[ $a =~ ^[][A-Za-z0-9_./=:,+@%-]+$ ]]; then line+=" $a"; else line+=" '$a'"; fi
  done
  printf '%s\n' "$line"
  status=0
  "$@" >"$log" 2>&1 || status=$?
  cat "$log"
}
# show_sh 'PIPELINE': the same for a shell pipeline.
show_sh() {
  printf '$ %s\n' "$1"
  status=0
  bash -c "set -o pipefail; $1" >"$log" 2>&1 || status=$?
  cat "$log"
}
expect_status() { [ "$status" = "$1" ] || fail "expected exit status $1, got $status: $2"; }
expect_output() { grep -qF -- "$1" "$log" || fail "the output above does not contain '$1'"; }
expect_no_output() { ! grep -qF -- "$1" "$log" || fail "the output above contains '$1'"; }

step "Build: the host links liblua5.4.a statically (no --export-dynamic); the module does not link liblua"
show cc -Wall -O2 -I$lua_inc -o host host.c $lua_a -lm -ldl
expect_status 0 "building host"
show cc -Wall -O2 -fPIC -shared -I$lua_inc -o luamod.so luamod.c
expect_status 0 "building luamod.so"

step "The Lua API is in the host's symbol table (.symtab), but not in its dynamic symbol table"
show_sh "nm host | grep -E ' T (luaL_checkversion_|lua_createtable|lua_pushinteger)\$'"
expect_output "T luaL_checkversion_"
show nm -D --defined-only host
expect_no_output "lua"

step "The failure: require \"luamod\" dlopens luamod.so, whose lua_* references find nothing"
show ./host script.lua
expect_status 1 "host should fail"
expect_output "undefined symbol: lua"

step "Record it"
show dltrace run -o host.trace -- ./host script.lua
expect_status 1 "host under dltrace should fail the same way"
expect_output "undefined symbol: lua"
[ -s host.trace ] || fail "no trace written"

step "Why it failed (explain exits 1 when it finds problems)"
show dltrace explain host.trace
expect_status 1 "explain should report the failed load"
expect_output "undefined symbol: lua"
expect_output "--export-dynamic"
expect_output "--dynamic-list"

step "The fix: link the host with -Wl,--export-dynamic"
show cc -Wall -O2 -I$lua_inc -Wl,--export-dynamic -o host-exported host.c $lua_a -lm -ldl
expect_status 0 "building host-exported"
show_sh "nm -D --defined-only host-exported | grep -E ' T (luaL_checkversion_|lua_createtable|lua_pushinteger)\$'"
expect_status 0 "host-exported should export the Lua API"
show dltrace run -o fixed.trace -- ./host-exported script.lua
expect_status 0 "host-exported should load the module"
expect_output "luamod.add(2, 3) = 5"
show dltrace explain fixed.trace
expect_status 0 "explain should find no problem in fixed.trace"

printf '\nexample: OK (files in %s)\n' "$work"

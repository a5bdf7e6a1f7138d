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
# shellcheck source=../example.sh
. "$here/../example.sh"
example_build "${1:-}"
lua_a=$(cc -print-file-name=liblua5.4.a)
[ -f "$lua_a" ] || { echo "run.sh: skipped: cc cannot find liblua5.4.a (install liblua5.4-dev)" >&2; exit 77; }
lua_a=$(realpath "$lua_a")
lua_inc=/usr/include/lua5.4
[ -f "$lua_inc/lua.h" ] || { echo "run.sh: skipped: no $lua_inc/lua.h (install liblua5.4-dev)" >&2; exit 77; }
example_workdir static-lua host.c luamod.c script.lua

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

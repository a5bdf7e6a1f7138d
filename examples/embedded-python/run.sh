#!/usr/bin/env bash
# The RTLD_LOCAL failure of an application plugin that embeds Python, diagnosed and fixed with
# dltrace. One command:
#
#   examples/embedded-python/run.sh [BUILD_DIR]    (default: the repository's build/)
#
# BUILD_DIR must hold a built dltrace (bin/dltrace, lib/libdltrace.so). The example's own
# programs are compiled here with cc into BUILD_DIR/examples/embedded-python, where they stay
# (with the traces) after the run. Needs the Python embedding files (Debian: python3-dev).
# Exits non-zero if the failure does not reproduce or the fix does not work; 77 (skipped) without
# the Python embedding files.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../example.sh
. "$here/../example.sh"
example_build "${1:-}"
pkg-config --exists python3-embed || { echo "run.sh: skipped: pkg-config cannot find python3-embed (install python3-dev)" >&2; exit 77; }
example_workdir embedded-python host.c embed.c dltrace.toml

step "Build: the plugin links libpython, the host does not"
show pkg-config --cflags --libs python3-embed
show cc -Wall -O2 -fPIC -shared $(pkg-config --cflags python3-embed) -o libembed.so embed.c $(pkg-config --libs python3-embed)
expect_status 0 "building libembed.so"
show cc -Wall -O2 -o host host.c -ldl
expect_status 0 "building host"

step "The failure: host dlopens ./libembed.so with RTLD_NOW|RTLD_LOCAL, Python's extension modules cannot see libpython"
show ./host
expect_status 1 "host should fail"
expect_output "undefined symbol: Py"

step "Record it"
show dltrace run -o host.trace -- ./host
expect_status 1 "host under dltrace should fail the same way"
expect_output "undefined symbol: Py"
[ -s host.trace ] || fail "no trace written"

step "Why it failed (explain exits 1 when it finds problems)"
show dltrace explain host.trace
expect_status 1 "explain should report the failed loads"
expect_output "libpython3"
grep -qE 'undefined symbol: _?Py' "$log" || fail "explain does not name the undefined Python C-API symbol"
expect_output "RTLD_LOCAL"
# The rule explain prints is the one in dltrace.toml.
expect_output 'match = "libembed.so"'
expect_output 'add = ["RTLD_GLOBAL"]'
grep -qxF 'match = "libembed.so"' dltrace.toml && grep -qxF 'add = ["RTLD_GLOBAL"]' dltrace.toml ||
  fail "dltrace.toml does not hold the rule explain printed"

step "The scopes: libpython is only in the local scope of dlopen #1, which the extension modules do not search"
show dltrace scopes host.trace
expect_status 0 "scopes"
expect_output "libpython3"

step "The fix, without rebuilding anything: the override rule from explain"
show cat dltrace.toml
show dltrace config check dltrace.toml
expect_status 0 "config check"
show dltrace run -c dltrace.toml -o fixed.trace -- ./host
expect_status 0 "host with the override should work"
expect_output '{"ok": "1.5"}'

step "The same plugin, opened RTLD_GLOBAL by the override: explain finds nothing wrong"
show dltrace explain fixed.trace
expect_status 0 "explain should find no problem in fixed.trace"
expect_output "override-applied"

printf '\nexample: OK (files in %s)\n' "$work"

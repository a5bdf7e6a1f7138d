#!/usr/bin/env bash
# `cmake --install` into a scratch prefix: the files are where the package puts them, and the
# installed dltrace finds its installed recorder (<prefix>/lib/<multiarch>/libdltrace.so) and
# records and explains a real program.
#   tests/install/install_test.sh BUILD_DIR
set -euo pipefail
BUILD_DIR=$(cd "${1:?usage: install_test.sh BUILD_DIR}" && pwd)
PREFIX=$(mktemp -d "${TMPDIR:-/tmp}/dltrace-install.XXXXXX")
trap 'rm -rf "$PREFIX"' EXIT
cmake --install "$BUILD_DIR" --prefix "$PREFIX" >/dev/null

libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$BUILD_DIR/CMakeCache.txt")
fail=0
for f in bin/dltrace "$libdir/libdltrace.so" "$libdir/libdltrace_config.so" \
  include/dltrace/format.h include/dltrace/reader.h \
  share/man/man1/dltrace.1 share/man/man1/dltrace-run.1 share/man/man1/dltrace-explain.1 \
  share/bash-completion/completions/dltrace share/doc/dltrace/README.md \
  share/doc/dltrace/examples/demo.sh; do
  [ -e "$PREFIX/$f" ] || { echo "install_test: $f not installed" >&2; fail=1; }
done
[ $fail = 0 ] || exit 1

# Outside the build tree: the installed viewer must use the installed recorder.
cd "$PREFIX"
status=0
err=$("$PREFIX/bin/dltrace" run -o "$PREFIX/py.trace" -- /usr/bin/python3 -c 'import json' 2>&1) || status=$?
[ $status = 0 ] || { echo "install_test: dltrace run exited $status: $err" >&2; exit 1; }
grep -q "^dltrace: no failed calls.*dltrace show $PREFIX/py.trace\$" <<<"$err" ||
  { echo "install_test: unexpected summary: $err" >&2; exit 1; }
"$PREFIX/bin/dltrace" export "$PREFIX/py.trace" | grep -q "$PREFIX/$libdir/libdltrace.so" ||
  { echo "install_test: the trace does not show the installed recorder preloaded" >&2; exit 1; }
"$PREFIX/bin/dltrace" explain "$PREFIX/py.trace" >/dev/null
# The recorder parses an override config with the installed libdltrace_config.so beside it.
printf '[[override]]\nmatch = "_ctypes.*"\nadd = ["RTLD_NODELETE"]\n' >"$PREFIX/c.toml"
status=0
err=$("$PREFIX/bin/dltrace" run -c "$PREFIX/c.toml" -o "$PREFIX/c.trace" -- /usr/bin/python3 -c 'import ctypes' 2>&1) || status=$?
[ $status = 0 ] || { echo "install_test: dltrace run -c exited $status: $err" >&2; exit 1; }
grep -q "^dltrace: no failed calls" <<<"$err" && ! grep -q "config parser" <<<"$err" ||
  { echo "install_test: the installed recorder did not take the config: $err" >&2; exit 1; }
"$PREFIX/bin/dltrace" show "$PREFIX/c.trace" | grep -q "RTLD_NODELETE \[override" ||
  { echo "install_test: the config's rule did not apply in the installed recorder" >&2; exit 1; }
echo "install_test: installed to $PREFIX, recorded and explained python3"

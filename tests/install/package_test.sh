#!/usr/bin/env bash
# The Debian package, end to end: `cpack -G DEB` in the build tree, its contents and Depends:,
# `dpkg -i`, the installed dltrace recording and explaining python3, `man dltrace`, and
# `dpkg -r` and `dpkg --purge`, which must leave nothing behind. Needs root and dpkg (exit 77 = skipped otherwise).
# The package is removed on any exit, also when a check fails.
#   tests/install/package_test.sh BUILD_DIR
set -euo pipefail
BUILD_DIR=$(cd "${1:?usage: package_test.sh BUILD_DIR}" && pwd)
skip() { echo "package_test: SKIPPED: $*" >&2; exit 77; }
[ "$(id -u)" = 0 ] || skip "dpkg -i needs root (run ctest as root, or install the .deb by hand)"
command -v dpkg >/dev/null && command -v dpkg-shlibdeps >/dev/null || skip "no dpkg/dpkg-shlibdeps"
if dpkg-query -W -f='${Status}' dltrace 2>/dev/null | grep -q 'installed'; then
  skip "a dltrace package is already installed on this machine; not touching it"
fi
[ ! -e /usr/bin/dltrace ] || skip "/usr/bin/dltrace exists and is not from a dltrace package"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dltrace-package.XXXXXX")
installed=0
cleanup() {
  if [ $installed = 1 ]; then dpkg --purge dltrace >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "package_test: $*" >&2; exit 1; }

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD_DIR/CMakeCache.txt")
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
(cd "$WORK" && cpack -G DEB --config "${CPACK_CONFIG:-$BUILD_DIR/CPackConfig.cmake}" -B "$WORK" >cpack.log 2>&1) ||
  { cat "$WORK/cpack.log" >&2; fail "cpack -G DEB failed"; }
deb=$WORK/dltrace_${version}_${arch}.deb
[ -f "$deb" ] || fail "no $(basename "$deb"): $(ls "$WORK")"

# Contents and Depends: (from dpkg-shlibdeps: libc6, and the viewer's libraries).
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/dltrace "./usr/lib/$multiarch/libdltrace.so" \
  "./usr/lib/$multiarch/libdltrace_config.so" ./usr/include/dltrace/format.h \
  ./usr/share/man/man1/dltrace.1 ./usr/share/man/man1/dltrace-explain.1 \
  ./usr/share/bash-completion/completions/dltrace ./usr/share/doc/dltrace/README.md \
  ./usr/share/doc/dltrace/examples/demo.sh; do
  grep -qx -- "$f" <<<"$contents" || fail "$f is not in the package"
done
depends=$(dpkg-deb -f "$deb" Depends)
for lib in 'libc6 (>=' 'libdw1 (>='; do
  grep -qF "$lib" <<<"$depends" || fail "Depends: lacks $lib: $depends"
done
# Native stacks are the recorder's own walk: no unwinder library to depend on.
! grep -qF 'libunwind' <<<"$depends" || fail "Depends: names libunwind: $depends"
echo "package_test: $(basename "$deb"): Depends: $depends"

installed=1
dpkg -i "$deb" >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; fail "dpkg -i failed"; }

# The installed dltrace, from a directory that is not the build tree.
cd "$WORK"
status=0
err=$(/usr/bin/dltrace run -o "$WORK/py.trace" -- /usr/bin/python3 -c 'import json' 2>&1) || status=$?
[ $status = 0 ] || fail "dltrace run exited $status: $err"
grep -q "dltrace show $WORK/py.trace\$" <<<"$err" || fail "unexpected end of dltrace run: $err"
/usr/bin/dltrace export "$WORK/py.trace" | grep -q "/usr/lib/$multiarch/libdltrace.so" ||
  fail "the trace does not show /usr/lib/$multiarch/libdltrace.so preloaded"
explain=$(/usr/bin/dltrace explain "$WORK/py.trace") || fail "dltrace explain exited $?: $explain"
grep -q "^0 problems" <<<"$explain" || fail "explain found problems in python3 -c 'import json': $explain"
/usr/bin/dltrace --version | grep -q "^dltrace $version " || fail "dltrace --version: $(/usr/bin/dltrace --version)"
if command -v man >/dev/null; then
  MANWIDTH=80 man -P cat dltrace 2>/dev/null | grep -q "EXIT STATUS" || fail "man dltrace does not show the page"
fi

dpkg -r dltrace >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; fail "dpkg -r failed"; }
installed=0
for f in $contents; do
  f=${f#.}
  [ -d "$f" ] && continue
  [ ! -e "$f" ] || fail "$f is still there after dpkg -r"
done
# Purged, dpkg forgets it: the machine is as before.
dpkg --purge dltrace >"$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log" >&2; fail "dpkg --purge failed"; }
if dpkg-query -W -f='${Status}' dltrace 2>/dev/null | grep -qv 'not-installed'; then
  fail "dpkg still knows dltrace: $(dpkg-query -W -f='${Status}' dltrace)"
fi
echo "package_test: built, installed, ran, explained and removed $(basename "$deb")"

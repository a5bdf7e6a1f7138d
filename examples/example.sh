# Shared by the examples' run.sh scripts (source it, do not run it): finding the build, the work
# directory, and `show`, which prints a command and its output the way the READMEs quote them.
# The sourcing script sets `here` (its own directory) first.

# example_build BUILD_DIR: sets $build (default: the repository's build/) and checks that it
# holds a built dltrace.
example_build() {
  build=${1:-$here/../../build}
  [ -d "$build" ] || { echo "run.sh: no build directory $build (build dltrace first)" >&2; exit 1; }
  build=$(cd "$build" && pwd)
  for f in "$build/bin/dltrace" "$build/lib/libdltrace.so"; do
    [ -f "$f" ] || { echo "run.sh: missing $f (cmake --build $build --target dltrace dltrace_preload)" >&2; exit 1; }
  done
}

# example_workdir NAME FILE...: a fresh BUILD_DIR/examples/NAME with the example's FILEs, made the
# current directory; `dltrace` on PATH; no colour in what is quoted.
example_workdir() {
  local name=$1 f
  shift
  export PATH=$build/bin:$PATH   # so the commands below read `dltrace ...`
  export NO_COLOR=1
  work=$build/examples/$name
  rm -rf "$work"
  mkdir -p "$work"
  for f in "$@"; do cp "$here/$f" "$work/"; done
  cd "$work"
  log=$work/last.out
}

step() { printf '\n== %s\n' "$*"; }
fail() { echo "example: FAILED: $*" >&2; exit 1; }
# show CMD ARGS...: prints "$ CMD ARGS" and runs it, stderr into stdout; the output is also kept
# in $log, the exit status in $status (never stops the script).
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

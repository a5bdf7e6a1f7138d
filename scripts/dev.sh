#!/usr/bin/env bash
# One entry point for the two things a newcomer does on a fresh Debian 12 machine:
#   scripts/dev.sh demo   install dependencies, build, and run the main demo
#   scripts/dev.sh test   install dependencies, build, and run the whole test suite
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

case "${1:-}" in
  demo | test) ;;
  *)
    echo "usage: scripts/dev.sh demo|test [ctest args...]" >&2
    exit 2
    ;;
esac

# The demo needs only the build dependencies and three targets (dltrace_demo: the viewer, the
# recorder and the demo's fixture programs); the tests need everything.
bash scripts/install-deps.sh "$([ "$1" = demo ] && echo demo)"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

case "$1" in
  demo)
    cmake --build "$BUILD_DIR" -j "$JOBS" --target dltrace_demo
    exec bash examples/demo.sh "$BUILD_DIR"
    ;;
  test)
    cmake --build "$BUILD_DIR" -j "$JOBS"
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" "${@:2}"
    ;;
esac

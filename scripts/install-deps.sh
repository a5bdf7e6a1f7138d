#!/usr/bin/env bash
# Installs every build and test dependency of dltrace from Debian 12 packages
# (`install-deps.sh demo`: only what building needs, for scripts/dev.sh demo).
# Idempotent: packages already present are skipped, apt is only asked when needed.
set -euo pipefail

# What configuring and building needs (the viewer, the recorder, the test programs and fixtures);
# they come first in `packages`, and are all that `demo` installs.
build_packages=(
  build-essential cmake ninja-build pkg-config
  binutils file
  catch2 libbenchmark-dev
  libelf-dev libdw-dev
  libtomlplusplus-dev libfmt-dev libabsl-dev libcli11-dev
  libgraphviz-dev graphviz
  python3 python3-dev libpython3-dev
  liblua5.4-dev nlohmann-json3-dev
)
case "${1:-}" in
  demo) wanted=${#build_packages[@]} ;;
  '') ;;
  *) echo "usage: scripts/install-deps.sh [demo]" >&2; exit 2 ;;
esac

packages=(
  "${build_packages[@]}"
  # installing like any tool: cpack's Depends: (dpkg-shlibdeps), the man pages rendered by man,
  # the bash completion typed into bash in tmux (tests/install/)
  dpkg-dev man-db groff-base bsdextrautils tmux bash-completion
  clang libclang-rt-14-dev  # the fuzzers
  clang-format  # scripts/check-format.sh, run by ctest
  patchelf  # explain's RUNPATH fixes are applied with it in the tests
  libunwind8  # the native-stack tests compare the recorder's stacks with its unw_backtrace
  strace  # the syscalls a traced process start makes (startup_cost_test)
  valgrind  # instruction counts: the benchmarks, and the pass-through cost (passthrough_cost_test)
  python3-numpy
  # the rest of the Python science stack: explain stays quiet on what it loads (realworld tests)
  python3-scipy python3-pandas python3-matplotlib
  musl-tools  # a plugin carrying its own static C library (explain's runtime-copy test)
  default-jdk-headless  # a real JVM: its signal chaining and crash handling under the recorder
  chromium  # the HTML report's browser test (headless)
  # real programs that probe for optional symbols and libraries (explain's realworld tests)
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  imagemagick
  # the aarch64 build and its tests under qemu-user (README, "aarch64"): the cross toolchain, and
  # qemu-aarch64-static, which runs the aarch64 programs (and what they exec) without binfmt_misc
  gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user qemu-user-static
  # arm64 libraries through multiarch (see below): libunwind for the native-stack tests in aarch64
  # processes, libstdc++ for the C++ test programs (the tests use this glibc, not the sysroot's)
  libunwind8:arm64 libstdc++6:arm64
)

# arm64 packages (libunwind8:arm64) come through multiarch.
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
added_arch=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  added_arch=1
fi

missing=()
for p in "${packages[@]:0:${wanted:-${#packages[@]}}}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ] && [ "$added_arch" -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

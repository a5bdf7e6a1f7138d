#!/usr/bin/env bash
# Installs every build and test dependency of dltrace from Debian 12 packages.
# Idempotent: packages already present are skipped, apt is only asked when needed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  clang-format  # scripts/check-format.sh, run by ctest
  binutils file
  patchelf  # explain's RUNPATH fixes are applied with it in the tests
  libunwind-dev
  catch2 libbenchmark-dev
  libelf-dev libdw-dev
  libtomlplusplus-dev libfmt-dev libabsl-dev libcli11-dev
  libgraphviz-dev graphviz
  python3 python3-numpy python3-dev libpython3-dev
  liblua5.4-dev nlohmann-json3-dev
  default-jdk-headless  # a real JVM: its signal chaining and crash handling under the recorder
  chromium  # the HTML report's browser test (headless)
  # real programs that probe for optional symbols and libraries (explain's realworld tests)
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  imagemagick
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

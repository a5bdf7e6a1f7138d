// aarch64_tests: the integration tests' differential and footprint cases on the aarch64 build,
// run under qemu-user (CMakeLists.txt). Reports itself skipped (exit 77, ctest's
// SKIP_RETURN_CODE) when that build or the emulator is missing, rather than passing vacuously.
#define CATCH_CONFIG_RUNNER
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>

#include "harness.h"

int main(int argc, char* argv[]) {
  using dltrace::test::preload_path;
  using dltrace::test::test_target;
  constexpr int kSkipped = 77;
  if (access(preload_path().c_str(), R_OK) != 0) {
    std::printf(
        "skipped: no aarch64 build at %s (install the cross toolchain: "
        "scripts/install-deps.sh, then reconfigure)\n",
        preload_path().c_str());
    return kSkipped;
  }
  if (access(test_target().emulator.c_str(), X_OK) != 0) {
    std::printf("skipped: no emulator %s (qemu-user-static)\n", test_target().emulator.c_str());
    return kSkipped;
  }
  return Catch::Session().run(argc, argv);
}

// The AArch64 trampoline driven directly (tests/fixtures/arch/arch_trampoline_aarch64.c): every
// kind of epilogue gadget the gadget search accepts returns the callee's result to the caller,
// and the callee sees the gadget as its return address, also when it signs x30 itself.
#include <catch2/catch.hpp>
#include <string>

#include "harness.h"

using namespace dltrace::test;

TEST_CASE("the trampoline returns through each kind of AArch64 epilogue gadget", "[trampoline]") {
  ProcessResult r = run({fixture("arch_trampoline")});
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  // qemu's cpu max has pointer authentication, so the retaa gadget is tried too.
  CHECK(r.out ==
        "pointer authentication: on\n"
        "plain #16: 123, return address the gadget\n"
        "plain #48: 123, return address the gadget\n"
        "autiasp: 123, return address the gadget\n"
        "signing callee, autiasp: 1123, return address the gadget\n"
        "signing callee, plain #16: 1123, return address the gadget\n"
        "retaa: 123, return address the gadget\n");
}

// The event clock's choice of counter (arch.h): on x86-64 it comes from the CPUID results ld.so
// keeps, which must say what the instruction says.
#include <catch2/catch.hpp>

#include "arch/arch.h"

#if defined(__x86_64__)
#include <cpuid.h>

TEST_CASE("cycle counter: invariant exactly when CPUID 0x80000007 says so") {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  bool invariant = false;
  if (__get_cpuid(0x80000000u, &eax, &ebx, &ecx, &edx) != 0 && eax >= 0x80000007u) {
    __cpuid(0x80000007u, eax, ebx, ecx, edx);
    invariant = (edx & (1u << 8)) != 0;
  }
  CHECK(dltrace::preload::arch::cycle_counter_is_invariant() == invariant);
}
#endif

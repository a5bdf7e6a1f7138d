// x86-64's hwcaps as glibc 2.36 decides them (sysdeps/x86/get-isa-level.h, cpu_features.c):
// the x86-64-v2/v3/v4 ISA levels, and the legacy names: the platform ("haswell", "xeon_phi",
// Intel only), "avx512_1" (Intel only) and "x86_64" (always). Checked against `ld.so --help`
// by a test.
#include "common/hwcaps.h"

#include <cpuid.h>

#include <cstdint>
#include <cstring>

namespace dltrace::common::arch {
namespace {

struct Cpu {
  bool intel = false;
  uint32_t ecx1 = 0, ebx7 = 0, ecx81 = 0;
  uint64_t xcr0 = 0;
  bool has1(int bit) const { return (ecx1 >> bit) & 1; }
  bool has7(int bit) const { return (ebx7 >> bit) & 1; }
  bool ymm() const { return has1(27) && (xcr0 & 0x6) == 0x6; }    // OSXSAVE, SSE+AVX state
  bool zmm() const { return has1(27) && (xcr0 & 0xe6) == 0xe6; }  // and the AVX-512 state
  // "usable" as glibc says: the CPU has it and the kernel saves its registers.
  bool avx() const { return ymm() && has1(28); }
  bool avx2() const { return ymm() && has7(5); }
  bool fma() const { return ymm() && has1(12); }
  bool f16c() const { return ymm() && has1(29); }
  bool avx512(int bit) const { return zmm() && has7(bit); }
  bool bmi1() const { return has7(3); }
  bool bmi2() const { return has7(8); }
  bool lzcnt() const { return (ecx81 >> 5) & 1; }
  bool movbe() const { return has1(22); }
  bool popcnt() const { return has1(23); }
};

Cpu read_cpu() {
  Cpu cpu;
  unsigned a, b, c, d;
  if (__get_cpuid(0, &a, &b, &c, &d) == 0) return cpu;
  char vendor[13];
  memcpy(vendor, &b, 4);
  memcpy(vendor + 4, &d, 4);
  memcpy(vendor + 8, &c, 4);
  vendor[12] = '\0';
  cpu.intel = strcmp(vendor, "GenuineIntel") == 0;
  const unsigned max_leaf = a;
  if (__get_cpuid(1, &a, &b, &c, &d) != 0) cpu.ecx1 = c;
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    cpu.ebx7 = b;
  }
  if (__get_cpuid(0x80000001, &a, &b, &c, &d) != 0) cpu.ecx81 = c;
  if (cpu.has1(27)) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    cpu.xcr0 = (uint64_t{hi} << 32) | lo;
  }
  return cpu;
}

bool level2(const Cpu& c) {
  // CMPXCHG16B, SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT, LAHF/SAHF in 64-bit mode.
  return c.has1(13) && c.has1(0) && c.has1(9) && c.has1(19) && c.has1(20) && c.popcnt() &&
         (c.ecx81 & 1);
}
bool level3(const Cpu& c) {
  return level2(c) && c.avx() && c.avx2() && c.bmi1() && c.bmi2() && c.f16c() && c.fma() &&
         c.lzcnt() && c.movbe();
}
bool level4(const Cpu& c) {
  // AVX512F, DQ, CD, BW, VL.
  return level3(c) && c.avx512(16) && c.avx512(17) && c.avx512(28) && c.avx512(30) && c.avx512(31);
}

}  // namespace

size_t glibc_hwcaps_levels(const char** out, size_t cap) {
  const Cpu cpu = read_cpu();
  size_t n = 0;
  if (level4(cpu) && n < cap) out[n++] = "x86-64-v4";
  if (level3(cpu) && n < cap) out[n++] = "x86-64-v3";
  if (level2(cpu) && n < cap) out[n++] = "x86-64-v2";
  return n;
}

size_t legacy_hwcaps_names(const char** out, size_t cap, const char** platform_out) {
  const Cpu cpu = read_cpu();
  size_t n = 0;
  bool avx512_1 = false;
  const char* platform = nullptr;
  if (cpu.intel) {
    if (cpu.avx512(28)) {    // AVX512CD
      if (cpu.avx512(27)) {  // AVX512ER: Xeon Phi
        if (cpu.avx512(26)) platform = "xeon_phi";
      } else {
        avx512_1 = cpu.avx512(30) && cpu.avx512(17) && cpu.avx512(31);  // BW, DQ, VL
      }
    }
    if (platform == nullptr && cpu.avx2() && cpu.fma() && cpu.bmi1() && cpu.bmi2() && cpu.lzcnt() &&
        cpu.movbe() && cpu.popcnt())
      platform = "haswell";
  }
  *platform_out = platform;
  if (platform != nullptr && n < cap) out[n++] = platform;
  if (avx512_1 && n < cap) out[n++] = "avx512_1";
  if (n < cap) out[n++] = "x86_64";
  return n;
}

}  // namespace dltrace::common::arch

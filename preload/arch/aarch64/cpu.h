// AArch64: the inline part of arch.h.
#pragma once

#include <link.h>
#include <sys/auxv.h>

#include <cerrno>
#include <cstdint>

namespace dltrace::preload::arch {

// The generic timer's virtual count (cntvct_el0), readable from EL0 on Linux. The isb keeps the
// read from being hoisted above earlier instructions, as the kernel's own vDSO does.
inline uint64_t cycle_counter() {
  uint64_t ticks;
  __asm__ volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(ticks)::"memory");
  return ticks;
}

// The generic timer's frequency as firmware programmed it (0: left unset).
inline uint64_t cycle_counter_hz() {
  uint64_t hz;
  __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(hz));
  return hz;
}

// The architecture defines the generic timer as one system-wide count at a constant frequency,
// unaffected by power states; a zero frequency means firmware left it unset.
inline bool cycle_counter_is_invariant() {
  return cycle_counter_hz() != 0;
}

inline void spin_pause() {
  __asm__ volatile("yield" ::: "memory");
}

// AArch64 ld.so (sysdeps/aarch64/dl-irel.h) passes the hwcaps: (AT_HWCAP | _IFUNC_ARG_HWCAP,
// &__ifunc_arg_t{size, AT_HWCAP, AT_HWCAP2}).
inline void* call_ifunc_resolver(uintptr_t resolver) {
  struct IfuncArg {
    unsigned long size;
    unsigned long hwcap;
    unsigned long hwcap2;
  };
  constexpr uint64_t kIfuncArgHwcap = 1ull << 62;
  const int saved = errno;  // getauxval sets ENOENT for an entry the kernel did not pass
  const IfuncArg arg{sizeof(IfuncArg), getauxval(AT_HWCAP), getauxval(AT_HWCAP2)};
  errno = saved;
  return reinterpret_cast<void* (*)(uint64_t, const IfuncArg*)>(resolver)(
      arg.hwcap | kIfuncArgHwcap, &arg);
}

// ---- native stacks: DWARF register numbers (AAPCS64) and the registers at a point ----
struct DwarfRegisters {
  static constexpr unsigned kSp = 31, kFp = 29, kRa = 30;  // sp, x29, x30 (the link register)
  // The CFA opcode 0x2d is DW_CFA_AARCH64_negate_ra_state: return addresses may carry a
  // pointer-authentication code (-mbranch-protection).
  static constexpr bool kSignedReturnAddresses = true;
};

// x30 matters for the first frame only: before a function's prologue (or in a shrink-wrapped
// path) its CFI says the return address is still in x30.
__attribute__((always_inline)) inline UnwindRegisters current_registers() {
  UnwindRegisters r;
  __asm__ volatile(
      "adr %0, .\n\t"
      "mov %1, sp\n\t"
      "mov %2, x29\n\t"
      "mov %3, x30"
      : "=&r"(r.pc), "=&r"(r.sp), "=&r"(r.fp), "=&r"(r.ra));
  return r;
}

// xpaclri (hint #7) strips x30's authentication code; a no-op on CPUs without pointer
// authentication, so it is safe everywhere.
inline uintptr_t strip_return_address(uintptr_t ra) {
  register uintptr_t x30 __asm__("x30") = ra;
  __asm__("hint #7" : "+r"(x30));
  return x30;
}

}  // namespace dltrace::preload::arch

// No large-data bss in the AArch64 ELF ABI: the arrays stay in .bss (arch.h).
#define DLTRACE_LARGE_BSS

// x86-64: the inline part of arch.h.
#pragma once

#include <link.h>
#include <sys/platform/x86.h>

#include <cstdint>

namespace dltrace::preload::arch {

// rdtsc, ~7 ns (clock_gettime costs 20-70 ns on virtual machines, and every event reads the
// clock twice).
inline uint64_t cycle_counter() {
  return __builtin_ia32_rdtsc();
}

// CPUID 0x80000007, EDX bit 8: the TSC is invariant (one rate in every P-, C- and T-state). Read
// from the CPUID results ld.so keeps (<sys/platform/x86.h>, glibc >= 2.33): the instruction
// itself traps to the hypervisor on a virtual machine, ~8 us each here, and every process
// start paid two.
inline bool cycle_counter_is_invariant() {
  return CPU_FEATURE_PRESENT(INVARIANT_TSC);
}

// The TSC's rate is not architecturally stated: the recorder measures it.
inline uint64_t cycle_counter_hz() {
  return 0;
}

inline void spin_pause() {
  __builtin_ia32_pause();
}

// x86-64 ld.so calls IFUNC resolvers without arguments (they read cpu features themselves).
inline void* call_ifunc_resolver(uintptr_t resolver) {
  return reinterpret_cast<void* (*)()>(resolver)();
}

// ---- native stacks: DWARF register numbers (x86-64 psABI) and the registers at a point ----
struct DwarfRegisters {
  static constexpr unsigned kSp = 7, kFp = 6, kRa = 16;  // %rsp, %rbp, the return-address column
  // The CFA opcode 0x2d is DW_CFA_GNU_window_save (SPARC): never emitted here.
  static constexpr bool kSignedReturnAddresses = false;
};

__attribute__((always_inline)) inline UnwindRegisters current_registers() {
  UnwindRegisters r;
  __asm__ volatile(
      "leaq 0(%%rip), %0\n\t"
      "movq %%rsp, %1\n\t"
      "movq %%rbp, %2"
      : "=r"(r.pc), "=r"(r.sp), "=r"(r.fp));
  r.ra = 0;  // the return address is on the stack, never in a register
  return r;
}

inline uintptr_t strip_return_address(uintptr_t ra) {
  return ra;
}

}  // namespace dltrace::preload::arch

// The psABI's large-data bss: NOBITS, after .bss in the same segment (arch.h).
#define DLTRACE_LARGE_BSS __attribute__((section(".lbss")))

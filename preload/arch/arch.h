// Everything the recorder needs from the CPU, behind one interface. CMake builds the folder
// preload/arch/<cpu>/ that CMAKE_SYSTEM_PROCESSOR names and puts it on the include path; no other
// file of the preload names a CPU. A folder provides what is declared here: the inline part in
// its cpu.h (hot paths), the rest in its sources (see README for what a new CPU must do).
#pragma once

#include <dlfcn.h>
#include <link.h>

#include <cstddef>
#include <cstdint>

namespace dltrace::preload::arch {

// ---- the event clock (event_clock.h) ----
// A counter read in a few ns, for event times and durations.
inline uint64_t cycle_counter();
// Whether cycle_counter() ticks at one constant rate on every core and through sleep states:
// then the recorder calibrates it against CLOCK_MONOTONIC; otherwise it uses CLOCK_MONOTONIC.
inline bool cycle_counter_is_invariant();
// The counter's nominal frequency when the CPU states it (AArch64's cntfrq_el0), else 0: the
// recorder's measured calibration points refine it, and it stands in for them until then.
inline uint64_t cycle_counter_hz();

// ---- spinning (object_table.cpp's seqlock readers) ----
inline void spin_pause();

// ---- the dynamic loader's conventions on this CPU ----
// Runs an STT_GNU_IFUNC resolver at `resolver` the way ld.so does; returns what it chose.
inline void* call_ifunc_resolver(uintptr_t resolver);
// glibc's struct dl_find_object as x86-64 and AArch64 lay it out (no dlfo_eh_dbase, no
// dlfo_eh_count). Declared here rather than taken from <dlfcn.h> so that the preload does not
// require glibc 2.35's headers; where they are present, the layout is checked against them (a CPU
// whose glibc adds those fields fails the check and needs its own).
struct DlFindObject {
  unsigned long long flags;
  void* map_start;
  void* map_end;
  link_map* map;
  void* eh_frame;
  unsigned long long reserved[7];
};
#ifdef DLFO_STRUCT_HAS_EH_DBASE
static_assert(!DLFO_STRUCT_HAS_EH_DBASE && !DLFO_STRUCT_HAS_EH_COUNT &&
                  sizeof(DlFindObject) == sizeof(dl_find_object) &&
                  offsetof(DlFindObject, map) == offsetof(dl_find_object, dlfo_link_map) &&
                  offsetof(DlFindObject, eh_frame) == offsetof(dl_find_object, dlfo_eh_frame),
              "glibc's struct dl_find_object has another layout on this CPU");
#endif

// ---- native stacks (stack_capture.cpp, frame_rules.h) ----
// The registers a walk from .eh_frame rules needs: the stack pointer, the frame pointer and the
// return-address column (on CPUs where the return address is in a register, its value).
struct UnwindRegisters {
  uintptr_t pc, sp, fp, ra;
};
// The DWARF numbers of those registers on this CPU: struct DwarfRegisters {sp, fp, ra} in cpu.h.
// The caller's registers at the point where this is inlined: pc is an address in the inlining
// function, and sp/fp/ra are their values there (the function's own CFI row describes them).
inline UnwindRegisters current_registers();
// A return address as read from a frame, without a pointer-authentication code (if any).
inline uintptr_t strip_return_address(uintptr_t ra);

// ---- calls made on the original caller's behalf (caller_context.h) ----
// Whether this process may give a callee a made-up return address at all: false with a shadow
// stack, or on a CPU without a trampoline (every such call is then made directly and recorded as
// emulated). Asked once per process.
bool return_address_calls_possible();
// A gadget in `object`'s executable code: an address that, entered as a return address, returns
// again to the address then on top of the stack (on x86-64 a `ret` byte). Chosen so that
// unwinders walking through the made-up frame stay sane. 0 if there is none.
uintptr_t find_return_gadget(const dl_phdr_info& object);
// Whether a gadget found earlier is still one (a cautious fork child checks its cached gadget).
bool is_return_gadget(uintptr_t gadget);

}  // namespace dltrace::preload::arch

// The trampoline (caller_trampoline.S): calls fn(a0, a1, a2) with `gadget` as its return address;
// the gadget returns into the trampoline, which returns fn's result. The callee sees the normal
// calling convention otherwise.
extern "C" uintptr_t dltrace_call_with_return_address(const void* fn, const void* gadget,
                                                      uintptr_t a0, uintptr_t a1, uintptr_t a2);

// ---- static storage ----
// DLTRACE_LARGE_BSS (a macro cpu.h defines, possibly empty) marks a large zero-initialised array
// of which start-up touches at most the first entries. Where the ABI has a large-data bss
// (x86-64's .lbss, which the linker places after .bss), such arrays go there, and the small
// variables share a few pages of .bss instead of each sitting on a page of its own between two
// arrays: every page a process touches first is a page fault (~1.5 us on a virtual machine).

#include "cpu.h"  // this CPU's inline definitions (preload/arch/<cpu>/cpu.h)

// x86-64: the return gadget and whether it may be used (arch.h).
//
// Any 0xC3 byte executes as `ret`; the choice only matters to unwinders, which look up the CFI
// row at gadget-1 and must find CFA=rsp+8 with the return address below it (what `ret` pops):
// then a stack walked from inside the call (a constructor's dlsym during dlopen) continues
// through the trampoline to the real caller. Best: the last byte of an FDE (a real
// function-final ret) preceded by `xor %eax,%eax`, whose row says so. Else the last byte of a
// function, 0xC3 not preceded by an instruction that moves %rsp, whose row says so; else such a
// byte whatever its row (the last byte may even be a jump's displacement); else, without a usable
// unwind table, any `xor %eax,%eax; ret`, or any 0xC3 at all.
#include <unistd.h>

#include <cstring>

#include "arch/arch.h"
#include "eh_frame_index.h"
#include "frame_rules.h"

namespace dltrace::preload::arch {
namespace {

// Bytes ending at `ret` that move %rsp (pop, leave, add $imm,%rsp): reject those gadgets.
bool moves_rsp_before(uintptr_t ret) {
  auto b = reinterpret_cast<const uint8_t*>(ret);
  uint8_t p1 = b[-1];
  if ((p1 >= 0x58 && p1 <= 0x5f) || p1 == 0xc9) return true;         // pop r / leave
  if (b[-4] == 0x48 && b[-3] == 0x83 && b[-2] == 0xc4) return true;  // add $imm8,%rsp
  if (b[-7] == 0x48 && b[-6] == 0x81 && b[-5] == 0xc4) return true;  // add $imm32,%rsp
  return false;
}

struct FunctionEndSearch {
  const CodeView* code;
  uintptr_t best = 0;
  uintptr_t fallback = 0;     // its row is a gadget's
  uintptr_t last_resort = 0;  // its row is not
};

// Whether the CFI row at ret-1 describes the frame the gadget is in when entered: CFA=rsp+8, the
// return address at CFA-8.
bool row_fits_gadget(const CodeView& o, uintptr_t ret) {
  FrameDescription fd;
  FrameRule rule;
  return find_frame_description(o.eh_frame_hdr, ret - 1, 0, ~uintptr_t(0), &fd) &&
         compute_frame_rule(fd, ret - 1, &rule) && !rule.cfa_is_fp && rule.cfa_offset == 8 &&
         rule.ra == FrameRule::kAtCfa && rule.ra_offset == -8;
}

bool consider_function_end(uintptr_t begin, uint64_t range, void* context) {
  auto& s = *static_cast<FunctionEndSearch*>(context);
  const CodeView& o = *s.code;
  uintptr_t end = begin + range;
  if (range < 1 || !o.contains(end - 1, 1)) return false;
  auto b = reinterpret_cast<const uint8_t*>(end);
  if (b[-1] != 0xc3) return false;
  if (range >= 3 && o.contains(end - 3, 3) && b[-3] == 0x31 && b[-2] == 0xc0 &&
      row_fits_gadget(o, end - 1)) {
    s.best = end - 1;
    return true;
  }
  if (s.fallback == 0 && range >= 2 && o.contains(end - 8, 8) && !moves_rsp_before(end - 1)) {
    if (row_fits_gadget(o, end - 1))
      s.fallback = end - 1;
    else if (s.last_resort == 0)
      s.last_resort = end - 1;
  }
  return false;
}

uintptr_t gadget_from_eh_frame(const CodeView& o) {
  FunctionEndSearch s{&o};
  for_each_unwound_function(o.eh_frame_hdr, consider_function_end, &s);
  if (s.best != 0) return s.best;
  return s.fallback != 0 ? s.fallback : s.last_resort;
}

// No usable unwind table: any `xor %eax,%eax; ret`, else any 0xC3 in an executable segment.
uintptr_t gadget_from_scan(const CodeView& o) {
  for (int i = 0; i < o.exec_count; ++i) {
    auto b = reinterpret_cast<const uint8_t*>(o.exec[i].start);
    size_t n = o.exec[i].end - o.exec[i].start;
    for (size_t k = 2; k < n; ++k)
      if (b[k] == 0xc3 && b[k - 1] == 0xc0 && b[k - 2] == 0x31) return o.exec[i].start + k;
  }
  for (int i = 0; i < o.exec_count; ++i) {
    auto b = reinterpret_cast<const uint8_t*>(o.exec[i].start);
    if (auto p = std::memchr(b, 0xc3, o.exec[i].end - o.exec[i].start))
      return reinterpret_cast<uintptr_t>(p);
  }
  return 0;
}

}  // namespace

uintptr_t find_return_gadget(const dl_phdr_info& info) {
  const CodeView o = code_view(info);
  if (o.exec_count == 0) return 0;
  if (uintptr_t g = gadget_from_eh_frame(o)) return g;
  return gadget_from_scan(o);
}

bool is_return_gadget(uintptr_t gadget) {
  return *reinterpret_cast<const unsigned char*>(gadget) == 0xC3;
}

// A shadow stack (CET SHSTK) would fault on the made-up return address. RDSSP reads this
// thread's shadow-stack pointer where one is active and is a NOP otherwise (also on CPUs without
// CET), leaving 0: glibc's own test (_get_ssp), without a syscall.
bool return_address_calls_possible() {
  unsigned long long ssp = 0;
  __asm__ volatile("rdsspq %0" : "+r"(ssp));
  return ssp == 0;
}

}  // namespace dltrace::preload::arch

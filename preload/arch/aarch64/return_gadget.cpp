// AArch64: the return gadget and whether it may be used (arch.h).
//
// `ret` branches to x30 and pops nothing, so a bare `ret` would return to the gadget itself. The
// gadget is a function epilogue that reloads x30 from the stack before returning:
//     ldp x29, x30, [sp], #N ; ret            (N a positive multiple of 16)
//     ldp x29, x30, [sp], #N ; autiasp ; ret  (return-address signing, -mbranch-protection)
// The trampoline (caller_trampoline.S) decodes N and lays x29 and its continuation where the ldp
// reads them; for the second form it signs the continuation as autiasp will check it. Best: the
// epilogue that ends a function its unwind table describes (the table's row there says where x29
// and x30 are, which is where the trampoline put them); else any such epilogue in the code.
#include <sys/prctl.h>

#include <cerrno>

#include "arch/arch.h"
#include "eh_frame_index.h"

namespace dltrace::preload::arch {
namespace {

constexpr uint32_t kLdpX29X30PostIndexMask = 0xffc07fffu;  // everything but imm7
constexpr uint32_t kLdpX29X30PostIndex = 0xa8c07bfdu;      // ldp x29, x30, [sp], #imm7*8
constexpr uint32_t kRet = 0xd65f03c0u;                     // ret (x30)
constexpr uint32_t kAutiasp = 0xd50323bfu;                 // autiasp
constexpr uint32_t kRetaa = 0xd65f0bffu;                   // retaa

uint32_t word_at(uintptr_t address) {
  return *reinterpret_cast<const uint32_t*>(address);
}

// Bytes the ldp pops, or 0 if `word` is not `ldp x29, x30, [sp], #N` with 16 <= N <= 496 and
// N % 16 == 0 (the stack stays aligned; the trampoline reserves N bytes).
uint32_t popped_bytes(uint32_t word) {
  if ((word & kLdpX29X30PostIndexMask) != kLdpX29X30PostIndex) return 0;
  const uint32_t imm7 = (word >> 15) & 0x7f;
  if (imm7 == 0 || imm7 >= 0x40 || (imm7 & 1) != 0) return 0;  // positive, 16-byte multiples
  return imm7 * 8;
}

// The length of the gadget at `address` (8 or 12 bytes), 0 if it is none. Its last instruction
// returns.
uintptr_t gadget_length(const CodeView& o, uintptr_t address) {
  if (address % 4 != 0 || !o.contains(address, 8) || popped_bytes(word_at(address)) == 0) return 0;
  const uint32_t next = word_at(address + 4);
  if (next == kRet || next == kRetaa) return 8;
  if (next == kAutiasp && o.contains(address, 12) && word_at(address + 8) == kRet) return 12;
  return 0;
}

constexpr uintptr_t kGadgetLengths[] = {8, 12};  // ldp ; ret  and  ldp ; autiasp ; ret

struct FunctionEndSearch {
  const CodeView* code;
  uintptr_t best = 0;      // pops 16 bytes, plain ret
  uintptr_t fallback = 0;  // any other form
};

bool consider_function_end(uintptr_t begin, uint64_t range, void* context) {
  auto& s = *static_cast<FunctionEndSearch*>(context);
  const uintptr_t end = begin + range;
  for (const uintptr_t length : kGadgetLengths) {
    if (range < length) continue;
    const uintptr_t g = end - length;
    if (gadget_length(*s.code, g) != length) continue;
    if (length == 8 && word_at(g + 4) == kRet && popped_bytes(word_at(g)) == 16) {
      s.best = g;
      return true;
    }
    if (s.fallback == 0) s.fallback = g;
  }
  return false;
}

uintptr_t gadget_from_eh_frame(const CodeView& o) {
  FunctionEndSearch s{&o};
  for_each_unwound_function(o.eh_frame_hdr, consider_function_end, &s);
  return s.best != 0 ? s.best : s.fallback;
}

// No usable unwind table: the first such epilogue anywhere in the executable segments.
uintptr_t gadget_from_scan(const CodeView& o) {
  for (int i = 0; i < o.exec_count; ++i)
    for (uintptr_t a = (o.exec[i].start + 3) & ~uintptr_t{3}; a + 8 <= o.exec[i].end; a += 4)
      if (gadget_length(o, a) != 0) return a;
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
  if (gadget % 4 != 0 || popped_bytes(word_at(gadget)) == 0) return false;
  const uint32_t next = word_at(gadget + 4);
  return next == kRet || next == kRetaa || (next == kAutiasp && word_at(gadget + 8) == kRet);
}

// A guarded control stack (GCS, Linux 6.13) would fault on the made-up return address. Signed
// return addresses (PAC) are handled by the trampoline.
bool return_address_calls_possible() {
  const int saved = errno;  // the traced program must not see our probe's errno
  constexpr int kPrGetShadowStackStatus = 74;
  constexpr unsigned long kShadowStackEnable = 1;
  unsigned long status = 0;
  const int rc = prctl(kPrGetShadowStackStatus, &status, 0, 0, 0);
  errno = saved;
  return !(rc == 0 && (status & kShadowStackEnable) != 0);
}

}  // namespace dltrace::preload::arch

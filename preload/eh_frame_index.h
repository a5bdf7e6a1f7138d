// A loaded object's unwind table (.eh_frame_hdr and the .eh_frame entries it indexes), read for
// two users: the return-gadget search (arch/<cpu>/return_gadget.cpp) lists the functions it
// describes; the native-stack walk (stack_capture.cpp) finds the entry for one address and the
// call-frame instructions that frame_rules.h interprets. Choosing a gadget or interpreting the
// instructions is not the table's business, so only the reading lives here.
#pragma once

#include <link.h>

#include <cstddef>
#include <cstdint>

namespace dltrace::preload {

struct CodeView {
  struct Range {
    uintptr_t start, end;
  };
  Range exec[8];
  int exec_count = 0;
  const uint8_t* eh_frame_hdr = nullptr;  // PT_GNU_EH_FRAME (.eh_frame_hdr), or nullptr

  // Whether [address, address + size) lies inside one executable segment.
  bool contains(uintptr_t address, size_t size) const {
    for (int i = 0; i < exec_count; ++i)
      if (address >= exec[i].start && address + size <= exec[i].end) return true;
    return false;
  }
};

CodeView code_view(const dl_phdr_info& object);

// Calls visit(begin, size, context) for each function (FDE) that the binary-search table of
// .eh_frame_hdr lists, in table order, until visit returns true. Understands the table as ld emits
// it (udata4 count, datarel sdata4 entries) and CIEs with a "z" augmentation; anything else is
// skipped, entry by entry or as a whole.
using FunctionVisitor = bool (*)(uintptr_t begin, uint64_t size, void* context);
void for_each_unwound_function(const uint8_t* eh_frame_hdr, FunctionVisitor visit, void* context);

// The unwind description of the function containing one address: its FDE's call-frame
// instructions, the CIE's initial ones, and the CIE's parameters they are read with.
struct FrameDescription {
  uintptr_t begin = 0;  // first address the FDE covers
  uint64_t size = 0;
  const uint8_t* cie_instructions = nullptr;
  const uint8_t* cie_end = nullptr;
  const uint8_t* instructions = nullptr;
  const uint8_t* end = nullptr;
  uint64_t code_align = 1;
  int64_t data_align = 1;
  uint64_t ra_register = 0;
  uint8_t fde_encoding = 0;   // DW_EH_PE_* of addresses in the instructions (DW_CFA_set_loc)
  bool signal_frame = false;  // 'S' augmentation: the frame of a signal handler's return
};

// Binary-searches the table of .eh_frame_hdr for `pc` and reads the FDE and CIE it points to.
// Every byte read lies in [lo, hi) (the object's mapping): a table or an entry that would reach
// outside it, or that the reader does not understand, gives false.
bool find_frame_description(const uint8_t* eh_frame_hdr, uintptr_t pc, uintptr_t lo, uintptr_t hi,
                            FrameDescription* out);

// A reader of the DWARF values in unwind tables that never reads outside [p, end): a read past it
// leaves ok false and returns 0.
struct DwarfReader {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;

  bool has(size_t n) {
    if (ok && static_cast<size_t>(end - p) >= n) return true;
    ok = false;
    return false;
  }
  uint8_t u8() { return has(1) ? *p++ : 0; }
  uint64_t uleb();
  int64_t sleb();
  // A value in the DW_EH_PE encoding `enc` (absptr, udata/sdata 2/4/8, optionally pc-relative);
  // anything else (indirect, data-, text- or function-relative) leaves ok false.
  uint64_t encoded(uint8_t enc);
  uint64_t fixed(size_t size);  // little-endian unsigned of 1, 2, 4 or 8 bytes
};

}  // namespace dltrace::preload

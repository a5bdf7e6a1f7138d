// A loaded object's code as a return-gadget search sees it (arch/<cpu>/return_gadget.cpp): its
// readable and executable segments, and the functions its unwind table describes. Choosing a
// gadget is the CPU's business; reading the table is not, so it lives here.
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

}  // namespace dltrace::preload

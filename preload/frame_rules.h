// How to find a frame's caller from the frame's unwind description (eh_frame_index.h): the DWARF
// call-frame instructions of its CIE and FDE, run up to one address, reduced to the few rules a
// stack walk needs. CPU-neutral: the registers are named by the DWARF numbers arch.h gives.
#pragma once

#include <cstdint>

#include "eh_frame_index.h"

namespace dltrace::preload {

struct FrameRule {
  enum Register : uint8_t {
    kSame,       // the caller's value is this frame's value (no rule, or DW_CFA_same_value)
    kAtCfa,      // saved in memory at CFA + offset
    kUndefined,  // DW_CFA_undefined: for the return address, the outermost frame
  };
  uint8_t cfa_is_fp;  // CFA = (cfa_is_fp ? frame pointer : stack pointer) + cfa_offset
  uint8_t fp;         // how to restore the frame pointer (Register)
  uint8_t ra;         // how to find the return address (Register)
  uint8_t ra_signed;  // the saved return address carries a pointer-authentication code
  int32_t cfa_offset;
  int32_t fp_offset;
  int32_t ra_offset;
};
static_assert(sizeof(FrameRule) == 16);

// Runs the CIE's initial instructions and the FDE's up to the row that holds at `target` (the
// address itself for the frame being executed, return address - 1 for a caller's). False for
// anything a walk cannot follow with a stack pointer, a frame pointer and the return-address
// column: a CFA that is neither register plus an offset, a DWARF expression for one of them, a
// signal frame, or instructions the reader does not know. Reads only the instruction ranges that
// find_frame_description checked.
bool compute_frame_rule(const FrameDescription& fd, uintptr_t target, FrameRule* out);

}  // namespace dltrace::preload

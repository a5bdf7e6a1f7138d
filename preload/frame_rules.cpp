// The DWARF call-frame instruction interpreter behind frame_rules.h: only the rules for the CFA,
// the frame pointer and the return-address column are kept; the other registers' rules are read
// past.
#include "frame_rules.h"

#include "arch/arch.h"

namespace dltrace::preload {
namespace {

using Regs = arch::DwarfRegisters;

struct Rule {
  uint8_t kind = FrameRule::kSame;
  int64_t offset = 0;
};

struct Row {
  uint64_t cfa_register = ~0ull;
  int64_t cfa_offset = 0;
  Rule fp, ra;
  bool ra_signed = false;
};

struct Interpreter {
  Interpreter(const FrameDescription& d, uintptr_t t) : fd(d), target(t), loc(d.begin) {}
  const FrameDescription& fd;
  uintptr_t target;
  Row row;
  Row initial;  // after the CIE's instructions: what DW_CFA_restore goes back to
  Row remembered[8];
  int depth = 0;
  uintptr_t loc;

  // The rule slot for a DWARF register, nullptr for registers the walk does not track.
  // `tracked_sp` is set for the stack pointer, whose value is the CFA by definition.
  Rule* slot(Row& r, uint64_t reg, bool* is_sp) {
    *is_sp = reg == Regs::kSp;
    if (reg == Regs::kFp) return &r.fp;
    if (reg == fd.ra_register) return &r.ra;
    return nullptr;
  }

  // A register's rule set to `kind` (kSame, kUndefined) or to "saved at CFA + offset"; false if
  // the walk cannot follow it.
  bool set(uint64_t reg, uint8_t kind, int64_t offset) {
    bool is_sp;
    Rule* r = slot(row, reg, &is_sp);
    if (is_sp) return kind == FrameRule::kSame;  // the caller's SP is the CFA: nothing else fits
    if (r != nullptr) *r = {kind, offset};
    return true;
  }
  bool restore(uint64_t reg) {
    bool is_sp;
    Rule* r = slot(row, reg, &is_sp);
    if (r != nullptr) *r = *slot(initial, reg, &is_sp);
    return true;
  }
  // A rule the walk cannot follow (another register, an expression, a value rule): harmless
  // for a register it does not track.
  bool untrackable(uint64_t reg) {
    bool is_sp;
    return slot(row, reg, &is_sp) == nullptr && !is_sp;
  }

  // Runs [p, end) until the row for `target` is complete. False: the frame cannot be followed.
  bool run(const uint8_t* p, const uint8_t* end) {
    DwarfReader r{p, end};
    while (r.p < r.end) {
      const uint8_t op = r.u8();
      const uint8_t low = op & 0x3f;
      uint64_t advance = 0;
      bool ok = true;
      switch (op >> 6) {
        case 1:  // DW_CFA_advance_loc
          advance = low;
          break;
        case 2:  // DW_CFA_offset
          ok = set(low, FrameRule::kAtCfa, int64_t(r.uleb()) * fd.data_align);
          break;
        case 3:  // DW_CFA_restore
          ok = restore(low);
          break;
        default:
          switch (op) {
            case 0x00:  // DW_CFA_nop
              break;
            case 0x01: {  // DW_CFA_set_loc
              const uint64_t to = r.encoded(fd.fde_encoding);
              if (!r.ok || to < loc) return false;
              if (to > target) return true;
              loc = to;
              break;
            }
            case 0x02:  // DW_CFA_advance_loc1
              advance = r.fixed(1);
              break;
            case 0x03:  // DW_CFA_advance_loc2
              advance = r.fixed(2);
              break;
            case 0x04:  // DW_CFA_advance_loc4
              advance = r.fixed(4);
              break;
            case 0x05: {  // DW_CFA_offset_extended
              const uint64_t reg = r.uleb();
              ok = set(reg, FrameRule::kAtCfa, int64_t(r.uleb()) * fd.data_align);
              break;
            }
            case 0x06:  // DW_CFA_restore_extended
              ok = restore(r.uleb());
              break;
            case 0x07:  // DW_CFA_undefined
              ok = set(r.uleb(), FrameRule::kUndefined, 0);
              break;
            case 0x08:  // DW_CFA_same_value
              ok = set(r.uleb(), FrameRule::kSame, 0);
              break;
            case 0x09: {  // DW_CFA_register
              const uint64_t reg = r.uleb();
              r.uleb();
              ok = untrackable(reg);
              break;
            }
            case 0x0a:  // DW_CFA_remember_state
              if (depth == 8) return false;
              remembered[depth++] = row;
              break;
            case 0x0b:  // DW_CFA_restore_state
              if (depth == 0) return false;
              row = remembered[--depth];
              break;
            case 0x0c:  // DW_CFA_def_cfa
              row.cfa_register = r.uleb();
              row.cfa_offset = int64_t(r.uleb());
              break;
            case 0x0d:  // DW_CFA_def_cfa_register
              row.cfa_register = r.uleb();
              break;
            case 0x0e:  // DW_CFA_def_cfa_offset
              row.cfa_offset = int64_t(r.uleb());
              break;
            case 0x0f:  // DW_CFA_def_cfa_expression (PLT entries, signal trampolines)
              return false;
            case 0x10: {  // DW_CFA_expression
              const uint64_t reg = r.uleb();
              const uint64_t n = r.uleb();
              if (r.has(n)) r.p += n;
              ok = untrackable(reg);
              break;
            }
            case 0x11: {  // DW_CFA_offset_extended_sf
              const uint64_t reg = r.uleb();
              ok = set(reg, FrameRule::kAtCfa, r.sleb() * fd.data_align);
              break;
            }
            case 0x12:  // DW_CFA_def_cfa_sf
              row.cfa_register = r.uleb();
              row.cfa_offset = r.sleb() * fd.data_align;
              break;
            case 0x13:  // DW_CFA_def_cfa_offset_sf
              row.cfa_offset = r.sleb() * fd.data_align;
              break;
            case 0x14:    // DW_CFA_val_offset
            case 0x15: {  // DW_CFA_val_offset_sf
              const uint64_t reg = r.uleb();
              r.uleb();
              ok = untrackable(reg);
              break;
            }
            case 0x16: {  // DW_CFA_val_expression
              const uint64_t reg = r.uleb();
              const uint64_t n = r.uleb();
              if (r.has(n)) r.p += n;
              ok = untrackable(reg);
              break;
            }
            case 0x2d:  // DW_CFA_AARCH64_negate_ra_state (DW_CFA_GNU_window_save elsewhere)
              if (!Regs::kSignedReturnAddresses) return false;
              row.ra_signed = !row.ra_signed;
              break;
            case 0x2e:  // DW_CFA_GNU_args_size
              r.uleb();
              break;
            case 0x2f: {  // DW_CFA_GNU_negative_offset_extended
              const uint64_t reg = r.uleb();
              ok = set(reg, FrameRule::kAtCfa, -int64_t(r.uleb()) * fd.data_align);
              break;
            }
            default:
              return false;
          }
      }
      if (!ok || !r.ok) return false;
      if (advance != 0) {
        const uint64_t to = loc + advance * fd.code_align;
        if (to > target) return true;  // the row for target is complete
        loc = to;
      }
    }
    return true;
  }
};

bool fits(int64_t v) {
  return v >= INT32_MIN && v <= INT32_MAX;
}

}  // namespace

bool compute_frame_rule(const FrameDescription& fd, uintptr_t target, FrameRule* out) {
  if (fd.signal_frame || fd.ra_register != Regs::kRa) return false;
  Interpreter in(fd, target);
  if (!in.run(fd.cie_instructions, fd.cie_end)) return false;
  in.initial = in.row;
  in.loc = fd.begin;
  if (!in.run(fd.instructions, fd.end)) return false;
  const Row& row = in.row;
  if (row.cfa_register != Regs::kSp && row.cfa_register != Regs::kFp) return false;
  if (!fits(row.cfa_offset) || !fits(row.fp.offset) || !fits(row.ra.offset)) return false;
  out->cfa_is_fp = row.cfa_register == Regs::kFp;
  out->fp = row.fp.kind;
  out->ra = row.ra.kind;
  out->ra_signed = row.ra_signed;
  out->cfa_offset = static_cast<int32_t>(row.cfa_offset);
  out->fp_offset = static_cast<int32_t>(row.fp.offset);
  out->ra_offset = static_cast<int32_t>(row.ra.offset);
  return true;
}

}  // namespace dltrace::preload

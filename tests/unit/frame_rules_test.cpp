// The native-stack walk's table reading and CFI interpretation (eh_frame_index.h, frame_rules.h)
// on hand-made unwind tables: the rows a walk needs, the rules it must refuse, and no read
// outside the bounds it is given (the buffer is exactly sized, so ASan sees any).
#include "frame_rules.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "arch/arch.h"
#include "eh_frame_index.h"

using namespace dltrace::preload;

namespace {

using Regs = arch::DwarfRegisters;
constexpr uint64_t kFunction = 0x1000;  // the function's offset from the table (never read)
constexpr uint32_t kSize = 0x40;

void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  std::memcpy(b.data() + at, &v, 4);
}

// .eh_frame_hdr with one entry, then a CIE ("zR", code 1, data -8, CFA = SP + 8, RA at CFA - 8)
// and an FDE with `fde_instructions`, in one exactly-sized buffer.
std::vector<uint8_t> table(const std::vector<uint8_t>& fde_instructions) {
  std::vector<uint8_t> cie = {0,
                              0,
                              0,
                              0,
                              0,
                              0,
                              0,
                              0,
                              1,
                              'z',
                              'R',
                              0,
                              1,
                              0x78,
                              static_cast<uint8_t>(Regs::kRa),
                              1,
                              0x1b,
                              0x0c,
                              static_cast<uint8_t>(Regs::kSp),
                              8,
                              static_cast<uint8_t>(0x80 | Regs::kRa),
                              1};
  while (cie.size() % 4) cie.push_back(0);  // DW_CFA_nop padding
  put32(cie, 0, static_cast<uint32_t>(cie.size() - 4));
  std::vector<uint8_t> fde = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  fde.insert(fde.end(), fde_instructions.begin(), fde_instructions.end());
  while (fde.size() % 4) fde.push_back(0);
  put32(fde, 0, static_cast<uint32_t>(fde.size() - 4));
  const size_t hdr_size = 20, cie_at = hdr_size, fde_at = cie_at + cie.size();
  put32(fde, 4, static_cast<uint32_t>(fde_at + 4 - cie_at));       // CIE pointer
  put32(fde, 8, static_cast<uint32_t>(kFunction - (fde_at + 8)));  // pc-relative
  put32(fde, 12, kSize);                                           // range
  std::vector<uint8_t> b(hdr_size);
  b[0] = 1, b[1] = 0x1b, b[2] = 0x03, b[3] = 0x3b;
  put32(b, 4, static_cast<uint32_t>(cie_at - 4));
  put32(b, 8, 1);
  put32(b, 12, static_cast<uint32_t>(kFunction));
  put32(b, 16, static_cast<uint32_t>(fde_at));
  b.insert(b.end(), cie.begin(), cie.end());
  b.insert(b.end(), fde.begin(), fde.end());
  return b;
}

struct Lookup {
  bool found = false, ruled = false;
  FrameRule rule{};
};

Lookup at(const std::vector<uint8_t>& b, uint64_t offset) {
  const auto lo = reinterpret_cast<uintptr_t>(b.data());
  Lookup l;
  FrameDescription fd;
  l.found = find_frame_description(b.data(), lo + offset, lo, lo + b.size(), &fd);
  l.ruled = l.found && compute_frame_rule(fd, lo + offset, &l.rule);
  return l;
}

// A prologue: push fp (CFA = SP + 16, fp at CFA - 16), then fp = SP (CFA = FP + 16), then the
// epilogue restores SP-based rules from a remembered state.
const std::vector<uint8_t> kPrologue = {
    0x41,  // advance_loc 1
    0x0e,
    16,  // def_cfa_offset 16
    static_cast<uint8_t>(0x80 | Regs::kFp),
    2,     // offset fp, 2 * -8
    0x43,  // advance_loc 3
    0x0d,
    static_cast<uint8_t>(Regs::kFp),  // def_cfa_register fp
    0x0a,                             // remember_state
    0x48,                             // advance_loc 8 (to 12)
    0x0c,
    static_cast<uint8_t>(Regs::kSp),
    8,                                       // def_cfa sp, 8
    static_cast<uint8_t>(0xc0 | Regs::kFp),  // restore fp
    0x44,                                    // advance_loc 4 (to 16)
    0x0b,                                    // restore_state
};

}  // namespace

TEST_CASE("frame rules follow a prologue row by row", "[stacks]") {
  const std::vector<uint8_t> b = table(kPrologue);
  Lookup l = at(b, kFunction);
  REQUIRE(l.ruled);
  CHECK(!l.rule.cfa_is_fp);
  CHECK(l.rule.cfa_offset == 8);
  CHECK(l.rule.ra == FrameRule::kAtCfa);
  CHECK(l.rule.ra_offset == -8);
  CHECK(l.rule.fp == FrameRule::kSame);

  l = at(b, kFunction + 1);
  REQUIRE(l.ruled);
  CHECK(l.rule.cfa_offset == 16);
  CHECK(l.rule.fp == FrameRule::kAtCfa);
  CHECK(l.rule.fp_offset == -16);

  for (uint64_t pc : {kFunction + 4, kFunction + 11, kFunction + 16, kFunction + kSize - 1}) {
    INFO("pc offset " << pc - kFunction);
    l = at(b, pc);
    REQUIRE(l.ruled);
    CHECK(l.rule.cfa_is_fp);
    CHECK(l.rule.cfa_offset == 16);
    CHECK(l.rule.fp == FrameRule::kAtCfa);
  }
  l = at(b, kFunction + 12);  // the epilogue: SP-based again, fp restored to the CIE's rule
  REQUIRE(l.ruled);
  CHECK(!l.rule.cfa_is_fp);
  CHECK(l.rule.cfa_offset == 8);
  CHECK(l.rule.fp == FrameRule::kSame);

  CHECK(!at(b, kFunction - 1).found);
  CHECK(!at(b, kFunction + kSize).found);
}

TEST_CASE("frame rules refuse what a three-register walk cannot follow", "[stacks]") {
  // DW_CFA_def_cfa_expression (PLT entries, signal trampolines).
  CHECK(!at(table({0x0f, 1, 0x77}), kFunction).ruled);
  // DW_CFA_expression for the return address, DW_CFA_register for the frame pointer.
  CHECK(!at(table({0x10, static_cast<uint8_t>(Regs::kRa), 1, 0x77}), kFunction).ruled);
  CHECK(!at(table({0x09, static_cast<uint8_t>(Regs::kFp), 3}), kFunction).ruled);
  // A CFA in a register that is neither the stack nor the frame pointer.
  CHECK(!at(table({0x0d, 3}), kFunction).ruled);
  // The same for another register is read past: the walk does not track it.
  CHECK(at(table({0x10, 3, 1, 0x77, 0x09, 3, 4}), kFunction).ruled);
  // restore_state without remember_state; an unknown opcode.
  CHECK(!at(table({0x0b}), kFunction).ruled);
  CHECK(!at(table({0x3f}), kFunction).ruled);
  // DW_CFA_undefined on the return address: the outermost frame, a rule of its own.
  const Lookup outermost =
      at(table({static_cast<uint8_t>(0x07), static_cast<uint8_t>(Regs::kRa)}), kFunction);
  REQUIRE(outermost.ruled);
  CHECK(outermost.rule.ra == FrameRule::kUndefined);
}

TEST_CASE("unwind-table reads stay inside the bounds they are given", "[stacks]") {
  const std::vector<uint8_t> good = table(kPrologue);
  // Every shorter bound: nothing found, nothing read past it (ASan would report the read).
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + n);
    cut.shrink_to_fit();
    const auto lo = reinterpret_cast<uintptr_t>(cut.data());
    FrameDescription fd;
    INFO("bound " << n);
    if (n < 20) {
      CHECK(!find_frame_description(cut.data(), lo + kFunction, lo, lo + n, &fd));
      continue;
    }
    if (find_frame_description(cut.data(), lo + kFunction, lo, lo + n, &fd)) {
      FrameRule rule;
      compute_frame_rule(fd, lo + kFunction + 20, &rule);
    }
  }
  // Random corruption of every byte: any answer, but no read outside the buffer.
  std::mt19937 random(16);
  for (int round = 0; round < 20000; ++round) {
    std::vector<uint8_t> b = good;
    for (int k = 0; k < 3; ++k) b[random() % b.size()] = static_cast<uint8_t>(random());
    const auto lo = reinterpret_cast<uintptr_t>(b.data());
    FrameDescription fd;
    const uint64_t pc = lo + kFunction + random() % kSize;
    if (find_frame_description(b.data(), pc, lo, lo + b.size(), &fd)) {
      CHECK(reinterpret_cast<uintptr_t>(fd.instructions) >= lo);
      CHECK(reinterpret_cast<uintptr_t>(fd.end) <= lo + b.size());
      CHECK(reinterpret_cast<uintptr_t>(fd.cie_instructions) >= lo);
      CHECK(reinterpret_cast<uintptr_t>(fd.cie_end) <= lo + b.size());
      FrameRule rule;
      compute_frame_rule(fd, pc, &rule);
    }
  }
}

// Reading .eh_frame_hdr's search table and the CIEs and FDEs it points to (eh_frame_index.h).
#include "eh_frame_index.h"

#include <elf.h>

#include <cstring>

namespace dltrace::preload {

uint64_t DwarfReader::uleb() {
  uint64_t v = 0;
  for (unsigned shift = 0; has(1); shift += 7) {
    const uint8_t b = *p++;
    if (shift < 64) v |= uint64_t(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  return 0;
}

int64_t DwarfReader::sleb() {
  uint64_t v = 0;
  unsigned shift = 0;
  for (; has(1); shift += 7) {
    const uint8_t b = *p++;
    if (shift < 64) v |= uint64_t(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      if (shift + 7 < 64 && (b & 0x40)) v |= ~uint64_t(0) << (shift + 7);
      return static_cast<int64_t>(v);
    }
  }
  return 0;
}

uint64_t DwarfReader::fixed(size_t size) {
  if (!has(size)) return 0;
  uint64_t v = 0;
  std::memcpy(&v, p, size);  // little-endian hosts only (x86-64, AArch64)
  p += size;
  return v;
}

uint64_t DwarfReader::encoded(uint8_t enc) {
  const uintptr_t field = reinterpret_cast<uintptr_t>(p);
  uint64_t v;
  switch (enc & 0x0f) {
    case 0x00:
      v = fixed(sizeof(void*));
      break;
    case 0x02:
      v = fixed(2);
      break;
    case 0x0a:
      v = uint64_t(int64_t(int16_t(fixed(2))));
      break;
    case 0x03:
      v = fixed(4);
      break;
    case 0x0b:
      v = uint64_t(int64_t(int32_t(fixed(4))));
      break;
    case 0x04:
    case 0x0c:
      v = fixed(8);
      break;
    default:
      ok = false;
      return 0;
  }
  switch (enc & 0x70) {
    case 0x00:
      break;
    case 0x10:  // pc-relative: from the field's own address
      v += field;
      break;
    default:
      ok = false;
      return 0;
  }
  if (enc & 0x80) ok = false;  // indirect
  return v;
}

namespace {

// Size of an encoded pointer's value by its DW_EH_PE format nibble; 0 if unsupported.
size_t encoded_size(uint8_t enc) {
  switch (enc & 0x0f) {
    case 0x00:
      return sizeof(void*);  // absptr
    case 0x02:
    case 0x0a:
      return 2;  // udata2, sdata2
    case 0x03:
    case 0x0b:
      return 4;  // udata4, sdata4
    case 0x04:
    case 0x0c:
      return 8;  // udata8, sdata8
    default:
      return 0;
  }
}

// What a CIE says about the FDEs that use it.
struct Cie {
  const uint8_t* instructions = nullptr;
  const uint8_t* end = nullptr;
  uint64_t code_align = 1;
  int64_t data_align = 1;
  uint64_t ra_register = 0;
  uint8_t fde_encoding = 0x00;     // no 'R': absolute pointers
  bool augmentation_data = false;  // 'z': FDEs carry an augmentation data length
  bool signal_frame = false;
};

// Parses the CIE at `cie` within [lo, hi). Understands the "z" augmentations toolchains emit
// (R, L, P, S, B); false for anything else.
bool parse_cie(const uint8_t* cie, uintptr_t lo, uintptr_t hi, Cie* out) {
  if (reinterpret_cast<uintptr_t>(cie) < lo || reinterpret_cast<uintptr_t>(cie) > hi) return false;
  DwarfReader r{cie, reinterpret_cast<const uint8_t*>(hi)};
  const uint32_t length = static_cast<uint32_t>(r.fixed(4));
  if (!r.ok || length == 0 || length == 0xffffffffu || !r.has(length)) return false;
  r.end = r.p + length;
  if (r.fixed(4) != 0) return false;  // CIE id: 0 in .eh_frame
  const uint8_t version = r.u8();
  const uint8_t* aug = r.p;
  while (r.u8() != 0) {
  }
  if (!r.ok || (aug[0] != 'z' && aug[0] != 0)) return false;
  out->code_align = r.uleb();
  out->data_align = r.sleb();
  out->ra_register = version == 1 ? r.u8() : r.uleb();
  out->augmentation_data = aug[0] == 'z';
  if (out->augmentation_data) {
    const uint64_t n = r.uleb();
    if (!r.has(n)) return false;
    const uint8_t* data_end = r.p + n;
    for (const uint8_t* a = aug + 1; *a != 0; ++a) {
      switch (*a) {
        case 'R':
          out->fde_encoding = r.u8();
          break;
        case 'L':
          r.u8();
          break;
        case 'P': {
          const uint8_t enc = r.u8();
          if ((enc & 0x70) == 0x50) return false;  // aligned: not produced by toolchains
          DwarfReader skip{r.p, data_end};
          skip.encoded(enc & 0x0f);  // the personality routine is not needed: only skipped
          if (!skip.ok) return false;
          r.p = skip.p;
          break;
        }
        case 'S':
          out->signal_frame = true;
          break;
        case 'B':
          break;
        default:
          return false;
      }
    }
    r.p = data_end;
  }
  if (!r.ok || encoded_size(out->fde_encoding) == 0) return false;
  out->instructions = r.p;
  out->end = r.end;
  return true;
}

// The FDE pointer encoding declared by a CIE's "zR" augmentation; 0xff if not understood.
uint8_t cie_fde_encoding(const uint8_t* cie) {
  Cie c;
  return parse_cie(cie, 0, ~uintptr_t(0), &c) ? c.fde_encoding : 0xff;
}

// The search table's header: its entry count and first entry, if ld's layout (udata4 count,
// datarel sdata4 entries).
const int32_t* search_table(const uint8_t* hdr, uint32_t* count) {
  if (hdr == nullptr || hdr[0] != 1) return nullptr;
  const uint8_t ptr_enc = hdr[1], count_enc = hdr[2], table_enc = hdr[3];
  const size_t ptr_size = encoded_size(ptr_enc);
  if (ptr_enc == 0xff || ptr_size == 0 || count_enc != 0x03 || table_enc != 0x3b) return nullptr;
  const uint8_t* p = hdr + 4 + ptr_size;
  std::memcpy(count, p, 4);
  return reinterpret_cast<const int32_t*>(p + 4);
}

}  // namespace

CodeView code_view(const dl_phdr_info& info) {
  CodeView o;
  for (int i = 0; i < info.dlpi_phnum; ++i) {
    const ElfW(Phdr)& p = info.dlpi_phdr[i];
    if (p.p_type == PT_GNU_EH_FRAME)
      o.eh_frame_hdr = reinterpret_cast<const uint8_t*>(info.dlpi_addr + p.p_vaddr);
    if (p.p_type == PT_LOAD && (p.p_flags & (PF_X | PF_R)) == (PF_X | PF_R) && o.exec_count < 8)
      o.exec[o.exec_count++] = {info.dlpi_addr + p.p_vaddr, info.dlpi_addr + p.p_vaddr + p.p_memsz};
  }
  return o;
}

void for_each_unwound_function(const uint8_t* hdr, FunctionVisitor visit, void* context) {
  uint32_t count = 0;
  const int32_t* table = search_table(hdr, &count);
  if (table == nullptr) return;
  const uint8_t* last_cie = nullptr;
  uint8_t enc = 0xff;
  for (uint32_t i = 0; i < count; ++i) {
    uintptr_t begin = reinterpret_cast<uintptr_t>(hdr) + intptr_t(table[2 * i]);
    const uint8_t* fde = hdr + table[2 * i + 1];
    uint32_t length, cie_offset;
    std::memcpy(&length, fde, 4);
    if (length == 0xffffffffu) continue;  // 64-bit DWARF: toolchains do not emit it for code
    std::memcpy(&cie_offset, fde + 4, 4);
    const uint8_t* cie = fde + 4 - cie_offset;
    if (cie != last_cie) {
      last_cie = cie;
      enc = cie_fde_encoding(cie);
    }
    size_t n = encoded_size(enc);
    if (enc == 0xff || n == 0) continue;
    DwarfReader r{fde + 8 + n, fde + 8 + 2 * n};
    uint64_t range = r.encoded(enc & 0x0f);  // the range is never pc-relative
    if (visit(begin, range, context)) return;
  }
}

bool find_frame_description(const uint8_t* hdr, uintptr_t pc, uintptr_t lo, uintptr_t hi,
                            FrameDescription* out) {
  const uintptr_t h = reinterpret_cast<uintptr_t>(hdr);
  if (hdr == nullptr || h < lo || hi - h < 16) return false;  // the header's fixed part
  uint32_t count = 0;
  const int32_t* table = search_table(hdr, &count);
  if (table == nullptr || count == 0) return false;
  const uintptr_t t = reinterpret_cast<uintptr_t>(table);
  if (t < lo || t > hi || (hi - t) / 8 < count) return false;
  // The last entry whose initial location is <= pc.
  uint32_t first = 0, n = count;
  while (n > 0) {
    const uint32_t half = n / 2;
    if (h + intptr_t(table[2 * (first + half)]) <= pc) {
      first += half + 1;
      n -= half + 1;
    } else {
      n = half;
    }
  }
  if (first == 0) return false;
  const uintptr_t begin = h + intptr_t(table[2 * (first - 1)]);
  const uint8_t* fde = hdr + table[2 * (first - 1) + 1];
  if (reinterpret_cast<uintptr_t>(fde) < lo || reinterpret_cast<uintptr_t>(fde) > hi) return false;
  DwarfReader r{fde, reinterpret_cast<const uint8_t*>(hi)};
  const uint32_t length = static_cast<uint32_t>(r.fixed(4));
  if (!r.ok || length == 0 || length == 0xffffffffu || !r.has(length)) return false;
  r.end = r.p + length;
  const uint8_t* id_field = r.p;
  const uint32_t cie_offset = static_cast<uint32_t>(r.fixed(4));
  if (!r.ok || cie_offset == 0 || cie_offset > reinterpret_cast<uintptr_t>(id_field)) return false;
  Cie cie;
  if (!parse_cie(id_field - cie_offset, lo, hi, &cie)) return false;
  r.encoded(cie.fde_encoding);  // initial location: the table's value is the one searched
  const uint64_t size = r.encoded(cie.fde_encoding & 0x0f);
  if (cie.augmentation_data) {
    const uint64_t n_aug = r.uleb();
    if (r.has(n_aug)) r.p += n_aug;
  }
  if (!r.ok || pc - begin >= size) return false;
  out->begin = begin;
  out->size = size;
  out->cie_instructions = cie.instructions;
  out->cie_end = cie.end;
  out->instructions = r.p;
  out->end = r.end;
  out->code_align = cie.code_align;
  out->data_align = cie.data_align;
  out->ra_register = cie.ra_register;
  out->fde_encoding = cie.fde_encoding;
  out->signal_frame = cie.signal_frame;
  return true;
}

}  // namespace dltrace::preload

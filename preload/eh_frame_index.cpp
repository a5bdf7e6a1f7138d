// Reading .eh_frame_hdr's search table and the CIEs it points to (eh_frame_index.h): only as far
// as finding where each function begins and how long it is.
#include "eh_frame_index.h"

#include <elf.h>

#include <cstring>

namespace dltrace::preload {
namespace {

uint64_t read_uleb(const uint8_t*& p) {
  uint64_t v = 0;
  for (unsigned shift = 0;; shift += 7) {
    uint8_t b = *p++;
    if (shift < 64) v |= uint64_t(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
}

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

uint64_t read_value(const uint8_t* p, uint8_t enc) {
  switch (enc & 0x0f) {
    case 0x02: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case 0x0a: {
      int16_t v;
      std::memcpy(&v, p, 2);
      return uint64_t(int64_t(v));
    }
    case 0x03: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case 0x0b: {
      int32_t v;
      std::memcpy(&v, p, 4);
      return uint64_t(int64_t(v));
    }
    default: {
      uint64_t v;
      std::memcpy(&v, p, 8);
      return v;
    }
  }
}

// The FDE pointer encoding declared by a CIE's "zR" augmentation; 0xff if not understood.
uint8_t cie_fde_encoding(const uint8_t* cie) {
  uint32_t length;
  std::memcpy(&length, cie, 4);
  if (length == 0 || length == 0xffffffffu) return 0xff;
  const uint8_t* p = cie + 8;  // length, CIE id
  uint8_t version = *p++;
  const char* aug = reinterpret_cast<const char*>(p);
  p += std::strlen(aug) + 1;
  if (aug[0] != 'z' && aug[0] != 0) return 0xff;
  read_uleb(p);  // code alignment
  read_uleb(p);  // data alignment (sleb, but only skipped)
  if (version == 1)
    ++p;
  else
    read_uleb(p);  // return address register
  if (aug[0] == 0) return 0x00;
  read_uleb(p);  // augmentation data length
  for (const char* a = aug + 1; *a != 0; ++a) {
    switch (*a) {
      case 'R':
        return *p;
      case 'L':
        ++p;
        break;
      case 'P': {
        uint8_t enc = *p++;
        size_t n = encoded_size(enc);
        if (n == 0 || (enc & 0x70) == 0x50) return 0xff;  // aligned: not produced by toolchains
        p += n;
        break;
      }
      case 'S':
      case 'B':
        break;
      default:
        return 0xff;
    }
  }
  return 0x00;  // no 'R': absolute pointers
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
  if (hdr == nullptr || hdr[0] != 1) return;
  uint8_t ptr_enc = hdr[1], count_enc = hdr[2], table_enc = hdr[3];
  size_t ptr_size = encoded_size(ptr_enc);
  if (ptr_enc == 0xff || ptr_size == 0 || count_enc != 0x03 || table_enc != 0x3b) return;
  const uint8_t* p = hdr + 4 + ptr_size;
  uint32_t count;
  std::memcpy(&count, p, 4);
  const int32_t* table = reinterpret_cast<const int32_t*>(p + 4);
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
    uint64_t range = read_value(fde + 8 + n, enc & 0x0f);  // the range is never pc-relative
    if (visit(begin, range, context)) return;
  }
}

}  // namespace dltrace::preload

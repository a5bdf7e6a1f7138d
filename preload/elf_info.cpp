#include "elf_info.h"

#include <elf.h>

#include <cstring>

namespace dltrace::preload::elf {

Image from_phdrs(uint64_t base, const ElfW(Phdr) * phdr, uint16_t phnum) {
  Image im{};
  im.base = base;
  im.phdr = phdr;
  im.phnum = phnum;
  uint64_t lo = UINT64_MAX, hi = 0;
  for (uint16_t i = 0; i < phnum; ++i) {
    const auto& p = phdr[i];
    if (p.p_type == PT_LOAD) {
      if (p.p_vaddr < lo) lo = p.p_vaddr;
      if (p.p_vaddr + p.p_memsz > hi) hi = p.p_vaddr + p.p_memsz;
    } else if (p.p_type == PT_DYNAMIC) {
      im.dynamic = reinterpret_cast<const ElfW(Dyn)*>(base + p.p_vaddr);
    }
  }
  if (lo <= hi) {
    im.map_start = base + lo;
    im.map_end = base + hi;
  }
  return im;
}

bool from_link_map(const link_map* lm, Image* out) {
  const auto* eh = reinterpret_cast<const ElfW(Ehdr)*>(lm->l_addr);
  if (lm->l_addr == 0 || reinterpret_cast<uint64_t>(lm->l_ld) < lm->l_addr) return false;
  if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_phentsize != sizeof(ElfW(Phdr)))
    return false;
  *out = from_phdrs(lm->l_addr, reinterpret_cast<const ElfW(Phdr)*>(lm->l_addr + eh->e_phoff),
                    eh->e_phnum);
  return true;
}

namespace {
// d_ptr values are relocated by ld.so, except in the vDSO (and on some arches): an address below
// the mapping is still a vaddr.
uint64_t dyn_ptr(const Image& im, uint64_t value) {
  return value < im.map_start ? value + im.base : value;
}

const char* strtab(const Image& im) {
  if (im.dynamic == nullptr) return nullptr;
  for (const ElfW(Dyn)* d = im.dynamic; d->d_tag != DT_NULL; ++d)
    if (d->d_tag == DT_STRTAB) return reinterpret_cast<const char*>(dyn_ptr(im, d->d_un.d_ptr));
  return nullptr;
}
}  // namespace

const char* soname(const Image& im) {
  const char* str = strtab(im);
  if (str == nullptr) return nullptr;
  for (const ElfW(Dyn)* d = im.dynamic; d->d_tag != DT_NULL; ++d)
    if (d->d_tag == DT_SONAME) return str + d->d_un.d_val;
  return nullptr;
}

void for_each_needed(const Image& im, void (*fn)(const char*, void*), void* arg) {
  const char* str = strtab(im);
  if (str == nullptr) return;
  for (const ElfW(Dyn)* d = im.dynamic; d->d_tag != DT_NULL; ++d)
    if (d->d_tag == DT_NEEDED) fn(str + d->d_un.d_val, arg);
}

bool may_define(const Image& im, uint32_t hash) {
  if (im.dynamic == nullptr) return true;
  const uint32_t* table = nullptr;
  for (const ElfW(Dyn)* d = im.dynamic; d->d_tag != DT_NULL && table == nullptr; ++d)
    if (d->d_tag == DT_GNU_HASH)
      table = reinterpret_cast<const uint32_t*>(dyn_ptr(im, d->d_un.d_ptr));
  if (table == nullptr) return true;
  const uint32_t nbuckets = table[0], bloom_size = table[2], bloom_shift = table[3];
  if (nbuckets == 0 || bloom_size == 0) return false;  // no symbols in the table
  const auto* bloom = reinterpret_cast<const ElfW(Addr)*>(table + 4);
  constexpr uint32_t kBits = sizeof(ElfW(Addr)) * 8;
  const ElfW(Addr) word = bloom[(hash / kBits) % bloom_size];
  const ElfW(Addr) mask =
      (ElfW(Addr){1} << (hash % kBits)) | (ElfW(Addr){1} << ((hash >> bloom_shift) % kBits));
  return (word & mask) == mask;
}

uint32_t build_id(const Image& im, uint8_t* out, uint32_t capacity) {
  for (uint16_t i = 0; i < im.phnum; ++i) {
    const auto& p = im.phdr[i];
    if (p.p_type != PT_NOTE) continue;
    const auto* cur = reinterpret_cast<const unsigned char*>(im.base + p.p_vaddr);
    const unsigned char* end = cur + p.p_memsz;
    const uint64_t align = p.p_align > 4 ? p.p_align : 4;
    while (cur + sizeof(ElfW(Nhdr)) <= end) {
      const auto* n = reinterpret_cast<const ElfW(Nhdr)*>(cur);
      const unsigned char* name = cur + sizeof(ElfW(Nhdr));
      const unsigned char* desc = name + ((n->n_namesz + align - 1) & ~(align - 1));
      if (desc + n->n_descsz > end) break;
      if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
        const uint32_t len = n->n_descsz < capacity ? n->n_descsz : capacity;
        memcpy(out, desc, len);
        return len;
      }
      cur = desc + ((n->n_descsz + align - 1) & ~(align - 1));
    }
  }
  return 0;
}

const char* basename(const char* path) {
  if (path == nullptr) return "";
  const char* slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

}  // namespace dltrace::preload::elf

// Reading a loaded object's program headers and dynamic section in memory: load range, soname,
// DT_NEEDED names, GNU build-id. Pure memory reads: no dl* call, no dlerror, no lock.
#pragma once

#include <link.h>

#include <cstddef>
#include <cstdint>

namespace dltrace::preload::elf {

// Plain data (no member initialisers): the object table holds these in constant-initialised
// static storage that is used before any dynamic initialiser could run.
struct Image {
  uint64_t base;  // l_addr
  const ElfW(Phdr) * phdr;
  uint16_t phnum;
  const ElfW(Dyn) * dynamic;
  uint64_t map_start;  // lowest PT_LOAD address
  uint64_t map_end;    // one past the highest
};

// From dl_iterate_phdr data.
Image from_phdrs(uint64_t base, const ElfW(Phdr) * phdr, uint16_t phnum);
// From a link_map alone (objects in other namespaces): the ELF header is read at l_addr, which
// holds for ET_DYN objects whose first PT_LOAD starts at vaddr 0 (every dlmopen'able library).
bool from_link_map(const link_map* lm, Image* out);

// DT_SONAME, or nullptr.
const char* soname(const Image& image);
// Calls fn(name, arg) for every DT_NEEDED entry, in order.
void for_each_needed(const Image& image, void (*fn)(const char* name, void* arg), void* arg);
// DT_GNU_HASH's hash of a symbol name.
constexpr uint32_t gnu_hash(const char* name) {
  uint32_t h = 5381;
  for (; *name != '\0'; ++name) h = h * 33 + static_cast<unsigned char>(*name);
  return h;
}
// False when the object's DT_GNU_HASH table proves that it defines no symbol of this hash (its
// Bloom filter, two bits per symbol, says no): a lookup can be skipped. True otherwise, also for
// an object without DT_GNU_HASH.
bool may_define(const Image& image, uint32_t hash);
// NT_GNU_BUILD_ID descriptor; returns its length (0 if none), copies at most `capacity` bytes.
uint32_t build_id(const Image& image, uint8_t* out, uint32_t capacity);

// Last path component.
const char* basename(const char* path);

}  // namespace dltrace::preload::elf

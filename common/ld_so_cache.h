// Looking a name up in /etc/ld.so.cache ("glibc-ld.so.cache1.1", possibly after an old
// "ld.so-1.7.0" part), shared by the recorder (override matching, no allocation) and the viewer
// (explaining a failed search). Only entries of the process's ABI (`flags`, from
// LoaderPlatform::cache_flags) without hwcaps are considered; glibc-hwcaps subdirectory variants
// that ld.so would prefer on a capable CPU are skipped (Debian ships none in the cache).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace dltrace {

// The path the cache maps `name` to, pointing into `data`, or nullptr.
inline const char* find_in_ld_so_cache(const unsigned char* data, size_t size, const char* name,
                                       int32_t abi_flags) {
  static constexpr char kNewMagic[] = "glibc-ld.so.cache1.1";
  static constexpr size_t kHeader = 48, kEntry = 24;
  if (data == nullptr) return nullptr;
  const unsigned char* base = data;
  if (size >= 16 && std::memcmp(base, "ld.so-1.7.0", 11) == 0) {
    uint32_t nold;
    std::memcpy(&nold, base + 12, 4);
    size_t skip = 16 + static_cast<size_t>(nold) * 12;
    skip = (skip + 7) & ~size_t{7};
    if (skip >= size) return nullptr;
    base += skip;
    size -= skip;
  }
  if (size < kHeader || std::memcmp(base, kNewMagic, 20) != 0) return nullptr;
  uint32_t nlibs;
  std::memcpy(&nlibs, base + 20, 4);
  if (nlibs > (size - kHeader) / kEntry) return nullptr;
  for (uint32_t i = 0; i < nlibs; ++i) {
    const unsigned char* e = base + kHeader + size_t{i} * kEntry;
    int32_t flags;
    uint32_t key, value;
    uint64_t hwcap;
    std::memcpy(&flags, e, 4);
    std::memcpy(&key, e + 4, 4);
    std::memcpy(&value, e + 8, 4);
    std::memcpy(&hwcap, e + 16, 8);
    if (flags != abi_flags || hwcap != 0 || key >= size || value >= size) continue;
    const char* k = reinterpret_cast<const char*>(base + key);
    if (std::strncmp(k, name, size - key) != 0) continue;
    const char* hit = reinterpret_cast<const char*>(base + value);
    if (strnlen(hit, size - value) == size - value) return nullptr;
    return hit;
  }
  return nullptr;
}

}  // namespace dltrace

#include "common/hwcaps.h"

#include <cstring>

namespace dltrace::common {

void compute_hwcaps_subdirs(HwcapsSubdirs* out) {
  out->count = 0;
  char* store = out->storage;
  char* const store_end = out->storage + sizeof out->storage;
  auto keep = [&](const char* parts[], size_t n) -> const char* {
    char* start = store;
    for (size_t i = 0; i < n; ++i) {
      size_t len = strlen(parts[i]);
      if (store + len + 2 > store_end) return nullptr;
      if (i > 0) *store++ = '/';
      memcpy(store, parts[i], len);
      store += len;
    }
    *store++ = '\0';
    return start;
  };

  const char* levels[8];
  const size_t level_count = arch::glibc_hwcaps_levels(levels, 8);
  for (size_t i = 0; i < level_count && out->count < HwcapsSubdirs::kMax - 1; ++i) {
    const char* parts[] = {"glibc-hwcaps", levels[i]};
    const char* joined = keep(parts, 2);
    if (joined == nullptr) break;
    out->names[out->count++] = joined;
  }

  // Legacy: "tls" and the CPU's names; every subset, largest first, the first name as the most
  // significant bit: tls/a/b, tls/a, tls/b, tls, a/b, a, b, "".
  const char* legacy[8] = {"tls"};
  const size_t legacy_count = 1 + arch::legacy_hwcaps_names(legacy + 1, 7, &out->platform);
  for (unsigned mask = (1u << legacy_count) - 1; mask > 0; --mask) {
    const char* parts[8];
    size_t n = 0;
    for (size_t i = 0; i < legacy_count; ++i)
      if (mask & (1u << (legacy_count - 1 - i))) parts[n++] = legacy[i];
    if (out->count >= HwcapsSubdirs::kMax - 1) break;
    const char* joined = keep(parts, n);
    if (joined == nullptr) break;
    out->names[out->count++] = joined;
  }
  out->names[out->count++] = "";
}

}  // namespace dltrace::common

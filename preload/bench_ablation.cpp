// DLTRACE_ABLATE, read at the first question (libdltrace_ablation.so only: bench_ablation.h).
#include "bench_ablation.h"

#include <stdlib.h>

namespace dltrace::preload::ablation {
namespace {
constexpr unsigned kUnread = ~0u;
constinit unsigned g_parts = kUnread;  // a plain static: no guard, no C++ runtime
}  // namespace

bool left_out(Part part) {
  unsigned parts = __atomic_load_n(&g_parts, __ATOMIC_RELAXED);
  if (parts == kUnread) {
    const char* text = getenv("DLTRACE_ABLATE");
    parts = text ? static_cast<unsigned>(strtoul(text, nullptr, 16)) : 0;
    __atomic_store_n(&g_parts, parts, __ATOMIC_RELAXED);
  }
  return (parts & part) != 0;
}

}  // namespace dltrace::preload::ablation

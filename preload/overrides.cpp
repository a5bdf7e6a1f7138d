// Placeholder until the override issue lands: no rules, flags unchanged.
#include "overrides.h"

namespace dltrace::preload {
const char* load_overrides_from_env() { return nullptr; }
bool apply_overrides(const char*, int flags, const void*, OverrideResult* out) {
  out->flags = flags;
  out->count = 0;
  return false;
}
}  // namespace dltrace::preload

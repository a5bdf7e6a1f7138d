// Flag overrides inside the recorder: the bridge between the dlopen wrappers and the config
// parser (libdltrace_config.so, config_block.h). Loaded once from DLTRACE_CONFIG; with no config
// every call is one branch.
#pragma once

#include <cstdint>

namespace dltrace::preload {

struct AppliedOverride {
  uint32_t line;  // line of the rule's [[override]] header
  int32_t flags_before;
  int32_t flags_after;
};

struct OverrideResult {
  int32_t flags = 0;  // effective flags
  uint32_t count = 0;
  AppliedOverride applied[8];
};

// The config parser library: beside libdltrace.so ($ORIGIN is the directory of the object that
// calls dlopen, this one, wherever it was preloaded from).
inline constexpr const char kConfigLibrary[] = "$ORIGIN/libdltrace_config.so";

// Reads DLTRACE_CONFIG, once. Only then is the parser `library` loaded (RTLD_LOCAL), asked for
// the rules as plain data and unloaded again. A config that cannot be read or parsed (or a parser
// library that cannot be loaded) leaves no rules at all and prints one
// "dltrace: FILE:LINE:COL: message" line on stderr. Returns the config path or nullptr.
const char* load_overrides_from_env(const char* library = kConfigLibrary);

// Applies every matching rule, in file order, to `flags` for a dlopen/dlmopen of `file` made by
// code at `caller_ip`. Returns true when at least one rule matched. Never calls a dl* function
// that touches dlerror state.
bool apply_overrides(const char* file, int flags, const void* caller_ip, OverrideResult* out);

}  // namespace dltrace::preload

// The override config as libdltrace_config.so hands it to the recorder: one block of plain data
// (no C++ types cross the boundary), so that the TOML parser and its C++ runtime stay out of
// libdltrace.so, which every traced process maps. The recorder loads the parser library
// (RTLD_LOCAL) only when DLTRACE_CONFIG is set, calls kLoadSymbol once, takes the block
// and unloads the library again (overrides.cpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace dltrace::config_block {

// Bumped with any change to the layout below; it is also in the function's name, so a recorder
// and a parser library from different builds refuse each other instead of misreading.
inline constexpr uint32_t kVersion = 1;
inline constexpr const char kLoadSymbol[] = "dltrace_config_load_v1";

// One [[override]]: the flag change and where its patterns' text lies in the block.
struct Rule {
  uint32_t line;  // line and column of the rule's [[override]] header
  uint32_t col;
  uint32_t match_offset;  // from the start of the block
  uint32_t match_size;
  uint32_t caller_offset;
  uint32_t caller_size;  // 0 with has_caller == 0
  int32_t set;
  int32_t add;
  int32_t remove;
  uint8_t has_set;
  uint8_t add_local;
  uint8_t remove_local;
  uint8_t has_caller;
};

// Block header; `rule_count` Rules follow it, then the patterns' text.
struct Header {
  uint32_t version;  // kVersion
  uint32_t rule_count;
  uint64_t size;  // of the whole block
};

inline const Rule* rules_of(const Header* h) {
  return reinterpret_cast<const Rule*>(h + 1);
}

}  // namespace dltrace::config_block

// What the parser library exports (its only export). Parses the config at `path` (a missing,
// unreadable or malformed file is an error: nothing of it is used). On success returns the block,
// allocated with libc's malloc: the caller owns it and frees it with free(). On failure returns
// nullptr and writes the one error line ("FILE:LINE:COL: message") into error (NUL-terminated).
// Never throws, never blocks.
extern "C" {
using DltraceConfigLoadFn = dltrace::config_block::Header* (*)(const char* path, char* error,
                                                               size_t error_size);
}

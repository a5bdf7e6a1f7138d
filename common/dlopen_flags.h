// dlopen mode flags: names, decoding and parsing, shared by the recorder, the config parser
// and the viewer so that a flag is spelled the same everywhere.
#pragma once

#include <dlfcn.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dltrace {

struct FlagName {
  const char* name;
  int value;
};

// The flags the config file may name, in the order they are printed.
inline constexpr FlagName kFlagNames[] = {
    {"RTLD_LAZY", RTLD_LAZY},         {"RTLD_NOW", RTLD_NOW},
    {"RTLD_GLOBAL", RTLD_GLOBAL},     {"RTLD_LOCAL", RTLD_LOCAL},
    {"RTLD_NODELETE", RTLD_NODELETE}, {"RTLD_NOLOAD", RTLD_NOLOAD},
    {"RTLD_DEEPBIND", RTLD_DEEPBIND},
};

// Returns true and sets *value when `name` is one of kFlagNames.
inline bool parse_flag_name(std::string_view name, int* value) {
  for (const auto& f : kFlagNames) {
    if (name == f.name) {
      *value = f.value;
      return true;
    }
  }
  return false;
}

// "RTLD_NOW|RTLD_LOCAL", "RTLD_LAZY|RTLD_GLOBAL|RTLD_NODELETE", unknown bits as hex, into buf
// (NUL-terminated, cut to fit; 96 bytes always suffice). Allocates nothing (the recorder's live
// printer). Returns the length.
inline size_t flags_to_text(int flags, char* buf, size_t size) {
  if (size == 0) return 0;
  size_t n = 0;
  auto add = [&](const char* s) {
    if (n != 0 && n + 1 < size) buf[n++] = '|';
    while (*s != '\0' && n + 1 < size) buf[n++] = *s++;
  };
  const int mode = flags & RTLD_BINDING_MASK;
  if (mode == RTLD_LAZY)
    add("RTLD_LAZY");
  else if (mode == RTLD_NOW)
    add("RTLD_NOW");
  else if (mode != 0)
    add("RTLD_LAZY|RTLD_NOW");
  add((flags & RTLD_GLOBAL) ? "RTLD_GLOBAL" : "RTLD_LOCAL");
  if (flags & RTLD_NODELETE) add("RTLD_NODELETE");
  if (flags & RTLD_NOLOAD) add("RTLD_NOLOAD");
  if (flags & RTLD_DEEPBIND) add("RTLD_DEEPBIND");
  const int known = RTLD_BINDING_MASK | RTLD_GLOBAL | RTLD_NODELETE | RTLD_NOLOAD | RTLD_DEEPBIND;
  if (int rest = flags & ~known) {
    char hex[24];
    const char* digits = "0123456789abcdef";
    int k = 0;
    unsigned v = static_cast<unsigned>(rest);
    char tmp[16];
    do {
      tmp[k++] = digits[v & 15];
      v >>= 4;
    } while (v != 0);
    int h = 0;
    hex[h++] = '0';
    hex[h++] = 'x';
    while (k > 0) hex[h++] = tmp[--k];
    hex[h] = '\0';
    add(hex);
  }
  buf[n] = '\0';
  return n;
}

// The same as a string (the viewer).
inline std::string flags_to_string(int flags) {
  char buf[128];
  return std::string(buf, flags_to_text(flags, buf, sizeof buf));
}

}  // namespace dltrace

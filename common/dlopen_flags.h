// dlopen mode flags: names, decoding and parsing, shared by the recorder, the config parser
// and the viewer so that a flag is spelled the same everywhere.
#pragma once

#include <dlfcn.h>

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

// "RTLD_NOW|RTLD_LOCAL", "RTLD_LAZY|RTLD_GLOBAL|RTLD_NODELETE", unknown bits as hex.
inline std::string flags_to_string(int flags) {
  std::string out;
  auto add = [&out](std::string_view s) {
    if (!out.empty()) out += '|';
    out += s;
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
    char buf[24];
    const char* digits = "0123456789abcdef";
    int n = 0;
    unsigned v = static_cast<unsigned>(rest);
    char tmp[16];
    do {
      tmp[n++] = digits[v & 15];
      v >>= 4;
    } while (v != 0);
    int k = 0;
    buf[k++] = '0';
    buf[k++] = 'x';
    while (n > 0) buf[k++] = tmp[--n];
    add(std::string_view(buf, static_cast<size_t>(k)));
  }
  return out;
}

}  // namespace dltrace

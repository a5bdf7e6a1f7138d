#include "common/config_error.h"

#include <cstdio>
#include <cstring>

namespace dltrace::config {

size_t format_error_line_to(char* buf, size_t size, std::string_view file, uint32_t line,
                            uint32_t col, std::string_view message) {
  if (size == 0) return 0;
  size_t n = 0;
  // Control characters (a newline in a quoted key or flag name, an escape sequence) are shown
  // escaped: the error is always exactly one line.
  const auto put = [&](std::string_view text) {
    for (char ch : text) {
      const auto u = static_cast<unsigned char>(ch);
      char esc[5] = {ch, 0, 0, 0, 0};
      if (u < 0x20 || u == 0x7f) {
        static constexpr char kHex[] = "0123456789abcdef";
        esc[0] = '\\';
        esc[1] = 'x';
        esc[2] = kHex[u >> 4];
        esc[3] = kHex[u & 15];
      }
      const size_t len = std::strlen(esc);
      if (n + len >= size) return;
      std::memcpy(buf + n, esc, len);
      n += len;
    }
  };
  put(file);
  if (line != 0) {
    char where[32];
    std::snprintf(where, sizeof where, ":%u:%u", line, col);
    put(where);
  }
  put(": ");
  put(message);
  buf[n] = '\0';
  return n;
}

}  // namespace dltrace::config

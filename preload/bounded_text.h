// Text: bounded appending into a caller's buffer, without malloc or stdio (the recorder runs
// before main, in fork children and in signal handlers). The result is always NUL-terminated;
// `overflow` tells that something did not fit.
#pragma once

#include <string.h>

#include <cstddef>
#include <cstdint>

namespace dltrace::preload {

struct Text {
  char* buf;
  size_t cap;
  size_t len = 0;
  bool overflow = false;
  Text(char* b, size_t c) : buf(b), cap(c) {
    if (cap) buf[0] = '\0';
  }
  Text& add(const char* s, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (len + 1 >= cap) {
        overflow = true;
        break;
      }
      buf[len++] = s[i];
    }
    if (cap) buf[len < cap ? len : cap - 1] = '\0';
    return *this;
  }
  Text& add(const char* s) { return s ? add(s, strlen(s)) : *this; }
  // Tabs and newlines (a line's field and record separators) become spaces.
  Text& add_flat(const char* s) {
    const size_t from = len;
    add(s);
    for (size_t i = from; i < len; ++i)
      if (buf[i] == '\t' || buf[i] == '\n') buf[i] = ' ';
    return *this;
  }
  Text& add(uint64_t v) {
    char digits[24];
    size_t n = 0;
    do {
      digits[n++] = char('0' + v % 10);
      v /= 10;
    } while (v);
    char out[24];
    for (size_t i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
    return add(out, n);
  }
};

}  // namespace dltrace::preload

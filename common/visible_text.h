// How a string from a trace is shown in text output (the viewer's text commands and the
// recorder's DLTRACE_LIVE lines): every byte visible, nothing a terminal acts on, and one
// spelling per byte string so two different names never print alike. Header-only and libc-free
// (no allocation): the recorder uses it too.
//
//   printable ASCII, except '\'          as is
//   '\'                                  \\                  (so "\x1b" typed in a name differs
//                                                              from an escaped ESC)
//   C0 controls, DEL, bytes that are not
//   part of well-formed UTF-8            \xHH                (lowercase hex)
//   well-formed UTF-8                    as is, except the code points below
//   C1 controls (U+0080-U+009F), bidi
//   and invisible format characters      \uHHHH
//   (U+061C, U+200B-U+200F, U+2028-U+202E,
//   U+2060-U+2069, U+FEFF)
#pragma once

#include <cstddef>
#include <cstdint>

namespace dltrace::visible {

// The length of the well-formed UTF-8 sequence at s[0..n) (2-4 bytes: no overlong forms, no
// surrogates, nothing above U+10FFFF) with its code point in *cp; 0 if it is not one.
inline size_t utf8_sequence(const unsigned char* s, size_t n, uint32_t* cp) {
  const unsigned char b = s[0];
  size_t len = 0;
  uint32_t c = 0, min = 0;
  if (b >= 0xc2 && b <= 0xdf) {
    len = 2, c = b & 0x1fu, min = 0x80;
  } else if (b >= 0xe0 && b <= 0xef) {
    len = 3, c = b & 0x0fu, min = 0x800;
  } else if (b >= 0xf0 && b <= 0xf4) {
    len = 4, c = b & 0x07u, min = 0x10000;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    c = (c << 6) | (s[i] & 0x3fu);
  }
  if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
  *cp = c;
  return len;
}

// Code points that are well-formed but act on the terminal or hide/reorder text.
inline bool invisible_code_point(uint32_t c) {
  return (c >= 0x80 && c <= 0x9f) || c == 0x61c || (c >= 0x200b && c <= 0x200f) ||
         (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x2069) || c == 0xfeff;
}

// Calls emit(const char* data, size_t size, bool escaped) with the pieces of the escaped form of
// s[0..n), in order: runs of bytes shown as they are (escaped false) and escapes.
template <typename Emit>
void escape(const char* text, size_t n, Emit&& emit) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto* s = reinterpret_cast<const unsigned char*>(text);
  size_t run = 0;  // start of the pending run of bytes shown as they are
  size_t i = 0;
  auto flush = [&](size_t end) {
    if (end > run) emit(text + run, end - run, false);
  };
  while (i < n) {
    const unsigned char b = s[i];
    if (b >= 0x20 && b < 0x7f && b != '\\') {
      ++i;
      continue;
    }
    if (b == '\\') {
      flush(i);
      emit("\\\\", 2, true);
      run = ++i;
      continue;
    }
    uint32_t cp = 0;
    const size_t len = b >= 0x80 ? utf8_sequence(s + i, n - i, &cp) : 0;
    if (len && !invisible_code_point(cp)) {
      i += len;
      continue;
    }
    flush(i);
    if (len) {
      const char u[6] = {
          '\\',         'u', kHex[(cp >> 12) & 15], kHex[(cp >> 8) & 15], kHex[(cp >> 4) & 15],
          kHex[cp & 15]};
      emit(u, 6, true);
      i += len;
    } else {
      const char x[4] = {'\\', 'x', kHex[b >> 4], kHex[b & 15]};
      emit(x, 4, true);
      ++i;
    }
    run = i;
  }
  flush(n);
}

// Whether escape() would change s[0..n).
inline bool needs_escape(const char* text, size_t n) {
  bool changed = false;
  escape(text, n, [&](const char*, size_t, bool escaped) { changed = changed || escaped; });
  return changed;
}

// The escaped form of s[0..n) into out[0..cap), cut before an escape that would not fit and
// NUL-terminated (cap > 0). Returns the length written.
inline size_t escape_to(const char* text, size_t n, char* out, size_t cap) {
  if (cap == 0) return 0;
  size_t used = 0;
  bool full = false;
  escape(text, n, [&](const char* piece, size_t size, bool escaped) {
    if (full) return;
    size_t take = size;
    if (used + take > cap - 1) {
      full = true;
      if (escaped) return;
      take = cap - 1 - used;
      // Not inside a UTF-8 sequence.
      while (take > 0 && (static_cast<unsigned char>(piece[take]) & 0xc0) == 0x80) --take;
    }
    for (size_t k = 0; k < take; ++k) out[used + k] = piece[k];
    used += take;
  });
  out[used] = '\0';
  return used;
}

}  // namespace dltrace::visible

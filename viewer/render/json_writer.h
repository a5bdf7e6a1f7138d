// A small streaming JSON writer: no DOM, because a trace can hold ten million events and the
// export must stream them at millions per second. Output is buffered and flushed to a FILE* in
// large blocks (or kept in memory for tests). Strings are escaped per RFC 8259 and always come
// out as valid UTF-8: invalid byte sequences (paths are bytes, not text) become U+FFFD.
#pragma once

#include <charconv>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace dltrace::viewer {

class JsonWriter {
 public:
  // nullptr: keep everything in memory, see str().
  explicit JsonWriter(std::FILE* out = nullptr) : out_(out) {
    if (out_) buf_.reserve(kFlushAt + 4096);
  }
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  void begin_object() { separate(); buf_ += '{'; need_comma_ = false; }
  void end_object() { buf_ += '}'; closed(); }
  void begin_array() { separate(); buf_ += '['; need_comma_ = false; }
  void end_array() { buf_ += ']'; closed(); }

  // Object member name; the next call writes its value.
  JsonWriter& key(std::string_view name) {
    separate();
    append_string(name);
    buf_ += ':';
    need_comma_ = false;
    return *this;
  }

  void value(std::string_view s) { separate(); append_string(s); closed(); }
  void value(const char* s) { value(std::string_view(s)); }  // not the bool overload
  void value(bool b) { separate(); buf_ += b ? "true" : "false"; closed(); }
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  void value(T v) {
    separate();
    char tmp[24];
    auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
    buf_.append(tmp, r.ptr);
    closed();
  }
  void null() { separate(); buf_ += "null"; closed(); }
  // Addresses: "0x7f12..." (JSON numbers lose precision above 2^53).
  void hex(uint64_t v);
  // An already rendered JSON value (cached fragments).
  void raw(std::string_view json) { separate(); buf_ += json; closed(); }
  // Ends one top-level value in JSON Lines output.
  void end_line() { buf_ += '\n'; need_comma_ = false; maybe_flush(); }

  // Writes everything out; reports a write error (disk full, closed pipe).
  absl::Status finish();
  // In-memory mode: the output so far.
  const std::string& str() const { return buf_; }

  // Appends `s` as a quoted, escaped JSON string to `out` (exposed for fragment caches/tests).
  static void append_string(std::string& out, std::string_view s);

 private:
  static constexpr size_t kFlushAt = 1 << 20;

  void separate() {
    if (need_comma_) buf_ += ',';
  }
  void closed() {
    need_comma_ = true;
    if (buf_.size() >= kFlushAt) maybe_flush();
  }
  void append_string(std::string_view s) { append_string(buf_, s); }
  void maybe_flush();

  std::FILE* out_;
  std::string buf_;
  bool need_comma_ = false;
  bool write_failed_ = false;
};

}  // namespace dltrace::viewer

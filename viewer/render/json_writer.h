// A small streaming JSON writer: no DOM, because a trace can hold ten million events and the
// export must stream them at millions per second. Output goes into a flat buffer written with
// raw pointer stores (std::string::push_back per byte was the bottleneck) and flushed to a FILE*
// in large blocks, or kept in memory for tests. Large cached fragments (raw_stable) are not
// copied into that buffer: the writer keeps a list of pieces (runs of its buffer and pointers to
// the fragments) and hands them to the file descriptor with writev. Strings are escaped per
// RFC 8259 and always come out as valid UTF-8: invalid byte sequences (paths are bytes, not
// text) become U+FFFD.
#pragma once

#include <charconv>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace dltrace::viewer {

// Formatting into a raw buffer whose room the caller has checked: the writer's values and the
// exporter's per-event members, which keep the output position in a register this way (a store
// through JsonWriter's members is a char store that may alias them, so each one reloads them).
namespace json_text {

constexpr size_t kMaxNumber = 20;  // digits of a 64-bit integer, with a sign
constexpr size_t kMaxHex = 20;     // "0x" and 16 digits, quoted

// A literal copied as is (trusted: no quotes or backslashes that need escaping).
template <size_t N>
inline char* literal(char* p, const char (&s)[N]) {
  std::memcpy(p, s, N - 1);
  return p + N - 1;
}
inline char* bytes(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}
template <std::integral T>
requires(!std::same_as<T, bool>) inline char* number(char* p, T v) {
  return std::to_chars(p, p + kMaxNumber + 1, v).ptr;
}
inline char* boolean(char* p, bool b) {
  return b ? literal(p, "true") : literal(p, "false");
}
// "0x7f12...": addresses are strings (JSON numbers lose precision above 2^53).
char* hex(char* p, uint64_t v);

}  // namespace json_text

class JsonWriter {
 public:
  // nullptr: keep everything in memory, see str().
  explicit JsonWriter(std::FILE* out = nullptr);
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  void begin_object() {
    separate();
    put('{');
    need_comma_ = false;
  }
  void end_object() {
    put('}');
    closed();
  }
  void begin_array() {
    separate();
    put('[');
    need_comma_ = false;
  }
  void end_array() {
    put(']');
    closed();
  }

  // Object member name given as a literal: trusted to need no escaping (plain ASCII, no quotes
  // or backslashes), so it is copied as is. Keys are most of the bytes of an export.
  template <size_t N>
  JsonWriter& key(const char (&name)[N]) {
    char* p = room(N + 3);
    if (need_comma_) *p++ = ',';
    *p++ = '"';
    std::memcpy(p, name, N - 1);
    p += N - 1;
    *p++ = '"';
    *p++ = ':';
    pos_ = static_cast<size_t>(p - buf_.data());
    need_comma_ = false;
    return *this;
  }
  // Object member name computed at run time: escaped.
  JsonWriter& key(std::string_view name) {
    separate();
    put_string(name);
    put(':');
    need_comma_ = false;
    return *this;
  }

  void value(std::string_view s) {
    separate();
    put_string(s);
    closed();
  }
  void value(const char* s) { value(std::string_view(s)); }  // not the bool overload
  void value(bool b) {
    separate();
    put(b ? std::string_view("true") : std::string_view("false"));
    closed();
  }
  template <std::integral T>
  requires(!std::same_as<T, bool>) void value(T v) {
    raw_end(json_text::number(raw_begin(json_text::kMaxNumber), v));
  }
  void null() {
    char* p = room(5);
    if (need_comma_) *p++ = ',';
    std::memcpy(p, "null", 4);
    pos_ = static_cast<size_t>(p + 4 - buf_.data());
    closed();
  }
  // Addresses: "0x7f12..." (JSON numbers lose precision above 2^53).
  void hex(uint64_t v) { raw_end(json_text::hex(raw_begin(json_text::kMaxHex), v)); }
  // An already rendered JSON value (cached fragments).
  void raw(std::string_view json) {
    separate();
    put(json);
    closed();
  }
  // The same for a fragment whose bytes stay where they are, unchanged, until generation()
  // differs from its value at this call: a large one is written out from there instead of being
  // copied (a stack's JSON, 2-4 KB on every event, is most of an export).
  void raw_stable(std::string_view json) {
    if (json.size() < kMinReference || out_ == nullptr) {
      raw(json);
    } else {
      reference(json);
    }
  }
  // Whether raw_stable() may point at its argument (only when streaming to a FILE).
  bool may_reference() const { return out_ != nullptr; }
  // Changes whenever the output so far has been handed to the FILE.
  uint64_t generation() const { return generation_; }
  // Bytes handed to the FILE so far.
  uint64_t bytes_written() const { return bytes_written_; }
  // Output formatted by the caller (json_text): raw_begin() writes the separator if one is due
  // and returns room for n more bytes; raw_end() takes the end of what was written there, which
  // ended with a value, raw_end_key() one that ended with a member name.
  char* raw_begin(size_t n) {
    char* p = room(n + 1);
    if (need_comma_) *p++ = ',';
    return p;
  }
  void raw_end(char* end) {
    pos_ = static_cast<size_t>(end - buf_.data());
    closed();
  }
  void raw_end_key(char* end) {
    pos_ = static_cast<size_t>(end - buf_.data());
    need_comma_ = false;
  }
  // Ends one top-level value in JSON Lines output.
  void end_line() {
    put('\n');
    need_comma_ = false;
    maybe_flush();
  }

  // Writes everything out; reports a write error (disk full, closed pipe).
  absl::Status finish();
  // In-memory mode: the output so far.
  std::string_view str() const { return {buf_.data(), pos_}; }

  // Appends `s` as a quoted, escaped JSON string to `out` (exposed for tests).
  static void append_string(std::string& out, std::string_view s);

 private:
  static constexpr size_t kFlushAt = 1 << 20;
  // Below this, a fragment is cheaper to copy than to give its own iovec.
  static constexpr size_t kMinReference = 256;
  // Pieces per flush: writev takes at most IOV_MAX (1024 on Linux) at a time.
  static constexpr size_t kMaxPieces = 1024;

  // A run of the output: buf_[offset, offset + size) if data is null, else [data, data + size).
  struct Piece {
    const char* data;
    size_t offset;
    size_t size;
  };

  // A pointer to at least n writable bytes at the end of the output.
  char* room(size_t n) {
    if (buf_.size() - pos_ < n) grow(n);
    return buf_.data() + pos_;
  }
  void grow(size_t n);
  void put(char c) {
    *room(1) = c;
    ++pos_;
  }
  void put(std::string_view s) {
    std::memcpy(room(s.size()), s.data(), s.size());
    pos_ += s.size();
  }
  void put_string(std::string_view s);
  void separate() {
    if (need_comma_) put(',');
  }
  void closed() {
    need_comma_ = true;
    if (pos_ >= kFlushAt) maybe_flush();
  }
  void maybe_flush();
  void reference(std::string_view json);
  void write_out();
  bool write_pieces(int fd);

  std::FILE* out_;
  std::string buf_;  // used as a raw byte buffer: size() is the capacity, pos_ the length
  size_t pos_ = 0;
  bool need_comma_ = false;
  bool write_failed_ = false;
  int write_errno_ = 0;
  std::vector<Piece> pieces_;  // what goes out before buf_[piece_end_, pos_)
  size_t piece_end_ = 0;       // where the buffer's bytes not yet in pieces_ start
  uint64_t generation_ = 0;
  uint64_t bytes_written_ = 0;
};

}  // namespace dltrace::viewer

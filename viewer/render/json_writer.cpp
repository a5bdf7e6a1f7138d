#include "render/json_writer.h"

#include <cerrno>
#include <cstring>

namespace dltrace::viewer {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence starting at s[i] (2..4), or 0 if it is not one.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // UTF-16 surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return len;
}

}  // namespace

void JsonWriter::append_string(std::string& out, std::string_view s) {
  out += '"';
  size_t run = 0;  // start of the pending run of bytes that need no escaping
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      if (size_t len = utf8_sequence_length(s, i); len != 0) {
        i += len;  // valid multi-byte character: copied verbatim with the run
        continue;
      }
    }
    out.append(s.data() + run, i - run);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          const char esc[6] = {'\\', 'u', '0', '0', kHexDigits[c >> 4], kHexDigits[c & 15]};
          out.append(esc, 6);
        } else {
          out += kReplacement;  // a byte that does not start a valid UTF-8 sequence
        }
    }
    ++i;
    run = i;
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

void JsonWriter::hex(uint64_t v) {
  separate();
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = kHexDigits[v & 15];
    v >>= 4;
  } while (v != 0);
  char out[24] = {'"', '0', 'x'};
  int k = 3;
  while (n > 0) out[k++] = tmp[--n];
  out[k++] = '"';
  buf_.append(out, static_cast<size_t>(k));
  closed();
}

void JsonWriter::maybe_flush() {
  if (out_ == nullptr || buf_.size() < kFlushAt) return;
  if (!write_failed_ && std::fwrite(buf_.data(), 1, buf_.size(), out_) != buf_.size()) {
    write_failed_ = true;
  }
  buf_.clear();
}

absl::Status JsonWriter::finish() {
  if (out_ == nullptr) return absl::OkStatus();
  if (!write_failed_ && !buf_.empty() &&
      std::fwrite(buf_.data(), 1, buf_.size(), out_) != buf_.size()) {
    write_failed_ = true;
  }
  buf_.clear();
  if (std::fflush(out_) != 0) write_failed_ = true;
  if (write_failed_) {
    return absl::DataLossError(std::string("cannot write the output: ") + std::strerror(errno));
  }
  return absl::OkStatus();
}

}  // namespace dltrace::viewer

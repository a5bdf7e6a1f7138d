#include "render/json_writer.h"

#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
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

// 1 for the bytes that cannot be copied verbatim: controls, '"', '\\' and non-ASCII (checked).
constexpr auto kSpecial = [] {
  std::array<unsigned char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 1;
  t['"'] = 1;
  t['\\'] = 1;
  for (int c = 0x80; c < 0x100; ++c) t[c] = 1;
  return t;
}();

// Writes `s` quoted and escaped at dst, which has room for 6 * s.size() + 2 bytes; returns the end.
char* escape_into(char* dst, std::string_view s) {
  *dst++ = '"';
  size_t run = 0;  // start of the pending run of bytes copied verbatim
  auto flush_run = [&](size_t end) {
    if (end == run) return;  // an empty string_view may have no data at all (memcpy from null)
    std::memcpy(dst, s.data() + run, end - run);
    dst += end - run;
  };
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (!kSpecial[c]) {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      if (size_t len = utf8_sequence_length(s, i); len != 0) {
        i += len;  // valid multi-byte character: copied verbatim with the run
        continue;
      }
    }
    flush_run(i);
    *dst++ = '\\';
    switch (c) {
      case '"':
        *dst++ = '"';
        break;
      case '\\':
        *dst++ = '\\';
        break;
      case '\b':
        *dst++ = 'b';
        break;
      case '\f':
        *dst++ = 'f';
        break;
      case '\n':
        *dst++ = 'n';
        break;
      case '\r':
        *dst++ = 'r';
        break;
      case '\t':
        *dst++ = 't';
        break;
      default:
        if (c < 0x20) {
          const char esc[5] = {'u', '0', '0', kHexDigits[c >> 4], kHexDigits[c & 15]};
          std::memcpy(dst, esc, 5);
          dst += 5;
        } else {
          --dst;  // no backslash: a byte that does not start a valid UTF-8 sequence
          std::memcpy(dst, kReplacement.data(), kReplacement.size());
          dst += kReplacement.size();
        }
    }
    ++i;
    run = i;
  }
  flush_run(s.size());
  *dst++ = '"';
  return dst;
}

}  // namespace

char* json_text::hex(char* p, uint64_t v) {
  // Two digits per step from a table: addresses are 12 digits, on every event.
  static constexpr auto kPairs = [] {
    std::array<char, 512> t{};
    for (int i = 0; i < 256; ++i) {
      t[2 * i] = kHexDigits[i >> 4];
      t[2 * i + 1] = kHexDigits[i & 15];
    }
    return t;
  }();
  const int digits = v ? (64 - __builtin_clzll(v) + 3) / 4 : 1;
  std::memcpy(p, "\"0x", 3);
  char* end = p + 3 + digits;
  char* q = end;
  for (; v >= 16; v >>= 8) {
    q -= 2;
    std::memcpy(q, &kPairs[2 * (v & 0xff)], 2);
  }
  if (q != p + 3) *--q = kHexDigits[v];  // an odd number of digits
  *end = '"';
  return end + 1;
}

JsonWriter::JsonWriter(std::FILE* out) : out_(out) {
  buf_.resize(out_ ? kFlushAt + 64 * 1024 : 256);
}

void JsonWriter::grow(size_t n) {
  buf_.resize(std::max(buf_.size() * 2, pos_ + n));
}

void JsonWriter::put_string(std::string_view s) {
  char* end = escape_into(room(6 * s.size() + 2), s);
  pos_ = static_cast<size_t>(end - buf_.data());
}

void JsonWriter::append_string(std::string& out, std::string_view s) {
  const size_t old = out.size();
  out.resize(old + 6 * s.size() + 2);
  char* end = escape_into(out.data() + old, s);
  out.resize(static_cast<size_t>(end - out.data()));
}

void JsonWriter::reference(std::string_view json) {
  separate();
  if (pos_ > piece_end_) pieces_.push_back({nullptr, piece_end_, pos_ - piece_end_});
  pieces_.push_back({json.data(), 0, json.size()});
  piece_end_ = pos_;
  closed();
  if (pieces_.size() + 1 >= kMaxPieces) write_out();  // + 1: the buffer's run after it
}

void JsonWriter::maybe_flush() {
  if (out_ == nullptr || pos_ < kFlushAt) return;
  write_out();
}

// Hands every piece to the FILE, in order. A FILE with a descriptor gets them with writev
// (after its own buffer, to keep the order of anything printed through it before); one without
// (fopencookie, fmemopen) gets one fwrite per piece.
void JsonWriter::write_out() {
  if (pos_ > piece_end_) pieces_.push_back({nullptr, piece_end_, pos_ - piece_end_});
  if (!write_failed_ && !pieces_.empty()) {
    const int fd = fileno(out_);
    bool ok = true;
    if (fd >= 0) {
      ok = std::fflush(out_) == 0 && write_pieces(fd);
    } else {
      for (const Piece& p : pieces_) {
        const char* data = p.data ? p.data : buf_.data() + p.offset;
        if (std::fwrite(data, 1, p.size, out_) != p.size) {
          ok = false;
          break;
        }
      }
    }
    if (ok) {
      for (const Piece& p : pieces_) bytes_written_ += p.size;
    } else {
      write_failed_ = true;
      write_errno_ = errno;
    }
  }
  pieces_.clear();
  pos_ = 0;
  piece_end_ = 0;
  ++generation_;
}

bool JsonWriter::write_pieces(int fd) {
  std::vector<iovec> iov;
  iov.reserve(pieces_.size());
  for (const Piece& p : pieces_) {
    const char* data = p.data ? p.data : buf_.data() + p.offset;
    iov.push_back({const_cast<char*>(data), p.size});
  }
  iovec* v = iov.data();
  size_t left = iov.size();
  while (left > 0) {
    const ssize_t n = ::writev(fd, v, static_cast<int>(std::min<size_t>(left, IOV_MAX)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    // A short write (pipe, signal): resume inside the first piece not written completely.
    auto done = static_cast<size_t>(n);
    while (left > 0 && done >= v->iov_len) {
      done -= v->iov_len;
      ++v;
      --left;
    }
    if (left > 0) {
      v->iov_base = static_cast<char*>(v->iov_base) + done;
      v->iov_len -= done;
    }
  }
  return true;
}

absl::Status JsonWriter::finish() {
  if (out_ == nullptr) return absl::OkStatus();
  write_out();
  if (std::fflush(out_) != 0 && !write_failed_) {
    write_failed_ = true;
    write_errno_ = errno;
  }
  if (write_failed_) {
    return absl::DataLossError(std::string("cannot write the output: ") +
                               std::strerror(write_errno_));
  }
  return absl::OkStatus();
}

}  // namespace dltrace::viewer

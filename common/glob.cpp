// Glob matching (see glob.h). Written with indexes and memcmp only: std::string_view's checked
// members (substr, compare with a position) reference libstdc++'s throw helpers, which the
// recorder does not link.
#include "common/glob.h"

#include <cstring>

namespace dltrace::config {
namespace {

constexpr size_t kNone = static_cast<size_t>(-1);

// The bracket expression at p[open] == '[': `[abc]`, `[a-z]`, `[!...]` or `[^...]`, a ']' first
// in the set is literal, and `\` escapes the next character (`[\]a]` is ']' or 'a'). Returns the
// index just past its closing ']', or kNone if it has none. With c >= 0, *hit tells whether the
// set accepts c. The compiled prefilter and the matcher both use this, so they cannot disagree.
size_t bracket_end(std::string_view p, size_t open, int c, bool* hit) {
  size_t j = open + 1;
  const bool negate = j < p.size() && (p[j] == '!' || p[j] == '^');
  if (negate) ++j;
  bool in_set = false;
  for (bool first = true; j < p.size(); first = false) {
    if (p[j] == ']' && !first) {
      if (hit != nullptr) *hit = in_set != negate;
      return j + 1;
    }
    if (p[j] == '\\' && ++j == p.size()) break;
    const auto lo = static_cast<unsigned char>(p[j]);
    auto hi = lo;
    if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') {
      j += 2;
      if (p[j] == '\\' && ++j == p.size()) break;
      hi = static_cast<unsigned char>(p[j]);
    }
    if (c >= lo && c <= hi) in_set = true;
    ++j;
  }
  return kNone;
}

// Matches pattern p against text t; iterative with single-star backtracking.
bool glob_at(std::string_view p, std::string_view t) {
  size_t pi = 0, ti = 0, star_p = kNone, star_t = 0;
  while (ti < t.size()) {
    if (pi < p.size()) {
      char c = p[pi];
      if (c == '*') {
        star_p = ++pi;
        star_t = ti;
        continue;
      }
      if (c == '?') {
        ++pi;
        ++ti;
        continue;
      }
      if (c == '[') {
        bool hit = false;
        const size_t end = bracket_end(p, pi, static_cast<unsigned char>(t[ti]), &hit);
        if (end != kNone && hit) {
          pi = end;
          ++ti;
          continue;
        }
      } else {
        if (c == '\\' && pi + 1 < p.size()) c = p[++pi];
        if (c == t[ti]) {
          ++pi;
          ++ti;
          continue;
        }
      }
    }
    if (star_p == kNone) return false;
    pi = star_p;
    ti = ++star_t;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace

bool GlobView::compile(std::string_view pattern, const char** why) {
  pattern_ = pattern.data();
  size_ = pattern.size();
  has_slash_ = !pattern.empty() && std::memchr(pattern.data(), '/', pattern.size()) != nullptr;
  literal_ = true;
  size_t first_wild = kNone, last_wild_end = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\') {
      if (i + 1 == pattern.size()) {
        *why = "trailing '\\'";
        return false;
      }
      literal_ = false;  // escapes make the text differ from the pattern: use the full matcher
      if (first_wild == kNone) first_wild = i;
      last_wild_end = i + 2;
      ++i;
    } else if (c == '*' || c == '?') {
      literal_ = false;
      if (first_wild == kNone) first_wild = i;
      last_wild_end = i + 1;
    } else if (c == '[') {
      const size_t end = bracket_end(pattern, i, -1, nullptr);
      if (end == kNone) {
        *why = "unterminated '['";
        return false;
      }
      literal_ = false;
      if (first_wild == kNone) first_wild = i;
      last_wild_end = end;
      i = end - 1;
    }
  }
  prefix_len_ = literal_ ? size_ : first_wild;
  suffix_len_ = literal_ ? size_ : size_ - last_wild_end;
  min_len_ = literal_ ? size_ : prefix_len_ + suffix_len_;
  has_first_ = prefix_len_ != 0;
  has_last_ = suffix_len_ != 0;
  first_ = has_first_ ? pattern_[0] : 0;
  last_ = has_last_ ? pattern_[size_ - 1] : 0;
  return true;
}

bool GlobView::matches_slow(std::string_view text) const {
  // memcmp only with a length: an empty view's data() may be null.
  const auto same = [](const char* a, const char* b, size_t n) {
    return n == 0 || std::memcmp(a, b, n) == 0;
  };
  if (literal_) return text.size() == size_ && same(text.data(), pattern_, size_);
  if (text.size() < prefix_len_ + suffix_len_) return false;
  if (!same(text.data(), pattern_, prefix_len_)) return false;
  if (!same(text.data() + text.size() - suffix_len_, pattern_ + size_ - suffix_len_, suffix_len_))
    return false;
  return glob_at(pattern(), text);
}

bool glob_match(std::string_view pattern, std::string_view text) {
  return glob_at(pattern, text);
}

}  // namespace dltrace::config

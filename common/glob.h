// Glob matching for the override config's `match`/`caller` and DLTRACE_ONLY: `*`, `?`, `[...]`,
// `[!...]`, `\` escape; `*` also crosses '/'. libc only, no allocation: compiled into the
// recorder (which has no C++ runtime) and into the viewer and the config parser.
#pragma once

#include <cstddef>
#include <string_view>

namespace dltrace::config {

// A glob compiled over pattern text it does not own (as std::string_view does): the text must
// stay where it is while the GlobView is used, or the owner moves it and calls repoint(). The
// literal prefix/suffix are precomputed so that most non-matching names are rejected in a few
// compares (the recorder matches every dlopen against every rule).
class GlobView {
 public:
  // Returns false and sets *why (static text) for a malformed pattern (unterminated '[',
  // trailing '\').
  bool compile(std::string_view pattern, const char** why);
  // Inline length/first/last-character rejection first: most rules fail there, without a call.
  bool matches(std::string_view text) const {
    if (text.size() < min_len_ || (literal_ && text.size() != min_len_)) return false;
    if (min_len_ != 0 &&
        ((has_first_ && text.front() != first_) || (has_last_ && text.back() != last_)))
      return false;
    return matches_slow(text);
  }

  std::string_view pattern() const { return std::string_view(pattern_, size_); }
  bool has_slash() const { return has_slash_; }  // matches full paths instead of basenames
  bool literal() const { return literal_; }

  // The same glob over an identical copy of its pattern text at `copy`.
  void repoint(const char* copy) { pattern_ = copy; }

 private:
  bool matches_slow(std::string_view text) const;

  const char* pattern_ = "";
  size_t size_ = 0;
  size_t prefix_len_ = 0;  // literal text before the first wildcard
  size_t suffix_len_ = 0;  // literal text after the last wildcard
  bool has_slash_ = false;
  bool literal_ = true;
  size_t min_len_ = 0;  // literal: the exact length; glob: prefix + suffix
  bool has_first_ = false, has_last_ = false;
  char first_ = 0, last_ = 0;
};

// Glob matching without compilation (tests, the viewer).
bool glob_match(std::string_view pattern, std::string_view text);

// The text after the last '/' (all of it when there is none).
inline std::string_view basename_of(std::string_view path) {
  size_t i = path.size();
  while (i > 0 && path[i - 1] != '/') --i;
  return std::string_view(path.data() + i, path.size() - i);
}

}  // namespace dltrace::config

// Flag-override config: the rule model, the parser and the matcher, shared by the recorder
// (libdltrace.so) and the viewer (`dltrace config check`).
//
// No exceptions and no toml++ types here: toml++ stays inside config.cpp, which is compiled with
// TOML_EXCEPTIONS=0 into a preload that must not throw. Errors come back as {line, col, message}.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dltrace::config {

// Every traced process parses the config before main: these bound what that can cost. A real
// config has a handful of rules; 10,000 rules of ~60 bytes fit in the size limit.
inline constexpr size_t kMaxFileBytes = size_t{1} << 20;  // 1 MiB
inline constexpr size_t kMaxRules = 10000;

struct Error {
  uint32_t line = 0;  // 1-based; 0 when the error is about the file, not a place in it
  uint32_t col = 0;
  std::string message;
};

// "FILE:LINE:COL: message", or "FILE: message" when the error has no position. Control
// characters (from the file's text or name) are escaped as \xNN: always exactly one line.
std::string format_error(std::string_view file, const Error& error);
// The same into buf (NUL-terminated, cut to fit), allocating nothing. Returns the length.
size_t format_error_to(char* buf, size_t size, std::string_view file, const Error& error);

// A glob (`*`, `?`, `[...]`, `[!...]`, `\` escape; `*` also crosses '/') compiled once, with the
// literal prefix/suffix precomputed so that most non-matching names are rejected in a few
// compares (the recorder matches every dlopen against every rule).
class Glob {
 public:
  Glob() = default;
  // Returns false and sets *why for a malformed pattern (unterminated '[', trailing '\').
  bool compile(std::string_view pattern, std::string* why);
  // Inline length/first/last-character rejection first: most rules fail there, without a call.
  bool matches(std::string_view text) const {
    if (text.size() < min_len_ || (literal_ && text.size() != min_len_)) return false;
    if (min_len_ != 0 &&
        ((has_first_ && text.front() != first_) || (has_last_ && text.back() != last_)))
      return false;
    return matches_slow(text);
  }

  const std::string& pattern() const { return pattern_; }
  bool has_slash() const { return has_slash_; }  // matches full paths instead of basenames
  bool literal() const { return literal_; }

 private:
  bool matches_slow(std::string_view text) const;

  std::string pattern_;
  std::string prefix_;  // literal text before the first wildcard
  std::string suffix_;  // literal text after the last wildcard
  bool has_slash_ = false;
  bool literal_ = true;
  size_t min_len_ = 0;  // literal: the exact length; glob: prefix + suffix
  bool has_first_ = false, has_last_ = false;
  char first_ = 0, last_ = 0;
};

// Glob matching without compilation (tests, the viewer).
bool glob_match(std::string_view pattern, std::string_view text);

struct Rule {
  uint32_t line = 0;  // line of the rule's [[override]] header
  uint32_t col = 0;
  Glob match;
  bool has_caller = false;
  Glob caller;
  bool has_set = false;
  int set = 0;  // replaces all flags (the requested binding mode is kept if set names none)
  int add = 0;
  int remove = 0;
  bool add_local = false;     // RTLD_LOCAL is 0, so it is kept apart: "add" it = drop RTLD_GLOBAL
  bool remove_local = false;  // and "remove" it = add RTLD_GLOBAL

  // set, then remove, then add. Adding RTLD_LAZY/RTLD_NOW replaces the binding mode; adding
  // RTLD_LOCAL removes RTLD_GLOBAL (and the other way round), so the result is always a mode
  // glibc accepts.
  int apply(int flags) const;
};

struct Config {
  std::vector<Rule> rules;
};

// Parses TOML text. On error returns false, fills *error and leaves *out with no rules: a config
// is used whole or not at all. Never throws: running out of memory is an error like any other.
// Text over kMaxFileBytes, more than kMaxRules rules, text that is not UTF-8, and non-ASCII
// characters outside comments and strings (or in a """multi-line""" string) are errors.
bool parse(std::string_view text, Config* out, Error* error) noexcept;

// Reads and parses a file (stat/open/read, no stdio). Missing, unreadable or non-regular files
// (a FIFO or a device is never opened) and files over kMaxFileBytes are errors without a
// position. An empty file is a valid config with no rules. Never throws, never blocks.
bool load_file(const char* path, Config* out, Error* error) noexcept;

// What one dlopen looks like to the matcher. Empty views are "unknown".
struct Subject {
  std::string_view name;      // the name passed to dlopen, as given (bare, relative or absolute)
  std::string_view resolved;  // absolute path of the file it resolves to
  std::string_view soname;    // DT_SONAME of that file
  std::string_view caller;    // path of the object that called dlopen
};

std::string_view basename_of(std::string_view path);

// Whether `rule.match` accepts the name in the call (its basename, or the full name for a
// pattern with '/'). Needs no file system access.
bool match_name(const Rule& rule, std::string_view name);
// Whether it accepts the resolved file (its path or basename) or its soname.
bool match_resolved(const Rule& rule, std::string_view resolved, std::string_view soname);
// The caller filter alone (true when the rule has none).
bool match_caller(const Rule& rule, std::string_view caller);
// All of it: caller filter, then any of name / resolved file / soname.
bool matches(const Rule& rule, const Subject& subject);

// "match basename 'libembed.so' → add RTLD_GLOBAL"
std::string describe(const Rule& rule);

}  // namespace dltrace::config

// Flag-override config: the rule model, the parser and the matcher, shared by the config parser
// library the recorder loads only when DLTRACE_CONFIG is set (libdltrace_config.so, which hands
// the rules over as plain data: preload/config_block.h) and the viewer (`dltrace config check`).
//
// No exceptions and no toml++ types here: toml++ stays inside config.cpp, which is compiled with
// TOML_EXCEPTIONS=0 and must not throw into a traced process. Errors come back as
// {line, col, message}.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/flag_change.h"
#include "common/glob.h"

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

// A compiled glob (glob.h) with its own copy of the pattern: a value that can be copied and
// moved (the recorder, which has no C++ runtime, uses GlobView over text it owns).
class Glob {
 public:
  Glob() = default;
  Glob(const Glob& other) : text_(other.text_), view_(other.view_) { view_.repoint(text_.data()); }
  Glob& operator=(const Glob& other) {
    text_ = other.text_;
    view_ = other.view_;
    view_.repoint(text_.data());
    return *this;
  }
  Glob(Glob&& other) noexcept : text_(std::move(other.text_)), view_(other.view_) {
    view_.repoint(text_.data());
    other.view_ = GlobView();
  }
  Glob& operator=(Glob&& other) noexcept {
    text_ = std::move(other.text_);
    view_ = other.view_;
    view_.repoint(text_.data());
    other.view_ = GlobView();
    return *this;
  }

  // Returns false and sets *why for a malformed pattern (unterminated '[', trailing '\').
  bool compile(std::string_view pattern, std::string* why);
  bool matches(std::string_view text) const { return view_.matches(text); }
  const std::string& pattern() const { return text_; }
  bool has_slash() const { return view_.has_slash(); }  // matches full paths instead of basenames
  bool literal() const { return view_.literal(); }

 private:
  std::string text_;
  GlobView view_;
};

struct Rule : FlagChange {
  uint32_t line = 0;  // line of the rule's [[override]] header
  uint32_t col = 0;
  Glob match;
  bool has_caller = false;
  Glob caller;
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

// Flag-override config: TOML parsing (toml++, header-only, exceptions off), validation with
// "did you mean" hints, and the matcher over a parsed rule. See config.h (the globs: glob.cpp).
//
// Every traced process parses the config before main, so nothing here may harm it: the file is
// bounded (kMaxFileBytes, kMaxRules), read only if it is a regular file, opened without blocking;
// the text toml++ gets is checked first (check_text) so that no input reaches an assertion or
// undefined behaviour inside it; and this file is compiled with exceptions so that an allocation
// failure (std::bad_alloc under a memory limit) becomes an error instead of std::terminate.
#include "common/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

// toml++ never asserts here, whatever the build type: TOML_ASSERT is a no-op, and NDEBUG is
// lifted while toml++ is included because under NDEBUG its TOML_ASSERT_ASSUME becomes an
// optimiser assumption (__builtin_assume) instead of TOML_ASSERT. An assertion toml++ would
// make on a bad input ends in an ordinary parse error (`[[~]]`: "expected bare key ...").
#ifdef NDEBUG
#define DLTRACE_CONFIG_HAD_NDEBUG
#undef NDEBUG
#endif
#ifdef TOML_ASSERT
#undef TOML_ASSERT
#endif
#define TOML_ASSERT(expr) static_assert(true)
#include <toml++/toml.h>
#ifdef DLTRACE_CONFIG_HAD_NDEBUG
#define NDEBUG
#undef DLTRACE_CONFIG_HAD_NDEBUG
#endif

#include "common/config_error.h"
#include "common/dlopen_flags.h"

namespace dltrace::config {
namespace {

constexpr std::string_view kRuleKeys[] = {"match", "caller", "add", "remove", "set"};
constexpr std::string_view kRootKeys[] = {"override"};

std::string to_string(uint32_t v) {
  char buf[16];
  int n = 0;
  char tmp[16];
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  int k = 0;
  while (n > 0) buf[k++] = tmp[--n];
  return std::string(buf, static_cast<size_t>(k));
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + cost});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

// The closest candidate if it is close enough to be a plausible typo, else "".
template <typename Range, typename Name>
std::string suggest(std::string_view word, const Range& candidates, Name name_of, bool flags) {
  std::string best;
  size_t best_d = static_cast<size_t>(-1);
  std::string up = flags ? upper(word) : std::string(word);
  for (const auto& c : candidates) {
    std::string_view n = name_of(c);
    size_t d = edit_distance(up, n);
    // "GLOBAL" or "global" for RTLD_GLOBAL: the prefix is the usual omission.
    if (flags && ("RTLD_" + up) == n) d = 0;
    if (d < best_d) {
      best_d = d;
      best = std::string(n);
    }
  }
  size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : std::string();
}

std::string with_hint(std::string message, const std::string& hint) {
  if (!hint.empty()) message += "; did you mean '" + hint + "'?";
  return message;
}

bool fail(Error* error, const toml::source_region& where, std::string message) {
  error->line = where.begin.line;
  error->col = where.begin.column;
  error->message = std::move(message);
  return false;
}

const char* type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    default:
      return "a date or time";
  }
}

bool parse_pattern(const toml::node& value, std::string_view key, Glob* out, Error* error) {
  const auto* s = value.as_string();
  if (s == nullptr)
    return fail(error, value.source(),
                "'" + std::string(key) + "' must be a string (a glob), not " + type_name(value));
  if (s->get().empty()) return fail(error, value.source(), "'" + std::string(key) + "' is empty");
  std::string why;
  if (!out->compile(s->get(), &why))
    return fail(error, value.source(), "bad pattern in '" + std::string(key) + "': " + why);
  return true;
}

bool parse_flags(const toml::node& value, std::string_view key, int* out, bool* local,
                 Error* error) {
  const auto* arr = value.as_array();
  if (arr == nullptr)
    return fail(
        error, value.source(),
        "'" + std::string(key) + "' must be an array of flag names, e.g. [\"RTLD_GLOBAL\"]");
  int flags = 0;
  for (const auto& elem : *arr) {
    const auto* s = elem.as_string();
    if (s == nullptr)
      return fail(error, elem.source(),
                  "flag names are strings, not " + std::string(type_name(elem)));
    int v = 0;
    if (!parse_flag_name(s->get(), &v)) {
      std::string hint = suggest(
          s->get(), kFlagNames, [](const FlagName& f) { return std::string_view(f.name); }, true);
      return fail(error, elem.source(), with_hint("unknown flag '" + s->get() + "'", hint));
    }
    if (s->get() == "RTLD_LOCAL") *local = true;
    flags |= v;
  }
  // Contradictions would depend on the order glibc tests bits: refuse them.
  if ((flags & RTLD_BINDING_MASK) == RTLD_BINDING_MASK)
    return fail(error, value.source(),
                "'" + std::string(key) + "' names both RTLD_LAZY and RTLD_NOW");
  if (*local && (flags & RTLD_GLOBAL))
    return fail(error, value.source(),
                "'" + std::string(key) + "' names both RTLD_GLOBAL and RTLD_LOCAL");
  *out = flags;
  return true;
}

bool parse_rule(const toml::table& table, Rule* rule, Error* error) {
  rule->line = table.source().begin.line;
  rule->col = table.source().begin.column;
  bool has_match = false, has_action = false;
  for (const auto& [key, value] : table) {
    std::string_view k = key.str();
    if (k == "match") {
      if (!parse_pattern(value, k, &rule->match, error)) return false;
      has_match = true;
    } else if (k == "caller") {
      if (!parse_pattern(value, k, &rule->caller, error)) return false;
      rule->has_caller = true;
    } else if (k == "add") {
      if (!parse_flags(value, k, &rule->add, &rule->add_local, error)) return false;
      has_action = true;
    } else if (k == "remove") {
      if (!parse_flags(value, k, &rule->remove, &rule->remove_local, error)) return false;
      has_action = true;
    } else if (k == "set") {
      bool local = false;
      if (!parse_flags(value, k, &rule->set, &local, error)) return false;
      rule->has_set = true;
      has_action = true;
    } else {
      std::string hint = suggest(
          k, kRuleKeys, [](std::string_view s) { return s; }, false);
      return fail(error, key.source(),
                  with_hint("unknown key '" + std::string(k) + "' in [[override]]", hint));
    }
  }
  if (!has_match) return fail(error, table.source(), "[[override]] has no 'match'");
  if (!has_action)
    return fail(error, table.source(),
                "[[override]] changes nothing: give 'add', 'remove' or 'set'");
  return true;
}

bool parse_table(const toml::table& root, Config* out, Error* error) {
  for (const auto& [key, value] : root) {
    std::string_view k = key.str();
    if (k != "override") {
      std::string hint = suggest(
          k, kRootKeys, [](std::string_view s) { return s; }, false);
      if (hint.empty() && value.is_table())  // e.g. a [rule] table: say what is expected
        hint = "[[override]]";
      return fail(error, key.source(), with_hint("unknown key '" + std::string(k) + "'", hint));
    }
    if (!value.is_array_of_tables())
      return fail(error, value.is_table() ? key.source() : value.source(),
                  "'override' must be an array of tables: write each rule under [[override]]");
    if (value.as_array()->size() > kMaxRules) {
      const toml::node& extra = (*value.as_array())[kMaxRules];
      return fail(
          error, extra.source(),
          "too many rules: the limit is " + to_string(uint32_t{kMaxRules}) + " [[override]]");
    }
    out->rules.reserve(value.as_array()->size());
    for (const auto& elem : *value.as_array()) {
      Rule rule;
      if (!parse_rule(*elem.as_table(), &rule, error)) return false;
      out->rules.push_back(std::move(rule));
    }
  }
  return true;
}

// ---- what toml++ is allowed to see ----
//
// toml++ 3.3 must never get text on which it reaches undefined behaviour: its whitespace
// classifier runs into __builtin_unreachable for most non-ASCII code points (U+00A1 to U+0499,
// U+2D6E to U+3167, U+FB46 to U+FEFE: "é", or the bytes EF BB BE), and it classifies every
// character it scans outside strings and comments, and more: a bare value is scanned up to the
// next whitespace, ',', ']', '}' or '#' whatever it holds (quotes included), a date may go on
// past a space, a """string""" trims whitespace after a backslash. So the text must be valid
// UTF-8, and non-ASCII characters are accepted only where toml++ is sure to be inside a comment
// or a one-line string: a comment that starts a line, and a `key = "string"` or `key = 'string'`
// (a bare or dotted key) followed by nothing or a comment, on a line outside any array or inline
// table. That is everywhere a config needs them (paths in match/caller, comments). After a
// """ or ''' string, or anything the scan cannot follow, no non-ASCII character is accepted.

// Decodes the UTF-8 sequence at text[i]; returns its length (0: malformed) and sets *cp.
size_t decode_utf8(std::string_view text, size_t i, uint32_t* cp) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t len;
  uint32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, min = 0x80, *cp = b0 & 0x1Fu;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, min = 0x800, *cp = b0 & 0x0Fu;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, min = 0x10000, *cp = b0 & 0x07u;
  } else {
    return 0;
  }
  if (text.size() - i < len) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    *cp = (*cp << 6) | (byte(i + k) & 0x3Fu);
  }
  // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8.
  if (*cp < min || (*cp >= 0xD800 && *cp <= 0xDFFF) || *cp > 0x10FFFF) return 0;
  return len;
}

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}
bool is_key_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// Marks which bytes of one line (without its '\n') may hold non-ASCII characters; updates the
// bracket depth carried from line to line. Returns false when the scan cannot follow the text
// any more (a multi-line string, an unclosed string, a stray closing bracket).
bool scan_line(std::string_view line, int* depth, std::vector<bool>* allowed) {
  allowed->assign(line.size(), false);
  size_t i = 0;
  const auto allow_to_end = [&](size_t from) {
    for (size_t k = from; k < line.size(); ++k) (*allowed)[k] = true;
  };
  if (*depth == 0) {
    size_t k = 0;
    while (k < line.size() && is_blank(line[k])) ++k;
    if (k < line.size() && line[k] == '#') {  // a comment line
      allow_to_end(k);
      return true;
    }
    // key = "string" / key = 'string'
    size_t key_end = k;
    while (key_end < line.size() &&
           (is_key_char(line[key_end]) || line[key_end] == '.' || is_blank(line[key_end])))
      ++key_end;
    if (key_end > k && key_end < line.size() && line[key_end] == '=') {
      size_t q = key_end + 1;
      while (q < line.size() && is_blank(line[q])) ++q;
      if (q < line.size() && (line[q] == '"' || line[q] == '\'') && line.substr(q, 3) != "\"\"\"" &&
          line.substr(q, 3) != "'''") {
        const char quote = line[q];
        size_t e = q + 1;
        while (e < line.size() && line[e] != quote && line[e] != '\r') {
          if (quote == '"' && line[e] == '\\' && e + 1 < line.size() && line[e + 1] != '\r') ++e;
          ++e;
        }
        if (e >= line.size() || line[e] != quote) return false;  // toml++ stops with an error
        for (size_t m = q + 1; m < e; ++m) (*allowed)[m] = true;
        i = e + 1;
        size_t after = i;
        while (after < line.size() && is_blank(line[after])) ++after;
        if (after < line.size() && line[after] == '#') {
          allow_to_end(after);
          return true;
        }
      }
    }
  }
  // Anything else: only the brackets are followed, and strings and comments skipped.
  while (i < line.size()) {
    const char c = line[i];
    if (c == '#') return true;  // a comment to the end of the line (its text stays ASCII-only)
    if (c == '"' || c == '\'') {
      if (line.substr(i, 3) == std::string(3, c)) return false;  // multi-line: not followed
      size_t e = i + 1;
      while (e < line.size() && line[e] != c && line[e] != '\r') {
        if (c == '"' && line[e] == '\\' && e + 1 < line.size() && line[e + 1] != '\r') ++e;
        ++e;
      }
      if (e >= line.size() || line[e] != c) return false;
      i = e + 1;
      continue;
    }
    if (c == '[' || c == '{') ++*depth;
    if ((c == ']' || c == '}') && --*depth < 0) return false;
    ++i;
  }
  return true;
}

bool check_text(std::string_view text, Error* error) {
  size_t start =
      text.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;  // a byte order mark: toml++ skips it too
  int depth = 0;
  bool following = true;
  std::vector<bool> allowed;
  for (uint32_t line_no = 1; start <= text.size(); ++line_no) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    if (following) following = scan_line(line, &depth, &allowed);
    uint32_t col = 1;
    for (size_t i = 0; i < line.size(); ++col) {
      uint32_t cp = 0;
      const size_t len = decode_utf8(line, i, &cp);
      const auto fail_here = [&](const char* message) {
        error->line = line_no;
        error->col = col;
        error->message = message;
        return false;
      };
      if (len == 0) return fail_here("not valid UTF-8");
      // Once the scan has given up (on this line or before), nothing non-ASCII is accepted.
      if (cp >= 0x80 && !(following && allowed[i]))
        return fail_here(
            "non-ASCII character outside a comment or a one-line string value (key = \"...\")");
      i += len;
    }
    start = end + 1;
  }
  return true;
}

}  // namespace

size_t format_error_to(char* buf, size_t size, std::string_view file, const Error& error) {
  return format_error_line_to(buf, size, file, error.line, error.col, error.message);
}

std::string format_error(std::string_view file, const Error& error) {
  // Escaping at most quadruples the length.
  std::string out((file.size() + error.message.size()) * 4 + 40, '\0');
  out.resize(format_error_to(out.data(), out.size(), file, error));
  return out;
}

bool Glob::compile(std::string_view pattern, std::string* why) {
  text_ = std::string(pattern);
  const char* reason = nullptr;
  if (view_.compile(text_, &reason)) return true;
  *why = reason;
  return false;
}

namespace {

bool parse_checked(std::string_view text, Config* out, Error* error) {
  if (text.size() > kMaxFileBytes) {
    error->message = "config is larger than " + to_string(uint32_t{kMaxFileBytes >> 20}) + " MiB";
    return false;
  }
  if (!check_text(text, error)) return false;
  toml::parse_result result = toml::parse(text);
  if (!result) {
    const toml::parse_error& e = result.error();
    error->line = e.source().begin.line;
    error->col = e.source().begin.column;
    error->message = std::string(e.description());
    return false;
  }
  Config parsed;
  if (!parse_table(result.table(), &parsed, error)) return false;
  *out = std::move(parsed);
  return true;
}

// Runs `body`; an exception (std::bad_alloc under a memory limit, or anything else) is an
// error, never an exception that leaves this file.
template <typename Body>
bool guarded(Config* out, Error* error, Body body) {
  try {
    if (body()) return true;
  } catch (const std::bad_alloc&) {
    *error = Error{};
    error->message = "out of memory";  // short enough to need no allocation
  } catch (...) {
    *error = Error{};
    error->message = "internal error";
  }
  out->rules.clear();
  out->rules.shrink_to_fit();
  return false;
}

}  // namespace

bool parse(std::string_view text, Config* out, Error* error) noexcept {
  out->rules.clear();
  return guarded(out, error, [&] { return parse_checked(text, out, error); });
}

bool load_file(const char* path, Config* out, Error* error) noexcept {
  out->rules.clear();
  return guarded(out, error, [&] {
    // stat first, so that a device or FIFO is never opened at all (opening one can block or
    // have effects); then open without blocking or taking a controlling terminal, and check the
    // file actually opened.
    struct stat st;
    if (stat(path, &st) != 0) {
      error->message = std::string("cannot open config: ") + strerror(errno);
      return false;
    }
    if (!S_ISREG(st.st_mode)) {
      error->message = "cannot read config: not a regular file";
      return false;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
      error->message = std::string("cannot open config: ") + strerror(errno);
      return false;
    }
    struct Closer {
      int fd;
      ~Closer() { close(fd); }
    } closer{fd};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      error->message = "cannot read config: not a regular file";
      return false;
    }
    const auto too_big = [&] {
      error->message = "config is larger than " + to_string(uint32_t{kMaxFileBytes >> 20}) + " MiB";
      return false;
    };
    if (static_cast<uint64_t>(st.st_size) > kMaxFileBytes) return too_big();
    // Read at most one byte past the limit: a file that grows meanwhile is refused too.
    std::string text(static_cast<size_t>(st.st_size) + 1, '\0');
    size_t have = 0;
    for (;;) {
      if (have == text.size()) {
        if (text.size() > kMaxFileBytes) return too_big();
        text.resize(std::min(text.size() * 2, kMaxFileBytes + 1));
      }
      ssize_t n = read(fd, text.data() + have, text.size() - have);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        error->message = std::string("cannot read config: ") + strerror(errno);
        return false;
      }
      if (n == 0) break;
      have += static_cast<size_t>(n);
    }
    text.resize(have);
    return parse_checked(text, out, error);
  });
}

bool match_name(const Rule& rule, std::string_view name) {
  if (name.empty()) return false;
  return rule.match.matches(rule.match.has_slash() ? name : basename_of(name));
}

bool match_resolved(const Rule& rule, std::string_view resolved, std::string_view soname) {
  if (!resolved.empty() &&
      rule.match.matches(rule.match.has_slash() ? resolved : basename_of(resolved)))
    return true;
  return !soname.empty() && !rule.match.has_slash() && rule.match.matches(soname);
}

bool match_caller(const Rule& rule, std::string_view caller) {
  if (!rule.has_caller) return true;
  if (caller.empty()) return false;
  return rule.caller.matches(rule.caller.has_slash() ? caller : basename_of(caller));
}

bool matches(const Rule& rule, const Subject& s) {
  if (!match_caller(rule, s.caller)) return false;
  return match_name(rule, s.name) || match_resolved(rule, s.resolved, s.soname);
}

std::string describe(const Rule& rule) {
  auto flag_list = [](int flags, bool local) {
    std::string out;
    for (const auto& f : kFlagNames) {
      bool on = f.value == 0 ? local
                : (f.value == RTLD_LAZY || f.value == RTLD_NOW)
                    ? (flags & RTLD_BINDING_MASK) == f.value
                    : (flags & f.value) != 0;
      if (!on) continue;
      if (!out.empty()) out += '|';
      out += f.name;
    }
    return out;
  };
  std::string out = rule.match.has_slash() ? "match path '" : "match basename '";
  out += rule.match.pattern();
  out += "'";
  if (rule.has_caller) {
    out += rule.caller.has_slash() ? ", caller path '" : ", caller basename '";
    out += rule.caller.pattern();
    out += "'";
  }
  out += " \u2192";
  bool first = true;
  auto part = [&](const char* verb, const std::string& what) {
    out += first ? " " : ", ";
    first = false;
    out += verb;
    out += ' ';
    out += what;
  };
  if (rule.has_set) {
    std::string s = flag_list(rule.set, (rule.set & RTLD_GLOBAL) == 0);
    if ((rule.set & RTLD_BINDING_MASK) == 0)
      s += s.empty() ? "(binding mode kept)" : " (binding mode kept)";
    part("set", s);
  }
  if (rule.remove || rule.remove_local) part("remove", flag_list(rule.remove, rule.remove_local));
  if (rule.add || rule.add_local) part("add", flag_list(rule.add, rule.add_local));
  return out;
}

}  // namespace dltrace::config

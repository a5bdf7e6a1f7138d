// Flag-override config: TOML parsing (toml++, header-only, exceptions off), validation with
// "did you mean" hints, glob matching and rule application. See config.h.
#include "config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "dltrace/flags.h"

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
    for (const auto& elem : *value.as_array()) {
      Rule rule;
      if (!parse_rule(*elem.as_table(), &rule, error)) return false;
      out->rules.push_back(std::move(rule));
    }
  }
  return true;
}

// Matches pattern[pi..] against text[ti..]; iterative with single-star backtracking.
bool glob_at(std::string_view p, std::string_view t) {
  size_t pi = 0, ti = 0, star_p = std::string_view::npos, star_t = 0;
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
        size_t j = pi + 1;
        bool negate = j < p.size() && (p[j] == '!' || p[j] == '^');
        if (negate) ++j;
        bool hit = false;
        bool first = true;
        while (j < p.size() && (p[j] != ']' || first)) {
          first = false;
          char lo = p[j];
          if (lo == '\\' && j + 1 < p.size()) lo = p[++j];
          char hi = lo;
          if (j + 2 < p.size() && p[j + 1] == '-' && p[j + 2] != ']') {
            hi = p[j + 2];
            j += 2;
          }
          if (t[ti] >= lo && t[ti] <= hi) hit = true;
          ++j;
        }
        if (j < p.size() && hit != negate) {
          pi = j + 1;
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
    if (star_p == std::string_view::npos) return false;
    pi = star_p;
    ti = ++star_t;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace

std::string format_error(std::string_view file, const Error& error) {
  std::string out(file);
  if (error.line != 0) {
    out += ':';
    out += to_string(error.line);
    out += ':';
    out += to_string(error.col);
  }
  out += ": ";
  out += error.message;
  return out;
}

bool Glob::compile(std::string_view pattern, std::string* why) {
  pattern_ = std::string(pattern);
  has_slash_ = pattern.find('/') != std::string_view::npos;
  literal_ = true;
  min_len_ = 0;
  has_first_ = has_last_ = false;
  prefix_.clear();
  suffix_.clear();
  size_t first_wild = std::string_view::npos, last_wild_end = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\') {
      if (i + 1 == pattern.size()) {
        *why = "trailing '\\'";
        return false;
      }
      literal_ = false;  // escapes make the text differ from the pattern: use the full matcher
      if (first_wild == std::string_view::npos) first_wild = i;
      last_wild_end = i + 2;
      ++i;
    } else if (c == '*' || c == '?') {
      literal_ = false;
      if (first_wild == std::string_view::npos) first_wild = i;
      last_wild_end = i + 1;
    } else if (c == '[') {
      size_t j = i + 1;
      if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) ++j;
      if (j < pattern.size() && pattern[j] == ']') ++j;
      while (j < pattern.size() && pattern[j] != ']') ++j;
      if (j >= pattern.size()) {
        *why = "unterminated '['";
        return false;
      }
      literal_ = false;
      if (first_wild == std::string_view::npos) first_wild = i;
      last_wild_end = j + 1;
      i = j;
    }
  }
  if (!literal_) {
    prefix_ = std::string(pattern.substr(0, first_wild));
    suffix_ = std::string(pattern.substr(last_wild_end));
  } else {
    prefix_ = suffix_ = pattern_;
  }
  min_len_ = literal_ ? pattern_.size() : prefix_.size() + suffix_.size();
  has_first_ = !prefix_.empty();
  has_last_ = !suffix_.empty();
  first_ = has_first_ ? prefix_.front() : 0;
  last_ = has_last_ ? suffix_.back() : 0;
  return true;
}

bool Glob::matches_slow(std::string_view text) const {
  if (literal_) return text == pattern_;
  if (text.size() < prefix_.size() + suffix_.size()) return false;
  if (text.compare(0, prefix_.size(), prefix_) != 0) return false;
  if (text.compare(text.size() - suffix_.size(), suffix_.size(), suffix_) != 0) return false;
  return glob_at(pattern_, text);
}

bool glob_match(std::string_view pattern, std::string_view text) {
  return glob_at(pattern, text);
}

int Rule::apply(int flags) const {
  if (has_set) {
    int binding = set & RTLD_BINDING_MASK;
    flags = set | (binding != 0 ? 0 : (flags & RTLD_BINDING_MASK));
  }
  flags &= ~remove;
  if (remove_local) flags |= RTLD_GLOBAL;  // RTLD_LOCAL is 0: "not local" means global
  if (add & RTLD_BINDING_MASK) flags &= ~RTLD_BINDING_MASK;
  if (add_local) flags &= ~RTLD_GLOBAL;
  flags |= add;
  return flags;
}

bool parse(std::string_view text, Config* out, Error* error) {
  out->rules.clear();
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

bool load_file(const char* path, Config* out, Error* error) {
  out->rules.clear();
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error->message = std::string("cannot open config: ") + strerror(errno);
    return false;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    error->message = "cannot read config: not a regular file";
    return false;
  }
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      error->message = std::string("cannot read config: ") + strerror(e);
      return false;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return parse(text, out, error);
}

std::string_view basename_of(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
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

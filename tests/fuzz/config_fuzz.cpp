// libFuzzer target: any bytes as an override config (config::parse, as every traced process
// does with DLTRACE_CONFIG), and as a glob pattern and a name. Neither may crash, assert, read
// out of bounds or reach undefined behaviour (ASan + UBSan), and the compiled glob (with its
// prefix/suffix prefilter) must agree with the plain matcher on every pattern it accepts.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/config.h"

using namespace dltrace::config;

namespace {

volatile size_t g_sink;

void check_glob(std::string_view pattern, std::string_view text) {
  Glob g;
  std::string why;
  if (!g.compile(pattern, &why)) {
    g_sink = g_sink + why.size();
    return;
  }
  // The prefilter may only reject what the matcher rejects, and accept what it accepts.
  if (g.matches(text) != glob_match(pattern, text)) __builtin_trap();
  if (g.literal() && !g.matches(pattern)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  Config config;
  Error error;
  if (parse(input, &config, &error)) {
    if (config.rules.size() > kMaxRules) __builtin_trap();
    for (const Rule& rule : config.rules) {
      g_sink =
          g_sink + describe(rule).size() + static_cast<size_t>(rule.apply(0) + rule.apply(0x102));
      for (std::string_view name : {std::string_view("libfoo.so.1"), input.substr(0, 64)}) {
        Subject s{name, "/usr/lib/libfoo.so.1", "libfoo.so.1", "/opt/app/bin/app"};
        g_sink = g_sink + matches(rule, s);
        check_glob(rule.match.pattern(), name);
      }
    }
  } else {
    if (!config.rules.empty()) __builtin_trap();  // never half a config
    g_sink = g_sink + format_error("c.toml", error).size();
    char line[256];
    const size_t n = format_error_to(line, sizeof line, "c.toml", error);
    for (size_t i = 0; i < n; ++i)
      if (static_cast<unsigned char>(line[i]) < 0x20) __builtin_trap();  // always one line
  }

  // Glob: the input up to the first NUL (or newline) is the pattern, the rest the name.
  size_t cut = input.find('\0');
  if (cut == std::string_view::npos) cut = input.find('\n');
  if (cut == std::string_view::npos) {
    check_glob(input, input);
  } else {
    check_glob(input.substr(0, cut), input.substr(cut + 1));
  }
  return 0;
}

// Human-readable durations for the text commands: "850 ns", "12.5 us", "3.207 ms", "1.250 s".
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>

namespace dltrace::viewer {

inline std::string duration_text(uint64_t ns) {
  if (ns < 1000) return fmt::format("{} ns", ns);
  if (ns < 1000000) return fmt::format("{:.1f} us", static_cast<double>(ns) / 1e3);
  if (ns < 1000000000) return fmt::format("{:.3f} ms", static_cast<double>(ns) / 1e6);
  return fmt::format("{:.3f} s", static_cast<double>(ns) / 1e9);
}

}  // namespace dltrace::viewer

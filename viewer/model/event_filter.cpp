#include "model/event_filter.h"

#include <fmt/format.h>

#include <charconv>
#include <string_view>
#include <system_error>

#include "model/trace_model.h"
#include "util/status.h"

namespace dltrace::viewer {
namespace {

bool parse_u64(std::string_view s, uint64_t* out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

absl::StatusOr<EventFilter> make_event_filter(const std::string& seq_range,
                                              const std::vector<std::string>& calls,
                                              bool failed_only) {
  EventFilter f;
  f.failed_only = failed_only;
  if (!seq_range.empty()) {
    std::string_view r = seq_range;
    const size_t dash = r.find('-');
    std::string_view a = r.substr(0, dash);
    std::string_view b = dash == std::string_view::npos ? a : r.substr(dash + 1);
    if ((!a.empty() && !parse_u64(a, &f.first)) || (!b.empty() && !parse_u64(b, &f.last)) ||
        (a.empty() && b.empty())) {
      return UsageError(fmt::format("--seq '{}': expected A-B, A-, -B or A", seq_range));
    }
  }
  for (const auto& list : calls) {
    // CLI11 already split on ','; split again in case a value still holds one.
    for (std::string_view rest = list; !rest.empty();) {
      const size_t comma = rest.find(',');
      const std::string_view name = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (name.empty()) continue;
      bool known = false;
      for (uint16_t k = 1; k <= format::kCallKindCount; ++k) {
        if (call_name(k) == name) {
          f.call_mask |= 1u << k;
          known = true;
        }
      }
      if (!known) {
        std::string names;
        for (uint16_t k = 1; k <= format::kCallKindCount; ++k)
          names += fmt::format("{}{}", k > 1 ? ", " : "", call_name(k));
        return UsageError(fmt::format("--call: unknown call '{}'; use {}", name, names));
      }
    }
  }
  return f;
}

}  // namespace dltrace::viewer

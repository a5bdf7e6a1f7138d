// Which events `show` prints: a seq range, a set of calls, failed calls only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dltrace/format.h"

namespace dltrace::viewer {

struct EventFilter {
  uint64_t first = 0;
  uint64_t last = UINT64_MAX;
  uint32_t call_mask = 0;  // bit per CallKind; 0 = all
  bool failed_only = false;

  bool accepts(const format::EventSlot& e) const {
    if (e.seq < first || e.seq > last) return false;
    if (call_mask != 0 && (e.call >= 32 || !(call_mask & (1u << e.call)))) return false;
    if (failed_only && (e.bits & format::kEventOk)) return false;
    return true;
  }
};

// The filter the command line describes: `seq_range` "A-B", "A-", "-B" or "A" ("": all), `calls`
// call names (each may itself be a comma-separated list). A malformed range or an unknown call
// is a usage error.
absl::StatusOr<EventFilter> make_event_filter(const std::string& seq_range,
                                              const std::vector<std::string>& calls,
                                              bool failed_only);

}  // namespace dltrace::viewer

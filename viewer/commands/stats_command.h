// `dltrace stats` as a function, so that tests can run it on any reader and capture its output.
#pragma once

#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

struct StatsOptions {
  std::string trace;
  size_t top = 10;    // rows in "top symbols" and "slowest loads"
  bool json = false;  // machine output instead of aligned text
};

// Streams the events of `reader` once (bounded memory: per-call, per-thread, per-symbol
// aggregates and the N slowest loads) and prints the summary to `out`.
absl::Status stats_trace(const TraceReader& reader, const StatsOptions& options, std::FILE* out);

}  // namespace dltrace::viewer

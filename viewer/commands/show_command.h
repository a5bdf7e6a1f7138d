// `dltrace show` as a function, so that tests can run it on any reader and capture its output.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

struct ShowOptions {
  std::string trace;
  bool stacks = false;
  std::string seq_range;  // "A-B", "A-", "-B" or "A"
  std::vector<std::string> calls;
  bool failed = false;
};

// Prints the header and the (filtered) event log of `reader` to `out`.
absl::Status show_trace(const TraceReader& reader, const ShowOptions& options, std::FILE* out);

}  // namespace dltrace::viewer

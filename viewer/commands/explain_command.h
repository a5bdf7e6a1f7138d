// `dltrace explain` as a function, so that tests can run it on any reader and capture its output.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

#include "absl/status/statusor.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

struct ExplainOptions {
  std::string trace;
  bool json = false;
  bool no_info = false;  // leave out informational findings
  bool probes = false;   // also list the failed calls classified as probes, one per call site
  bool color = false;
};

// Prints the findings to `out`; returns the number of problems (errors + warnings).
absl::StatusOr<size_t> explain_trace_to(const TraceReader& reader, const ExplainOptions& options,
                                        std::FILE* out);

}  // namespace dltrace::viewer

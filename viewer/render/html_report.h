// `dltrace html`: one self-contained HTML report (no network needed to view it): the process
// summary, the explain findings, the load graph and the scope graph laid out as inline SVG, and
// a filterable, sortable, paged event table (the events are embedded as JSON, so 100k events
// stay responsive).
#pragma once

#include <cstdio>

#include "absl/status/status.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

struct HtmlReportOptions {
  bool all = false;  // the load graph with every system library
};

// Writes the report of `reader` to `out`. A graph that cannot be laid out is reported inside the
// page, not as an error: the rest of the report is still useful.
absl::Status write_html_report(const TraceReader& reader, const HtmlReportOptions& options,
                               std::FILE* out);

}  // namespace dltrace::viewer

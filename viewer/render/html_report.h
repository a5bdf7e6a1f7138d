// `dltrace html`: one self-contained HTML report (no network needed to view it): the process
// summary, the explain findings, the load graph and the scope graph laid out as inline SVG, and
// a filterable, sortable, paged event table (the events are embedded as JSON, so 100k events
// stay responsive).
#pragma once

#include <cstdio>

#include "absl/status/status.h"
#include "analysis/explain.h"
#include "analysis/scope_graph.h"
#include "dltrace/reader.h"
#include "model/load_graph.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

struct HtmlReportOptions {
  bool all = false;  // the load graph with every system library
};

// What the report shows, each analysed once.
struct HtmlReportContent {
  const TraceModel& model;
  const LoadGraph& load_graph;  // grouping no Python loads: the graph draws objects
  const ScopeGraph& scope_graph;
  const ExplainResult& findings;
};

// Writes the report to `out`. A graph that cannot be laid out is reported inside the page, not
// as an error: the rest of the report is still useful.
absl::Status write_html_report(const HtmlReportContent& content, const HtmlReportOptions& options,
                               std::FILE* out);
// The same, analysing `reader` first.
absl::Status write_html_report(const TraceReader& reader, const HtmlReportOptions& options,
                               std::FILE* out);

}  // namespace dltrace::viewer

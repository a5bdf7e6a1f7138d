// `dltrace stats --json`: analysis/trace_stats.h as one JSON object (format "dltrace-stats").
#pragma once

#include <cstdio>

#include "absl/status/status.h"
#include "analysis/trace_stats.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

absl::Status write_stats_json(const TraceStats& stats, const TraceModel& model, std::FILE* out);

}  // namespace dltrace::viewer

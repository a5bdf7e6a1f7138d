// `dltrace stats` as aligned text: the process and how complete its trace is, then the tables of
// analysis/trace_stats.h, and for a process that ran Python code the native load time per
// top-level import.
#pragma once

#include <string>

#include "analysis/trace_stats.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

std::string stats_text(const TraceStats& stats, const TraceModel& model);

}  // namespace dltrace::viewer

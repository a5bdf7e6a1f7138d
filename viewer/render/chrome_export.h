// `dltrace export --format chrome`: the Trace Event format (JSON object form) that Perfetto and
// chrome://tracing open. One track per thread; dlopen/dlmopen/dlclose are complete ("X") spans,
// so a dlopen made by a constructor during another dlopen nests inside it; dlsym/dlvsym are
// thread-scoped instant ("i") events. Times are microseconds since the process started.
// Streams: one event rendered at a time, memory bounded by threads and nesting depth.
#pragma once

#include "absl/status/status.h"
#include "dltrace/reader.h"
#include "render/json_writer.h"

namespace dltrace::viewer {

// Writes the Trace Event JSON of `reader` to `out` and finishes it (flush, write errors).
absl::Status write_chrome_export(const TraceReader& reader, JsonWriter& out);

}  // namespace dltrace::viewer

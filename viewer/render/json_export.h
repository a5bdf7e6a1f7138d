// The machine-readable export (`dltrace export --format json|jsonl`), exactly the schema of
// /work/shared/spec/interface.md plus a few documented extra fields. Streams: events are
// rendered one at a time from the reader; stacks are rendered once per stack id and reused.
#pragma once

#include <functional>

#include "absl/status/status.h"
#include "analysis/symbolizer.h"
#include "dltrace/reader.h"
#include "render/json_writer.h"

namespace dltrace::viewer {

enum class JsonFlavor {
  kJson,   // one JSON object
  kJsonl,  // JSON Lines: a process line, then object and event lines in seq order
};

struct JsonExportOptions {
  JsonFlavor flavor = JsonFlavor::kJson;
  bool stacks = true;     // native and Python stacks of every event
  bool symbolize = true;  // function/file/line via debug info (else only object + offset)
  // For a failed dlopen/dlsym: "probe" or "failure" (analysis/outcome.h), written as "kind".
  std::function<const char*(const format::EventSlot&)> failed_kind;
};

// How the process ended, as members of the current object: "end", "exit_status", "signal",
// "end_via", "exec_target" (shared by the export and `stats --json`).
void write_process_end(JsonWriter& w, const ProcessInfo& p);

// Writes the export of `reader` to `out` and finishes it (flush, write errors).
absl::Status write_json_export(const TraceReader& reader, const JsonExportOptions& options,
                               JsonWriter& out);

}  // namespace dltrace::viewer

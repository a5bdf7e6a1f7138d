// `dltrace tree` as a function, so that tests can run it on any reader and capture its output.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dltrace/reader.h"
#include "render/terminal_style.h"

namespace dltrace::viewer {

struct TreeOptions {
  // One trace file: its load tree. Several, or a directory of them (DLTRACE_OUTPUT ending in
  // '/'): the process tree, with each process's load tree under it.
  std::vector<std::string> traces;
  bool all = false;  // show system libraries and the recorder's own object
  int depth = -1;    // levels below the roots to show; -1 = no limit
  ColorMode color = ColorMode::kAuto;
};

// Prints every object of `reader` as a load tree to `out`, coloured if `color`.
absl::Status tree_trace(const TraceReader& reader, const TreeOptions& options, bool color,
                        std::FILE* out);

struct NamedTrace {
  std::string path;
  const TraceReader* reader = nullptr;
};

// Prints the process tree of `traces` (one per process image, linked by pid/ppid and exec),
// each process with its load tree; a fork child's objects from before the fork are folded.
absl::Status process_tree_trace(const std::vector<NamedTrace>& traces, const TreeOptions& options,
                                bool color, std::FILE* out);

// The trace files named by the command line: files as given, directories expanded to their
// *.trace files (sorted by name).
absl::StatusOr<std::vector<std::string>> expand_trace_paths(const std::vector<std::string>& paths);

}  // namespace dltrace::viewer

// `dltrace tree` as a function, so that tests can run it on any reader and capture its output.
#pragma once

#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "dltrace/reader.h"
#include "render/terminal_style.h"

namespace dltrace::viewer {

struct TreeOptions {
  std::string trace;
  bool all = false;  // show system libraries and the recorder's own object
  int depth = -1;    // levels below the roots to show; -1 = no limit
  ColorMode color = ColorMode::kAuto;
};

// Prints every object of `reader` as a load tree to `out`, coloured if `color`.
absl::Status tree_trace(const TraceReader& reader, const TreeOptions& options, bool color,
                        std::FILE* out);

}  // namespace dltrace::viewer

// `dltrace tree` as a function, so that tests can run it on any reader and capture its output.
#pragma once

#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

enum class ColorMode { kAuto, kAlways, kNever };

struct TreeOptions {
  std::string trace;
  bool all = false;  // show system libraries and the recorder's own object
  int depth = -1;    // levels below the roots to show; -1 = no limit
  ColorMode color = ColorMode::kAuto;
};

// Whether to emit ANSI colour: kAlways yes, kNever no, kAuto only when the output is a terminal
// and NO_COLOR is unset or empty (https://no-color.org).
bool use_color(ColorMode mode, bool output_is_terminal);

// Prints every object of `reader` as a load tree to `out`, coloured if `color`.
absl::Status tree_trace(const TraceReader& reader, const TreeOptions& options, bool color,
                        std::FILE* out);

}  // namespace dltrace::viewer

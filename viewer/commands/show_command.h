// `dltrace show` as functions, so that tests can run it on any reader and capture its output.
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "dltrace/reader.h"
#include "render/terminal_style.h"

namespace dltrace::viewer {

struct ShowOptions {
  std::string trace;
  bool stacks = false;
  std::string seq_range;  // "A-B", "A-", "-B" or "A"
  std::vector<std::string> calls;
  bool failed = false;
  // kAuto colours only when `out` is a terminal (and NO_COLOR is unset).
  ColorMode color = ColorMode::kAuto;
  bool follow = false;
};

// Prints the header and the (filtered) event log of `reader` to `out`.
absl::Status show_trace(const TraceReader& reader, const ShowOptions& options, std::FILE* out);

struct FollowControl {
  std::chrono::milliseconds poll_interval{150};
  // How long a reserved but not yet committed seq holds back the events after it (a dlopen
  // still running commits after its nested calls); after that they are printed without it.
  std::chrono::milliseconds hold_back{2000};
  // Polled between reads: true ends the follow (SIGINT in the CLI).
  std::function<bool()> stop = [] { return false; };
};

// `show --follow`: prints the events of the trace at `options.trace` as it grows, re-reading it
// every poll_interval, until its header records the end of the process or `control.stop()`.
// Waits for the file to appear if it does not exist yet.
absl::Status follow_trace(const ShowOptions& options, const FollowControl& control, std::FILE* out);

}  // namespace dltrace::viewer

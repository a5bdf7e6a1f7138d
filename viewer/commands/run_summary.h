// What `dltrace run` says last on its stderr: the trace files written and, when calls failed, in
// which processes, how many, and the command to type next (`dltrace explain FILE`). Failed calls
// are judged as explain judges them (analysis/outcome): a probe is not a failure.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace dltrace::viewer {

struct TracedProcess {
  std::string path;
  int32_t pid = 0;
  std::string exe;  // basename; "" if the trace does not say
  uint64_t failures = 0;
  uint64_t probes = 0;
  bool readable = true;
};

// Reads each trace's header and classifies its failed calls (only traces that have any).
std::vector<TracedProcess> summarize_traces(const std::vector<std::string>& paths);

// The closing lines. `processes`: the run's own process first (its last image when it exec'ed),
// then its children. `explained`: explain's findings were already printed for the failed ones.
void print_run_summary(const std::vector<TracedProcess>& processes, bool explained, std::FILE* out);

// With `dltrace run --explain`: explain's text for each trace with failed calls.
void print_explanations(const std::vector<TracedProcess>& processes, bool color, std::FILE* out);

}  // namespace dltrace::viewer

// `dltrace run`'s side of the recorder protocol (see preload/run_report.h): a random run token
// that marks the traces its own processes create, and a report file in which processes say they
// were not traced, recorded to a fallback place, or stopped recording.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dltrace::viewer {

struct RunReportEntry {
  pid_t pid = 0;
  std::string exe;   // basename
  std::string kind;  // not-traced | fallback | stopped
  std::string text;
  std::string fallback_path() const;  // kind fallback: where the trace went ("" if unknown)
};

class RunSession {
 public:
  // Generates the token and creates the report (a fresh directory under $TMPDIR or /tmp), and
  // sets DLTRACE_RUN_TOKEN and DLTRACE_RUN_REPORT in this process's environment for the child.
  // Without a report (no writable temporary directory) the run still works, reporting nothing.
  RunSession();
  ~RunSession();  // removes the report and its directory
  RunSession(const RunSession&) = delete;
  RunSession& operator=(const RunSession&) = delete;

  uint64_t token() const { return token_; }
  // `path` is a regular file (not a symlink) whose header carries this run's token.
  bool owns(const std::string& path) const;
  // What the recorders reported, in order (bounded: a runaway process cannot flood us).
  std::vector<RunReportEntry> entries() const;

 private:
  uint64_t token_ = 0;
  std::string dir_;
  std::string report_;
};

// One concise stderr line per reported process (at most a screenful, then a count).
void print_run_report(const std::vector<RunReportEntry>& entries);

// Creates the missing directories of `dir` with mode 0700 (whatever the umask); existing ones are
// left as they are.
void create_private_directories(const std::string& dir);

}  // namespace dltrace::viewer

// What the recorder tells about itself: to the program's stderr (unless DLTRACE_QUIET=1) and to
// the `dltrace run` that launched the process tree (DLTRACE_RUN_REPORT), which prints it after the
// run. No malloc, no stdio, no locks: safe before main, in fork children and on full disks.
#pragma once

#include <cstdint>

namespace dltrace::preload {

// Reads DLTRACE_QUIET, DLTRACE_RUN_REPORT and DLTRACE_RUN_TOKEN once (init of the primary);
// fork children keep what their parent read. In secure-execution mode (setuid/setgid) nothing is
// ever written to the run report: its path comes from the environment.
void run_report_init();

bool quiet();

// DLTRACE_RUN_TOKEN: exactly 16 lowercase hex digits, nonzero; 0 when unset or malformed.
uint64_t run_token();

// Appends "<pid>\t<exe basename>\t<kind>\t<text>\n" to the run report, if there is one. `kind`:
// "not-traced" (this process records nothing), "fallback" (its trace is not where
// DLTRACE_OUTPUT says) or "stopped" (it stopped recording, e.g. its disk filled up). Tabs and
// newlines in `text` become spaces. One open(O_APPEND, no O_CREAT, no symlink, no blocking on a
// FIFO), a regular-file check, one write(2). Preserves errno. Async-signal-safe.
void report_to_run(const char* kind, const char* text);

// report_to_run(kind, text), and "dltrace: <text><stderr_tail>\n" on stderr unless quiet().
void report_problem(const char* kind, const char* text, const char* stderr_tail = "");

}  // namespace dltrace::preload

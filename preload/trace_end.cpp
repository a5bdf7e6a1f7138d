// How the trace of a process image ends, when the process does not get to say so itself: exit()
// and a return from main (on_exit), _exit/_Exit and exec* (their interposers, process_end.cpp),
// and a fatal signal at SIG_DFL (signal_dispositions.cpp). Each records the end in this process's
// own trace only, after bringing the object table up to date where that is safe.
#include <string.h>
#include <unistd.h>

#include <cstdio>

#include "event_clock.h"
#include "fork_gate.h"
#include "object_table.h"
#include "recorder_internal.h"
#include "run_report.h"
#include "stderr_line.h"

namespace dltrace::preload {
namespace recorder {
namespace {

void message(const char* text) {
  write_stderr(text, strlen(text));
}

void report_end() {
  if (quiet()) return;
  format::FileHeader* h = g_writer.header();
  if (h == nullptr) return;
  const auto events = __atomic_load_n(&h->next_seq, __ATOMIC_RELAXED) - 1;
  // A process that made no dl* call (a shell in a wrapper script, a short helper) would only add
  // noise: its trace still holds the object table.
  if (events == 0) return;
  char line[4400];
  snprintf(line, sizeof(line), "dltrace: %llu event%s written to %s\n",
           static_cast<unsigned long long>(events), events == 1 ? "" : "s", g_writer.path());
  message(line);
}

// Loads made without a traced call (libc's iconv modules, NSS) since the last event. Not from a
// signal handler that interrupted the recorder on this thread (_exit and exec are async-signal-
// safe): the object table's lock may be held right here.
void sync_at_end() {
  if (fork_gate::in_section()) return;
  objects::Attribution a;
  a.mode = objects::Mode::kDiscovered;
  a.seq = next_seq();
  objects::sync_if_changed(a, a.seq);
}

}  // namespace

void on_process_exit(int status, void*) {
  if (!owns_trace()) return;
  sync_at_end();
  refresh_clock(g_writer.header());
  g_writer.set_end(format::EndKind::kExit, status, format::kEndViaExit);
  report_end();
}

// Async-signal-safe: the header fields only.
void record_fatal_signal(int sig) {
  if (g_state.load(std::memory_order_acquire) != kActive || getpid() != g_pid) return;
  refresh_clock(g_writer.header());
  g_writer.set_end(format::EndKind::kSignal, sig, format::kEndViaFatalSignal);
}

}  // namespace recorder

using namespace recorder;

void record_process_exit(int status, bool underscore) {
  if (!owns_trace()) return;
  sync_at_end();
  refresh_clock(g_writer.header());
  g_writer.set_end(format::EndKind::kExit, status & 0xFF,
                   underscore ? format::kEndViaUnderscoreExit : format::kEndViaExit);
}

void record_exec(const char* target) {
  if (!owns_trace()) return;
  sync_at_end();
  refresh_clock(g_writer.header());
  g_writer.set_end(format::EndKind::kExec, 0, format::kEndViaExec,
                   target != nullptr ? g_writer.intern_string(target) : format::kNoId);
}

void record_exec_failed() {
  if (!owns_trace()) return;
  g_writer.set_end(format::EndKind::kRunning, 0, format::kEndViaNone, format::kNoId);
}

}  // namespace dltrace::preload

// What the files of the recorder share: its process-wide state (defined in recorder_state.cpp)
// and the functions one of them calls in another. The recorder is split by concern:
//   startup.cpp           lazy, idempotent init from the environment; the constructor
//   event_clock.{h,cpp}   event times (cycle counter or CLOCK_MONOTONIC) and their calibration
//   process_info.cpp      command line, cwd, outer pids in the trace header and catalog
//   process_identity.cpp  telling a fork/clone child from its parent; the child's new trace
//   trace_end.cpp         how the traced process image ends (exit, _exit, exec, fatal signal)
//   call_recording.cpp    begin/end of dlopen, dlmopen, dlclose (and every forwarded call)
//   lookup_recording.cpp  dlsym/dlvsym in one pass: the hot path
//   namespaces.cpp        which API records a call: the primary, or a dlmopen namespace's copy
//   c_api.cpp             the exported dltrace_* functions
// Nothing outside these files includes this header; the rest of the preload sees recorder.h.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

#include "dltrace/format.h"
#include "recorder.h"
#include "stack_capture.h"
#include "thread_state.h"
#include "trace_writer.h"

// Hidden declarations: the compiler then addresses the state directly instead of through the
// GOT (-fvisibility=hidden applies to definitions only), as it did when it was file-local.
#pragma GCC visibility push(hidden)

namespace dltrace::preload::recorder {

// ---- state (recorder_state.cpp) ----
enum State : int { kUninit, kInitializing, kActive, kOff, kSecondary };

extern constinit std::atomic<int> g_state;
extern constinit TraceWriter g_writer;
extern constinit std::atomic<uint32_t> g_stack_depth;  // native frames per event, 0 = none
extern constinit bool g_live;                          // DLTRACE_LIVE: one line per event
extern constinit pid_t g_pid;                          // the process g_writer's trace is for
// What init read from the environment; a fork child opens its own trace with the same.
extern constinit char g_pattern[4096];
extern constinit uint64_t g_buffer_size;
extern constinit const char* g_config_path;
extern constinit char g_self_real[4096];  // realpath of this library, loaded into new namespaces

// The seq the next event will get (for objects found outside any event's own seq).
inline uint64_t next_seq() {
  return __atomic_load_n(&g_writer.header()->next_seq, __ATOMIC_RELAXED);
}

// ---- startup.cpp ----
// Idempotent; returns at once when another thread is initialising (g_state says kInitializing).
// The constructor passes the arguments ld.so gave it (see write_process_info); a first traced
// call made before it ran passes none.
void init(int argc = 0, char** argv = nullptr);
// This process records nothing: one line on stderr (none with DLTRACE_QUIET=1), and the reason
// goes to the `dltrace run` that launched us, if any.
void fail(const char* what);

// A native stack for an event.
inline uint32_t capture_native_stack(const void* caller, uint32_t depth) {
  return stack::capture(g_writer, caller, depth);
}

// ---- process_info.cpp ----
// The command line, working directory and LD_LIBRARY_PATH. `start_argv` (with `start_argc`):
// the arguments ld.so passed to our constructor, laid out as /proc/self/cmdline would give them,
// without reading it; nullptr (a fork child, a recorder started before its constructor ran):
// /proc/self/cmdline, which also shows what the program may since have written over them.
void write_process_info(int start_argc = 0, char** start_argv = nullptr);
void write_outer_pids();

// ---- process_identity.cpp ----
// 1 while this process's recorder state is its own; every fork-like child sees 0 (see there).
extern constinit uint32_t* g_same_process;
inline bool same_process() {
  return __atomic_load_n(g_same_process, __ATOMIC_RELAXED) != 0;
}
void mark_same_process();
// The atfork child handler: a new trace for the new process.
void after_fork_child();
// A child made without atfork handlers (raw clone or fork syscall) noticed on its first call.
void after_unannounced_fork();
// Whether this recorder writes the calling process's own trace (never a vfork parent's).
bool owns_trace();

// ---- trace_end.cpp ----
// The on_exit handler and the fatal-signal recorder that init registers.
void on_process_exit(int status, void*);
void record_fatal_signal(int sig);

// ---- call_recording.cpp ----
bool api_begin(CallState* cs);
void api_end(CallState* cs);

}  // namespace dltrace::preload::recorder

#pragma GCC visibility pop

// Start-up: the recorder initialises lazily and idempotently on the first traced call or in its
// constructor, whichever comes first (a dependency's constructor may call dlopen before ours
// ran). It reads the environment, opens the trace, records what is loaded, and registers the
// fork, exit and fatal-signal handlers. Any failure leaves the process untraced, never changed.
#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <cstdio>

#include "call_nesting.h"
#include "caller_context.h"
#include "elf_symbols.h"
#include "event_clock.h"
#include "fork_gate.h"
#include "object_table.h"
#include "only_filter.h"
#include "overrides.h"
#include "recorder_internal.h"
#include "run_report.h"
#include "signal_dispositions.h"
#include "stack_capture.h"

namespace dltrace::preload::recorder {
namespace {

bool env_flag(const char* name) {
  const char* v = getenv(name);
  return v != nullptr && v[0] == '1' && v[1] == '\0';
}

// "64M", "1G", "262144", "512K"; also accepts a trailing "B"/"iB".
bool parse_size(const char* text, uint64_t* out) {
  if (text == nullptr || *text < '0' || *text > '9') return false;
  uint64_t v = 0;
  const char* p = text;
  while (*p >= '0' && *p <= '9') {
    if (v > (UINT64_MAX - 9) / 10) return false;
    v = v * 10 + static_cast<uint64_t>(*p++ - '0');
  }
  unsigned shift = 0;
  switch (*p) {
    case 'k':
    case 'K':
      shift = 10;
      ++p;
      break;
    case 'm':
    case 'M':
      shift = 20;
      ++p;
      break;
    case 'g':
    case 'G':
      shift = 30;
      ++p;
      break;
    default:
      break;
  }
  if (shift != 0 && p[0] == 'i' && p[1] == 'B')
    p += 2;
  else if (p[0] == 'B')
    ++p;
  if (*p != '\0') return false;
  if (shift != 0 && v > (UINT64_MAX >> shift)) return false;
  *out = v << shift;
  return true;
}

bool parse_uint(const char* text, uint32_t* out) {
  if (text == nullptr || *text == '\0') return false;
  uint64_t v = 0;
  for (const char* p = text; *p; ++p) {
    if (*p < '0' || *p > '9') return false;
    v = v * 10 + static_cast<uint64_t>(*p - '0');
    if (v > 1000000) return false;
  }
  *out = static_cast<uint32_t>(v);
  return true;
}

// In a dlmopen namespace the first object dl_iterate_phdr reports is this library itself (in the
// base namespace it is the executable).
bool first_object_is_self() {
  struct Ctx {
    bool self;
  } ctx{false};
  fork_gate::iterate_phdr(
      [](dl_phdr_info* info, size_t, void* arg) {
        static_cast<Ctx*>(arg)->self =
            elf::contains(*info, reinterpret_cast<uintptr_t>(&first_object_is_self));
        return 1;
      },
      &ctx);
  return ctx.self;
}

// ld.so calls constructors with the program's arguments (glibc's _dl_init).
__attribute__((constructor)) void recorder_constructor(int argc, char** argv, char**) {
  init(argc, argv);
}

}  // namespace

void fail(const char* what) {
  report_problem("not-traced", what, "; not recording");
}

void init(int argc, char** argv) {
  int expected = kUninit;
  if (!g_state.compare_exchange_strong(expected, kInitializing, std::memory_order_acq_rel)) return;
  // DLTRACE_ONLY (dltrace run --only): a process it does not name records nothing and creates no
  // file; its children decide for themselves (the variable stays in the environment). Decided
  // first, so that such a process does as little as it can (no walk of the loaded objects, no
  // first touches of the recorder's memory). A dlmopen copy in such a process is off as well.
  char only_error[512];
  if (!selected_by_only(getenv("DLTRACE_ONLY"), only_error, sizeof only_error)) {
    g_state.store(kOff, std::memory_order_release);
    if (only_error[0]) {
      run_report_init();
      fail(only_error);
    }
    return;
  }
  if (first_object_is_self()) {
    // A second instance inside a dlmopen namespace: no file of its own; the primary attaches us.
    g_state.store(kSecondary, std::memory_order_release);
    return;
  }
  run_report_init();
  g_live = env_flag("DLTRACE_LIVE");
  g_writer.allow_fallback(true);
  if (getauxval(AT_SECURE) != 0) {
    g_state.store(kOff, std::memory_order_release);
    fail("secure-execution mode (setuid/setgid program)");
    return;
  }
  char what[4400];
  const char* size_text = getenv("DLTRACE_BUFFER_SIZE");
  if (size_text != nullptr && *size_text != '\0' &&
      (!parse_size(size_text, &g_buffer_size) || g_buffer_size == 0)) {
    snprintf(what, sizeof(what),
             "invalid DLTRACE_BUFFER_SIZE '%.200s' (expected a size such as 64M)", size_text);
    g_state.store(kOff, std::memory_order_release);
    fail(what);
    return;
  }
  uint32_t depth = 32;
  const char* depth_text = getenv("DLTRACE_STACK_DEPTH");
  if (depth_text != nullptr && *depth_text != '\0' && !parse_uint(depth_text, &depth)) {
    snprintf(what, sizeof(what),
             "invalid DLTRACE_STACK_DEPTH '%.200s' (expected a number of frames)", depth_text);
    g_state.store(kOff, std::memory_order_release);
    fail(what);
    return;
  }
  if (depth > stack::kMaxDepth) depth = stack::kMaxDepth;
  const char* output = getenv("DLTRACE_OUTPUT");
  snprintf(g_pattern, sizeof(g_pattern), "%s",
           output && *output ? output : "./dltrace.%e.%p.trace");
  g_config_path = load_overrides_from_env();
  if (!g_writer.open(g_pattern, g_buffer_size, depth, what, sizeof(what))) {
    g_state.store(kOff, std::memory_order_release);
    fail(what);
    return;
  }
  g_pid = g_writer.header()->pid;  // the writer's getpid(), not one more
  if (g_config_path) g_writer.set_config_path(g_config_path);
  start_clock(g_writer.header());
  if (!trampoline_available())
    __atomic_fetch_or(&g_writer.header()->recorder_flags, format::kRecorderCallerEmulated,
                      __ATOMIC_RELAXED);
  g_stack_depth.store(depth, std::memory_order_relaxed);
  objects::set_writer(&g_writer);
  objects::Attribution startup;
  startup.mode = objects::Mode::kStartup;
  objects::sync(startup, 0);
  set_resident_predicate(objects::is_resident);
  if (const char* self = objects::recorder_path()) {
    // A relative LD_PRELOAD path is made absolute now, before the program may chdir; an
    // absolute one is used as it is (realpath would cost a readlink per path component).
    if (self[0] == '/' || realpath(self, g_self_real) == nullptr)
      snprintf(g_self_real, sizeof(g_self_real), "%s", self);
  }
  write_process_info(argc, argv);
  write_outer_pids();
  mark_same_process();
  static bool registered = false;
  if (!registered) {
    registered = true;
    fork_gate::install(after_fork_child);
    on_exit(on_process_exit, nullptr);
    signals::install_fatal_handlers(record_fatal_signal);
  }
  g_state.store(kActive, std::memory_order_release);
}

}  // namespace dltrace::preload::recorder

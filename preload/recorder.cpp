// Recorder state and lifecycle: lazy idempotent init from the environment, the primary's
// call_begin/call_end, fork, end of process, fatal signals, the dltrace_* C API, and the
// secondary instance that lives in each dlmopen namespace.
#include "recorder.h"
#include "fork_gate.h"
#include "stderr_line.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <optional>

#include "caller_context.h"
#include "signal_dispositions.h"
#include "live_printer.h"
#include "object_table.h"
#include "python_stack.h"
#include "real_functions.h"
#include "run_report.h"
#include "only_filter.h"
#include "stack_capture.h"
#include "symbol_name_cache.h"
#include "thread_state.h"
#include "trace_writer.h"

namespace dltrace::preload {

constinit thread_local ThreadState t_state{};

uint32_t current_tid() {
  uint32_t tid = t_state.tid;
  if (__builtin_expect(tid == 0, 0)) t_state.tid = tid = static_cast<uint32_t>(gettid());
  return tid;
}

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

namespace {
// Event times: the invariant TSC when the CPU has one (rdtsc ~7 ns; clock_gettime costs 20-70 ns
// on virtual machines, twice per event), calibrated against CLOCK_MONOTONIC in the header.
constinit bool g_use_tsc = false;

bool invariant_tsc() {
  unsigned eax, ebx, ecx, edx;
  __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0x80000000u), "c"(0));
  if (eax < 0x80000007u) return false;
  __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0x80000007u), "c"(0));
  return (edx & (1u << 8)) != 0;
}
}  // namespace

uint64_t event_clock() { return g_use_tsc ? __builtin_ia32_rdtsc() : now_ns(); }

namespace {

using format::CallKind;
using format::kNoId;

enum State : int { kUninit, kInitializing, kActive, kOff, kSecondary };

constinit std::atomic<int> g_state{kUninit};
constinit TraceWriter g_writer;
constinit std::atomic<uint32_t> g_stack_depth{32};
constinit bool g_live = false;
constinit pid_t g_pid = 0;
constinit char g_pattern[4096];
constinit uint64_t g_buffer_size = 64ull << 20;
constinit const char* g_config_path = nullptr;
constinit std::atomic<const PrimaryApi*> g_attached{nullptr};  // secondary: the primary's API
constinit char g_self_real[4096];                               // realpath of this library

void message(const char* text) { write_stderr(text, strlen(text)); }

// This process records nothing: one line on stderr (none with DLTRACE_QUIET=1), and the reason
// goes to the `dltrace run` that launched us, if any.
void fail(const char* what) {
  report_problem("not-traced", what, "; not recording");
}

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
    case 'k': case 'K': shift = 10; ++p; break;
    case 'm': case 'M': shift = 20; ++p; break;
    case 'g': case 'G': shift = 30; ++p; break;
    default: break;
  }
  if (shift != 0 && p[0] == 'i' && p[1] == 'B') p += 2;
  else if (p[0] == 'B') ++p;
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
        const auto self = reinterpret_cast<uint64_t>(&first_object_is_self);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const auto& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD) continue;
          const uint64_t start = info->dlpi_addr + ph.p_vaddr;
          if (self >= start && self < start + ph.p_memsz) static_cast<Ctx*>(arg)->self = true;
        }
        return 1;
      },
      &ctx);
  return ctx.self;
}

// ---- process info ----
constinit char g_cmdline[65536];
constinit const char* g_argv[2048];
constinit char g_cwd[4096];

void write_process_info() {
  int argc = 0;
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t total = 0, n;
    while (total < static_cast<ssize_t>(sizeof(g_cmdline)) - 1 &&
           (n = read(fd, g_cmdline + total, sizeof(g_cmdline) - 1 - total)) > 0)
      total += n;
    close(fd);
    g_cmdline[total] = '\0';
    for (ssize_t i = 0; i < total && argc < 2048;) {
      g_argv[argc++] = g_cmdline + i;
      i += static_cast<ssize_t>(strlen(g_cmdline + i)) + 1;
    }
  }
  if (getcwd(g_cwd, sizeof(g_cwd)) == nullptr) g_cwd[0] = '\0';
  g_writer.write_process(objects::executable_path(), g_cwd, argc, g_argv, getenv("LD_LIBRARY_PATH"));
}

void refresh_clock();
void start_clock();
uint64_t next_seq();

// ---- identity across fork and clone ----

// A word in a private page that every fork-like child (fork, a raw clone or fork syscall) gets
// zeroed (MADV_WIPEONFORK): the hot path tells a new process from one load, without getpid(),
// also where no atfork handler ran. 1 = this process's recorder state is its own.
constinit uint32_t* g_same_process = nullptr;
constinit uint32_t g_same_process_fallback = 1;  // kernels without MADV_WIPEONFORK (< 4.14)

void mark_same_process() {
  if (g_same_process == nullptr) {
    void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED && madvise(page, 4096, MADV_WIPEONFORK) == 0) {
      g_same_process = static_cast<uint32_t*>(page);
    } else {
      if (page != MAP_FAILED) munmap(page, 4096);
      g_same_process = &g_same_process_fallback;
    }
  }
  __atomic_store_n(g_same_process, 1u, __ATOMIC_RELAXED);
}

// pid and ppid as /proc shows them: from outside a PID namespace sandbox (where the process may
// be pid 1 with no parent), as far as the /proc mounted here can see.
void write_outer_pids() {
  format::FileHeader* h = g_writer.header();
  if (h == nullptr) return;
  char buf[2048];
  // The common case costs one readlink: /proc names us by our own pid, and our parent is in our
  // namespace (a PID namespace's first process has ppid 0).
  const ssize_t self = readlink("/proc/self", buf, 32);
  if (self > 0 && h->ppid != 0) {
    int64_t v = 0;
    for (ssize_t i = 0; i < self && buf[i] >= '0' && buf[i] <= '9'; ++i) v = v * 10 + (buf[i] - '0');
    if (v == h->pid) {
      h->outer_pid = h->pid;
      h->outer_ppid = h->ppid;
      return;
    }
  }
  const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = '\0';
  auto field = [&](const char* name) -> int32_t {
    const char* p = strstr(buf, name);
    if (p == nullptr) return 0;
    p += strlen(name);
    while (*p == ' ' || *p == '\t') ++p;
    int64_t v = 0;
    while (*p >= '0' && *p <= '9' && v < INT32_MAX) v = v * 10 + (*p++ - '0');
    return static_cast<int32_t>(v);
  };
  h->outer_pid = field("\nPid:");
  h->outer_ppid = field("\nPPid:");
}

// ---- fork ----
void after_fork_child() {
  t_state.tid = 0;
  mark_same_process();
  if (g_state.load(std::memory_order_relaxed) != kActive) return;
  g_writer.abandon_after_fork();
  g_pid = getpid();
  char error[512];
  if (!g_writer.open(g_pattern, g_buffer_size, g_stack_depth.load(std::memory_order_relaxed), error,
                     sizeof(error))) {
    g_state.store(kOff, std::memory_order_release);
    fail(error);
    return;
  }
  if (g_config_path) g_writer.set_config_path(g_config_path);
  start_clock();
  write_process_info();
  write_outer_pids();
  if (fork_gate::cautious())
    __atomic_fetch_or(&g_writer.header()->recorder_flags, format::kRecorderForkChildCautious, __ATOMIC_RELAXED);
  objects::rewrite_after_fork();
}

// A child made by a raw clone or fork syscall: no atfork handler ran, and nothing is known of the
// locks its parent's threads held. It switches to a trace of its own, cautiously.
__attribute__((noinline)) void after_unannounced_fork() {
  if (getpid() == g_pid) {  // not a new process after all (the page could not be wiped)
    mark_same_process();
    return;
  }
  fork_gate::after_unannounced_fork();
  after_fork_child();
}

// ---- end of process ----
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

// Whether this recorder writes the calling process's own trace: a raw-clone child switches to a
// trace of its own first; a vfork child (sharing the parent's memory) never writes.
bool owns_trace() {
  if (g_state.load(std::memory_order_acquire) != kActive) return false;
  if (__atomic_load_n(g_same_process, __ATOMIC_RELAXED) == 0) after_unannounced_fork();
  return g_state.load(std::memory_order_acquire) == kActive && getpid() == g_pid;
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

void on_process_exit(int status, void*) {
  if (!owns_trace()) return;
  sync_at_end();
  refresh_clock();
  g_writer.set_end(format::EndKind::kExit, status, format::kEndViaExit);
  report_end();
}

// Async-signal-safe: the header fields only.
void record_fatal_signal(int sig) {
  if (g_state.load(std::memory_order_acquire) != kActive || getpid() != g_pid) return;
  refresh_clock();
  g_writer.set_end(format::EndKind::kSignal, sig, format::kEndViaFatalSignal);
}

// ---- the primary's API ----
bool api_begin(CallState* cs);
void api_end(CallState* cs);
uint32_t api_intern(const char* text) { return g_writer.intern_string(text); }

constexpr PrimaryApi kApi = {kPrimaryApiVersion, sizeof(PrimaryApi), api_begin, api_end, api_intern, event_clock};

// (tsc, ns) calibration points in the header; the latest is refreshed on slow paths.
void start_clock() {
  format::FileHeader* h = g_writer.header();
  if (h == nullptr) return;
  g_use_tsc = invariant_tsc();
  if (!g_use_tsc) {
    __atomic_store_n(&h->clock_kind, format::kClockMonotonicNs, __ATOMIC_RELAXED);
    return;
  }
  const uint64_t ns = now_ns();
  const uint64_t tsc = __builtin_ia32_rdtsc();
  h->tsc_base = tsc;
  h->tsc_base_ns = ns;
  h->tsc_latest = tsc;
  h->tsc_latest_ns = ns;
  __atomic_store_n(&h->clock_kind, format::kClockTsc, __ATOMIC_RELEASE);
}

// For human-readable output only.
uint64_t ticks_to_ns(uint64_t ticks) {
  format::FileHeader* h = g_writer.header();
  if (!g_use_tsc || h == nullptr) return ticks;
  const uint64_t dns = now_ns() - h->tsc_base_ns;
  const uint64_t dt = __builtin_ia32_rdtsc() - h->tsc_base;
  if (dt == 0) return ticks;
  return static_cast<uint64_t>(static_cast<long double>(ticks) * dns / dt);
}

void refresh_clock() {
  format::FileHeader* h = g_writer.header();
  if (!g_use_tsc || h == nullptr) return;
  const uint64_t ns = now_ns();
  const uint64_t tsc = __builtin_ia32_rdtsc();
  if (tsc <= __atomic_load_n(&h->tsc_latest, __ATOMIC_RELAXED)) return;
  const uint64_t dns = ns - h->tsc_base_ns;
  if (dns > 0) {
    const auto hz = static_cast<unsigned __int128>(tsc - h->tsc_base) * 1000000000u / dns;  // no overflow
    __atomic_store_n(&h->tsc_hz_estimate, static_cast<uint64_t>(hz), __ATOMIC_RELAXED);
  }
  __atomic_store_n(&h->tsc_latest_ns, ns, __ATOMIC_RELAXED);
  __atomic_store_n(&h->tsc_latest, tsc, __ATOMIC_RELEASE);
}

void sync_internal_loads() {
  objects::Attribution a;
  a.mode = objects::Mode::kInternal;
  objects::sync_if_changed(a, 0);
}

void init() {
  int expected = kUninit;
  if (!g_state.compare_exchange_strong(expected, kInitializing, std::memory_order_acq_rel)) return;
  if (first_object_is_self()) {
    // A second instance inside a dlmopen namespace: no file of its own; the primary attaches us.
    g_state.store(kSecondary, std::memory_order_release);
    return;
  }
  run_report_init();
  g_live = env_flag("DLTRACE_LIVE");
  g_writer.allow_fallback(true);
  // DLTRACE_ONLY (dltrace run --only): a process it does not name records nothing and creates no
  // file; its children decide for themselves (the variable stays in the environment).
  char only_error[512];
  if (!selected_by_only(getenv("DLTRACE_ONLY"), only_error, sizeof only_error)) {
    g_state.store(kOff, std::memory_order_release);
    if (only_error[0]) fail(only_error);
    return;
  }
  if (getauxval(AT_SECURE) != 0) {
    g_state.store(kOff, std::memory_order_release);
    fail("secure-execution mode (setuid/setgid program)");
    return;
  }
  char what[4400];
  const char* size_text = getenv("DLTRACE_BUFFER_SIZE");
  if (size_text != nullptr && *size_text != '\0' && (!parse_size(size_text, &g_buffer_size) || g_buffer_size == 0)) {
    snprintf(what, sizeof(what), "invalid DLTRACE_BUFFER_SIZE '%.200s' (expected a size such as 64M)", size_text);
    g_state.store(kOff, std::memory_order_release);
    fail(what);
    return;
  }
  uint32_t depth = 32;
  const char* depth_text = getenv("DLTRACE_STACK_DEPTH");
  if (depth_text != nullptr && *depth_text != '\0' && !parse_uint(depth_text, &depth)) {
    snprintf(what, sizeof(what), "invalid DLTRACE_STACK_DEPTH '%.200s' (expected a number of frames)", depth_text);
    g_state.store(kOff, std::memory_order_release);
    fail(what);
    return;
  }
  if (depth > stack::kMaxDepth) depth = stack::kMaxDepth;
  const char* output = getenv("DLTRACE_OUTPUT");
  snprintf(g_pattern, sizeof(g_pattern), "%s", output && *output ? output : "./dltrace.%e.%p.trace");
  g_config_path = load_overrides_from_env();
  g_pid = getpid();
  if (!g_writer.open(g_pattern, g_buffer_size, depth, what, sizeof(what))) {
    g_state.store(kOff, std::memory_order_release);
    fail(what);
    return;
  }
  if (g_config_path) g_writer.set_config_path(g_config_path);
  start_clock();
  if (!trampoline_available())
    __atomic_fetch_or(&g_writer.header()->recorder_flags, format::kRecorderCallerEmulated, __ATOMIC_RELAXED);
  g_stack_depth.store(depth, std::memory_order_relaxed);
  objects::set_writer(&g_writer);
  objects::Attribution startup;
  startup.mode = objects::Mode::kStartup;
  objects::sync(startup, 0);
  set_resident_predicate(objects::is_resident);
  if (const char* self = objects::recorder_path()) {
    if (realpath(self, g_self_real) == nullptr) snprintf(g_self_real, sizeof(g_self_real), "%s", self);
  }
  if (depth > 0 && stack::load_unwinder()) sync_internal_loads();
  write_process_info();
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

__attribute__((constructor)) void recorder_constructor() { init(); }

// The seq the next event will get (for objects found outside any event's own seq).
uint64_t next_seq() { return __atomic_load_n(&g_writer.header()->next_seq, __ATOMIC_RELAXED); }

// The traced call this event is nested in on this thread (nullptr: none); marks the event.
const NestFrame* mark_nested(format::EventSlot& s, const ThreadState& ts, uint32_t depth) {
  if (depth == 0) return nullptr;
  const NestFrame* enclosing = &ts.frames[(depth <= kMaxNesting ? depth : kMaxNesting) - 1];
  s.bits |= format::kEventNested;
  s.parent_seq = enclosing->seq;
  return enclosing;
}

// Objects found loaded at an event were brought in by the enclosing dlopen (the event comes
// from its constructor), or else without any traced call (found at `seq`).
objects::Attribution attribution_for(const NestFrame* enclosing, uint64_t seq) {
  objects::Attribution a;
  if (enclosing != nullptr && enclosing->is_open && enclosing->seq != 0) {
    a.mode = objects::Mode::kCall;
    a.seq = enclosing->seq;
    a.caller_object = enclosing->caller_object;
    a.global = enclosing->global != 0;
  } else {
    a.mode = objects::Mode::kDiscovered;
    a.seq = seq;
  }
  return a;
}

bool api_begin(CallState* cs) {
  ThreadState& ts = t_state;
  format::EventSlot& s = cs->slot;
  const auto kind = static_cast<CallKind>(s.call);
  const bool opens = kind == CallKind::kDlopen || kind == CallKind::kDlmopen;
  const bool rare = opens || kind == CallKind::kDlclose;
  // vfork / posix_spawn / raw clone children skip the atfork handler: never write into the
  // parent's file from them.
  if (rare && getpid() != g_pid) return false;
  // dlopen/dlmopen/dlclose reserve their seq now (nested calls and loaded objects refer to it).
  // dlsym/dlvsym reserve it just before the commit: with many threads, a seq held across the
  // call would often be committed after the ring wrapped past it.
  if (rare) s.seq = g_writer.reserve_seq();
  s.tid = current_tid();
  const uint32_t depth = ts.depth;
  const NestFrame* enclosing = mark_nested(s, ts, depth);
  cs->nest_index = depth;
  bool known = false;
  s.caller_object = objects::object_at(reinterpret_cast<uint64_t>(cs->caller), &known);
  if (rare || !known) {  // register what was loaded since the last look
    const uint64_t seq = rare ? s.seq : next_seq();
    const objects::SyncResult r = objects::sync_if_changed(attribution_for(enclosing, seq), seq);
    if (r.added > 0 || r.removed > 0 || !known)
      s.caller_object = objects::object_at(reinterpret_cast<uint64_t>(cs->caller));
  }
  if (opens) {
    if (apply_overrides(cs->name, s.flags, cs->caller, &cs->overrides)) {
      s.effective_flags = cs->overrides.flags;
      if (s.effective_flags != s.flags) s.bits |= format::kEventOverridden;
      for (uint32_t i = 0; i < cs->overrides.count && i < 8; ++i) {
        const AppliedOverride& o = cs->overrides.applied[i];
        g_writer.add_override({s.seq, o.line, o.flags_before, o.flags_after, 0});
        s.override_line = o.line;
      }
    } else {
      cs->overrides.count = 0;
      cs->overrides.flags = s.flags;
      s.effective_flags = s.flags;
    }
  } else {
    s.handle = reinterpret_cast<uint64_t>(cs->handle_in);
    if (cs->handle_in != RTLD_DEFAULT && cs->handle_in != RTLD_NEXT)
      s.handle_object = objects::object_of_handle(cs->handle_in);
  }
  s.name = cs->name ? g_writer.intern_string(cs->name) : kNoId;
  s.version = cs->version ? g_writer.intern_string(cs->version) : kNoId;
  const uint32_t stack_depth = g_stack_depth.load(std::memory_order_relaxed);
  s.stack = stack_depth ? stack::capture(g_writer, cs->caller, stack_depth) : kNoId;
  s.py_stack = capture_python_stack(g_writer);
  if (depth < kMaxNesting)
    ts.frames[depth] = {s.seq, s.caller_object, static_cast<uint8_t>((s.effective_flags & RTLD_GLOBAL) != 0),
                        static_cast<uint8_t>(opens)};
  ts.depth = depth + 1;
  s.time_ns = event_clock();
  return true;
}

void api_end(CallState* cs) {
  t_state.depth = cs->nest_index;
  format::EventSlot& s = cs->slot;
  switch (static_cast<CallKind>(s.call)) {
    case CallKind::kDlopen:
    case CallKind::kDlmopen: {
      const void* handle = reinterpret_cast<const void*>(s.handle);
      objects::Attribution a;
      a.mode = objects::Mode::kCall;
      a.seq = s.seq;
      a.caller_object = s.caller_object;
      a.global = (s.effective_flags & RTLD_GLOBAL) != 0;
      a.opened = handle;
      // A cautious fork child learns here that the loader's write lock is free: a handle the
      // table does not know is an object this call loaded, under that lock, and released it.
      if (handle != nullptr && fork_gate::cautious() && objects::object_of_handle(handle) == kNoId)
        fork_gate::proven_safe();
      objects::sync_if_changed(a, s.seq);
      if (handle != nullptr) {
        s.object = objects::object_of_handle(handle);
        int64_t lmid = 0;
        bool global = false;
        uint64_t load_seq = 0;
        if (objects::handle_info(handle, &lmid, &global, &load_seq)) {
          s.lmid = lmid;
          // Brought in by this call (possibly attributed early by a nested call) or not.
          if (load_seq != s.seq) {
            s.bits |= format::kEventNoLoad;
            if ((s.effective_flags & RTLD_GLOBAL) && !global) objects::promote(handle, s.seq);
          }
        }
      } else if (s.call == static_cast<uint16_t>(CallKind::kDlopen)) {
        // Failed dlopen: the namespace it was made in is the caller's.
        objects::object_at(reinterpret_cast<uint64_t>(cs->caller), nullptr, &s.lmid);
      }
      break;
    }
    case CallKind::kDlsym:
    case CallKind::kDlvsym: {
      s.seq = g_writer.reserve_seq();
      if (s.address != 0) {
        bool found = false;
        s.object = objects::object_at(s.address, &found);
        if (!found) {
          objects::Attribution a;
          a.mode = objects::Mode::kDiscovered;
          a.seq = s.seq;
          if (objects::sync_if_changed(a, s.seq).added > 0) s.object = objects::object_at(s.address);
        }
      }
      break;
    }
    case CallKind::kDlclose: {
      objects::Attribution a;
      a.mode = objects::Mode::kDiscovered;
      a.seq = s.seq;
      if (objects::sync_if_changed(a, s.seq).removed > 0) s.bits |= format::kEventUnloaded;
      s.object = s.handle_object;
      break;
    }
  }
  g_writer.commit(s);
  if (s.call != static_cast<uint16_t>(CallKind::kDlsym) && s.call != static_cast<uint16_t>(CallKind::kDlvsym))
    refresh_clock();
  if (g_live) {
    format::EventSlot shown = s;
    shown.duration_ns = ticks_to_ns(s.duration_ns);
    print_live_event(shown, cs->name, cs->version, cs->error_text[0] ? cs->error_text : nullptr);
  }
}

// Which objects a lookup involved: the caller's, the handle's and the one defining the result.
// Memoised per thread in the object table. A miss on the caller or the result means objects were
// loaded since the last look: by the enclosing dlopen (a constructor calling dlsym), or without
// any traced call. They are registered first, as api_begin does.
void attribute_lookup(format::EventSlot& s, const void* handle, const NestFrame* enclosing) {
  objects::LookupObjects o;
  if (!objects::lookup_objects(s.caller_ip, handle, s.address, &o) &&
      objects::sync_if_changed(attribution_for(enclosing, s.seq), s.seq).added > 0)
    objects::lookup_objects(s.caller_ip, handle, s.address, &o);
  s.caller_object = o.caller;
  s.handle_object = o.handle;
  s.object = o.result;
}

}  // namespace

void* record_lookup(void* handle, const char* symbol, const char* version, const void* caller) {
  const RealFunctions& real = real_functions();
  // RTLD_DEFAULT and RTLD_NEXT depend on the caller: those calls are made on its behalf.
  const bool by_caller = handle == RTLD_DEFAULT || handle == RTLD_NEXT;
  auto call = [&](const CallerContext* ctx) {
    if (ctx != nullptr) return version ? ctx->dlvsym(handle, symbol, version) : ctx->dlsym(handle, symbol);
    return version ? real.dlvsym(handle, symbol, version) : real.dlsym(handle, symbol);
  };
  ThreadState& ts = t_state;
  format::EventSlot s{};
  s.call = static_cast<uint16_t>(version ? CallKind::kDlvsym : CallKind::kDlsym);
  s.tid = current_tid();
  s.handle = reinterpret_cast<uint64_t>(handle);
  s.caller_ip = reinterpret_cast<uint64_t>(caller);
  s.error = kNoId;
  s.object = kNoId;
  // Everything that may run foreign code (the unwinder, Python) happens before the call, so that
  // nothing can touch dlerror between a failed call and its replay below.
  const uint32_t stack_depth = g_stack_depth.load(std::memory_order_relaxed);
  s.stack = stack_depth ? stack::capture(g_writer, caller, stack_depth) : kNoId;
  s.py_stack = capture_python_stack(g_writer);
  const uint32_t depth = ts.depth;
  const NestFrame* enclosing = mark_nested(s, ts, depth);
  // Calls nested in this one (an IFUNC resolver's) see it as their enclosing call; its seq is
  // not reserved yet (see api_begin), so they get parent_seq 0.
  if (depth < kMaxNesting) ts.frames[depth] = {0, kNoId, 0, 0};
  ts.depth = depth + 1;

  std::optional<CallerContext> on_behalf;
  if (by_caller) on_behalf.emplace(caller);
  const CallerContext* ctx = on_behalf ? &*on_behalf : nullptr;
  if (ctx != nullptr && !ctx->preserved()) s.bits |= format::kEventCallerEmulated;
  s.time_ns = event_clock();
  void* r = call(ctx);
  s.duration_ns = event_clock() - s.time_ns;
  ts.depth = depth;
  char error_text[512];  // for DLTRACE_LIVE (the dlerror buffer is gone after the replay)
  error_text[0] = '\0';
  if (r == nullptr) {
    if (const char* e = real.dlerror()) {
      s.error = g_writer.intern_string(e);
      if (g_live) snprintf(error_text, sizeof error_text, "%s", e);
      // Re-arm the error for the program: the identical call fails the same way.
      r = call(ctx);
    }
  }
  s.address = reinterpret_cast<uint64_t>(r);
  // A NULL symbol value with no error (IFUNC returning NULL) is still a successful lookup.
  if (r != nullptr || s.error == kNoId) s.bits |= format::kEventOk;
  s.name = intern_symbol_name(g_writer, symbol);
  s.version = version ? g_writer.intern_string(version) : kNoId;
  s.seq = g_writer.reserve_seq();
  attribute_lookup(s, handle, enclosing);
  g_writer.commit(s);
  if (g_live) {
    format::EventSlot shown = s;
    shown.duration_ns = ticks_to_ns(s.duration_ns);
    print_live_event(shown, symbol, version, error_text[0] ? error_text : nullptr);
  }
  return r;
}

void record_process_exit(int status, bool underscore) {
  if (!owns_trace()) return;
  sync_at_end();
  refresh_clock();
  g_writer.set_end(format::EndKind::kExit, status & 0xFF,
                   underscore ? format::kEndViaUnderscoreExit : format::kEndViaExit);
}

void record_exec(const char* target) {
  if (!owns_trace()) return;
  sync_at_end();
  refresh_clock();
  g_writer.set_end(format::EndKind::kExec, 0, format::kEndViaExec,
                   target != nullptr ? g_writer.intern_string(target) : kNoId);
}

void record_exec_failed() {
  if (!owns_trace()) return;
  g_writer.set_end(format::EndKind::kRunning, 0, format::kEndViaNone, kNoId);
}

const PrimaryApi* primary_api() { return &kApi; }

const PrimaryApi* active_api() {
  int s = g_state.load(std::memory_order_acquire);
  if (__builtin_expect(s == kActive, 1)) {
    if (__builtin_expect(__atomic_load_n(g_same_process, __ATOMIC_RELAXED) != 0, 1)) return &kApi;
    after_unannounced_fork();
    return g_state.load(std::memory_order_acquire) == kActive ? &kApi : nullptr;
  }
  if (s == kUninit) {
    init();
    s = g_state.load(std::memory_order_acquire);
    if (s == kActive) return &kApi;
  }
  if (s == kSecondary) return g_attached.load(std::memory_order_acquire);
  return nullptr;
}

bool is_secondary_instance() {
  active_api();
  return g_state.load(std::memory_order_acquire) == kSecondary;
}

void attach_to_primary(const PrimaryApi* api) {
  if (g_state.load(std::memory_order_acquire) != kSecondary) return;
  if (api == nullptr || api->version != kPrimaryApiVersion || api->size < sizeof(PrimaryApi)) return;
  g_attached.store(api, std::memory_order_release);
}

long prepare_new_namespace(const CallState* cs, void** instance_handle) {
  *instance_handle = nullptr;
  if (g_state.load(std::memory_order_acquire) != kActive || g_self_real[0] == '\0') return -1;
  const RealFunctions& real = real_functions();
  if (real.dlmopen == nullptr || real.dlinfo == nullptr || real.dlsym == nullptr) return -1;
  InternalGuard guard;
  void* h = real.dlmopen(LM_ID_NEWLM, g_self_real, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return -1;
  Lmid_t lmid = 0;
  using AttachFn = int (*)(const void*);
  auto attach = reinterpret_cast<AttachFn>(real.dlsym(h, "dltrace_attach_namespace"));
  if (attach == nullptr || real.dlinfo(h, RTLD_DI_LMID, &lmid) != 0 || attach(&kApi) != 0) {
    real.dlclose(h);
    return -1;
  }
  *instance_handle = h;
  // Attribute our instance (and the libc it brings into the namespace) to this dlmopen now, so
  // that the program's library is recognised as the opened object afterwards.
  objects::Attribution a;
  a.mode = objects::Mode::kCall;
  a.seq = cs->slot.seq;
  a.caller_object = cs->slot.caller_object;
  a.opened = h;
  objects::sync(a, cs->slot.seq);
  return lmid;
}

void release_new_namespace(void* instance_handle) {
  if (instance_handle == nullptr) return;
  InternalGuard guard;
  real_functions().dlclose(instance_handle);
}

}  // namespace dltrace::preload

// ---- exported C API ----
using namespace dltrace::preload;

extern "C" __attribute__((visibility("default"))) int dltrace_set_stack_depth(unsigned depth) {
  if (active_api() != primary_api()) return -1;
  if (depth > stack::kMaxDepth) depth = stack::kMaxDepth;
  if (depth > 0) {
    // Program loads first (so that they are not mistaken for ours), then ours.
    objects::Attribution a;
    a.mode = objects::Mode::kDiscovered;
    a.seq = next_seq();  // the next event
    objects::sync_if_changed(a, a.seq);
    if (!stack::load_unwinder()) return -1;
    sync_internal_loads();
  }
  g_stack_depth.store(depth, std::memory_order_relaxed);
  return 0;
}

extern "C" __attribute__((visibility("default"))) const char* dltrace_trace_path(void) {
  if (active_api() != primary_api()) return nullptr;
  return g_writer.path();
}

extern "C" __attribute__((visibility("default"))) int dltrace_attach_namespace(const void* primary) {
  if (!is_secondary_instance()) return -1;
  attach_to_primary(static_cast<const PrimaryApi*>(primary));
  return g_attached.load() == primary ? 0 : -1;
}

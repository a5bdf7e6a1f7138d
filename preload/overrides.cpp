// Flag overrides inside the recorder: loads DLTRACE_CONFIG once, then matches each
// dlopen/dlmopen against the rules before the real call. See overrides.h.
#include "overrides.h"

#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "common/config.h"
#include "library_resolver.h"
#include "stderr_line.h"

namespace dltrace::preload {
namespace {

struct State {
  config::Config config;
  char* path = nullptr;  // malloc'ed: nothing on this path may throw (std::bad_alloc would abort)
};

// Published once by load_overrides_from_env() (release) and read by every dlopen wrapper
// (acquire: a plain load on x86-64); never freed, since a dlopen may run during exit.
std::atomic<const State*> g_state{nullptr};
std::atomic<bool> g_loaded{false};

// The one line for a config that cannot be used, whatever DLTRACE_QUIET says (spec): built
// without allocating, control characters escaped, written without risking SIGPIPE.
void print_error(const char* path, const config::Error& error) {
  char line[4608] = "dltrace: ";
  size_t n = std::strlen(line);
  n += config::format_error_to(line + n, sizeof(line) - n - 1, path, error);
  line[n++] = '\n';
  write_stderr(line, n);
}

// What the matcher needs about one call, computed only when a rule asks for it.
class CallFacts {
 public:
  CallFacts(const char* file, const void* caller_ip) : file_(file), caller_ip_(caller_ip) {}

  std::string_view caller() {
    if (!caller_done_) {
      caller_done_ = true;
      // dl_iterate_phdr leaves dlerror state alone (dlinfo would not).
      if (find_caller(caller_ip_, &caller_object_)) {
        has_caller_ = true;
        caller_ = caller_object_.path;
      }
    }
    return caller_;
  }

  const ResolvedLibrary& resolved() {
    if (!resolved_done_) {
      resolved_done_ = true;
      caller();  // the search depends on the caller's RPATH/RUNPATH and $ORIGIN
      resolve_library_cached(file_, has_caller_ ? &caller_object_ : nullptr, &resolved_);
    }
    return resolved_;
  }

 private:
  const char* file_;
  const void* caller_ip_;
  bool caller_done_ = false;
  bool resolved_done_ = false;
  bool has_caller_ = false;
  CallerObject caller_object_;
  std::string_view caller_;
  ResolvedLibrary resolved_;
};

}  // namespace

const char* load_overrides_from_env() {
  if (g_loaded.exchange(true)) {
    const State* s = g_state.load(std::memory_order_acquire);
    return s != nullptr ? s->path : nullptr;
  }
  const char* path = getenv("DLTRACE_CONFIG");
  if (path == nullptr || *path == '\0') return nullptr;
  config::Error error;
  auto* state = new (std::nothrow) State;
  if (state == nullptr) {
    error.message = "out of memory";
    print_error(path, error);
    return nullptr;
  }
  // load_file never throws and never blocks: a FIFO, a device, a huge file or a memory limit is
  // an error like a typo.
  if (!config::load_file(path, &state->config, &error)) {
    // Never half a config: the program runs with no overrides at all.
    print_error(path, error);
    delete state;
    // What toml++ allocated is free again but may still hold the address space under a memory
    // limit (RLIMIT_AS): give it back, so the trace buffer and the program still find it.
    malloc_trim(0);
    return nullptr;
  }
  state->path = strdup(path);
  if (state->path == nullptr) {
    error.message = "out of memory";
    print_error(path, error);
    delete state;
    return nullptr;
  }
  resolver_init();
  g_state.store(state, std::memory_order_release);
  return state->path;
}

bool apply_overrides(const char* file, int flags, const void* caller_ip, OverrideResult* out) {
  out->flags = flags;
  out->count = 0;
  const State* state = g_state.load(std::memory_order_acquire);
  if (__builtin_expect(state == nullptr, 1)) return false;  // no config: this branch is all
  if (file == nullptr) return false;                        // dlopen(NULL): the program itself

  // Every string is measured once per call, not once per rule.
  const std::string_view name = file;
  const std::string_view name_base = config::basename_of(name);
  const bool name_has_slash = name.size() != name_base.size();
  CallFacts facts(file, caller_ip);
  std::string_view caller, caller_base, res, res_base, soname;
  bool caller_done = false, res_done = false;
  // Which resolved texts add something the name in the call did not already give.
  bool try_res = false, try_res_base = false, try_soname = false;
  bool any = false;
  for (const auto& rule : state->config.rules) {
    if (rule.has_caller) {
      if (!caller_done) {
        caller_done = true;
        caller = facts.caller();
        caller_base = config::basename_of(caller);
      }
      if (caller.empty() || !rule.caller.matches(rule.caller.has_slash() ? caller : caller_base))
        continue;
    }
    const config::Glob& g = rule.match;
    // The name in the call first: it needs no file system access. A pattern with '/' can only
    // match a text with '/'.
    bool hit = g.has_slash() ? name_has_slash && g.matches(name) : g.matches(name_base);
    if (!hit) {
      if (!res_done) {
        res_done = true;
        const ResolvedLibrary& r = facts.resolved();
        res = r.path;
        res_base = config::basename_of(res);
        soname = r.soname;
        try_res = !res.empty() && res != name;
        try_res_base = !res_base.empty() && res_base != name_base;
        try_soname = !soname.empty() && soname != name_base && soname != res_base;
      }
      if (g.has_slash())
        hit = try_res && g.matches(res);
      else
        hit = (try_res_base && g.matches(res_base)) || (try_soname && g.matches(soname));
    }
    if (!hit) continue;
    any = true;
    int before = out->flags;
    out->flags = rule.apply(before);
    // Keep the first entries and always the last one (its line is the event's override_line).
    uint32_t slot = out->count < 8 ? out->count++ : 7;
    out->applied[slot] = AppliedOverride{rule.line, before, out->flags};
  }
  return any;
}

}  // namespace dltrace::preload

// Flag overrides inside the recorder: loads DLTRACE_CONFIG once (through the parser library),
// then matches each dlopen/dlmopen against the rules before the real call. See overrides.h.
#include "overrides.h"

#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>

#include "bounded_text.h"
#include "common/config_error.h"
#include "common/flag_change.h"
#include "common/glob.h"
#include "config_block.h"
#include "elf_symbols.h"
#include "fork_gate.h"
#include "library_resolver.h"
#include "real_functions.h"
#include "stderr_line.h"

namespace dltrace::preload {
namespace {

// One rule as the matcher uses it: its globs over the pattern text in the parser's block.
struct CompiledRule {
  config::GlobView match;
  config::GlobView caller;
  config::FlagChange change;
  uint32_t line = 0;
  bool has_caller = false;
};

// One malloc: the State, then its rules. The block keeps the patterns' text.
struct State {
  const CompiledRule* rules = nullptr;
  size_t count = 0;
  char* path = nullptr;
  config_block::Header* block = nullptr;
};

// Published once by load_overrides_from_env() (release) and read by every dlopen wrapper
// (acquire: a plain load on x86-64); never freed, since a dlopen may run during exit.
std::atomic<const State*> g_state{nullptr};
std::atomic<bool> g_loaded{false};

// The one line for a config that cannot be used, whatever DLTRACE_QUIET says (spec): built
// without allocating, control characters escaped, written without risking SIGPIPE.
void print_error(const char* line_text) {
  char line[4608] = "dltrace: ";
  size_t n = std::strlen(line);
  Text(line + n, sizeof(line) - n - 1).add(line_text);
  n = std::strlen(line);
  line[n++] = '\n';
  write_stderr(line, n);
}

void print_error(const char* path, const char* message) {
  char text[4400];
  config::format_error_line_to(text, sizeof text, path, 0, 0, message);
  print_error(text);
}

// "$ORIGIN/NAME" with $ORIGIN the directory of the file this code was loaded from, symlinks
// resolved: $ORIGIN itself is the directory of the path the preload was given by, which may be a
// link into a build or install tree whose parser library is not beside the link.
bool beside_real_self(const char* name, char* out, size_t size) {
  struct Ctx {
    uintptr_t self;
    const char* path;
  } ctx{reinterpret_cast<uintptr_t>(&beside_real_self), nullptr};
  fork_gate::iterate_phdr(
      [](dl_phdr_info* info, size_t, void* arg) {
        auto* c = static_cast<Ctx*>(arg);
        if (!elf::contains(*info, c->self)) return 0;
        c->path = info->dlpi_name;
        return 1;
      },
      &ctx);
  char real[PATH_MAX];
  if (ctx.path == nullptr || ctx.path[0] == '\0' || realpath(ctx.path, real) == nullptr)
    return false;
  char* slash = std::strrchr(real, '/');
  if (slash == nullptr) return false;
  slash[1] = '\0';
  Text t(out, size);
  t.add(real).add(name);
  return !t.overflow;
}

// Loads the parser library (RTLD_LOCAL, unrecorded), has it parse the config at `path` and
// unloads it again, so that after start-up the process's objects are as they were without a
// config. Returns the block, or nullptr with the error line in `error`.
config_block::Header* parse_with_library(const char* library, const char* path, char* error,
                                         size_t error_size) {
  const RealFunctions& real = real_functions();
  if (real.dlopen == nullptr || real.dlsym == nullptr || real.dlclose == nullptr) {
    config::format_error_line_to(error, error_size, path, 0, 0,
                                 "cannot load the config parser: no dlopen");
    return nullptr;
  }
  // The real functions, called directly: nothing here passes through the interposers (and the
  // library calls no dl* function), so nothing of it is recorded; init() also parses before the
  // trace is open and before the start-up object table is taken.
  void* handle;
  {
    fork_gate::Section gate;
    // Lazy: of the library's imports only those the parse calls are bound, and it is unloaded
    // again right after.
    handle = real.dlopen(library, RTLD_LOCAL | RTLD_LAZY);
  }
  char message[1024];
  const char* why = nullptr;
  if (handle == nullptr) {
    why = real.dlerror != nullptr ? real.dlerror() : nullptr;  // and clear it
    Text(message, sizeof message).add(why);
    why = message;
    char resolved[PATH_MAX + 64];
    constexpr char kOrigin[] = "$ORIGIN/";
    if (std::strncmp(library, kOrigin, sizeof kOrigin - 1) == 0 &&
        beside_real_self(library + sizeof kOrigin - 1, resolved, sizeof resolved)) {
      fork_gate::Section gate;
      handle = real.dlopen(resolved, RTLD_LOCAL | RTLD_LAZY);
      if (handle == nullptr && real.dlerror != nullptr) real.dlerror();  // the first error is told
    }
  }
  if (handle == nullptr) {
    char text[1200];
    Text(text, sizeof text)
        .add("cannot load the config parser (libdltrace_config.so, beside libdltrace.so): ")
        .add(why != nullptr && why[0] != '\0' ? why : library);
    config::format_error_line_to(error, error_size, path, 0, 0, text);
    return nullptr;
  }
  config_block::Header* block = nullptr;
  const auto load =
      reinterpret_cast<DltraceConfigLoadFn>(real.dlsym(handle, config_block::kLoadSymbol));
  if (load != nullptr)
    block = load(path, error, error_size);
  else
    config::format_error_line_to(error, error_size, path, 0, 0,
                                 "cannot load the config parser: another dltrace version's");
  {
    fork_gate::Section gate;
    real.dlclose(handle);
  }
  return block;
}

// The rules of a block, compiled; nullptr (and the reason in `error`) if the block is not one
// this recorder can read or memory runs out.
State* compile_block(config_block::Header* block, const char* path, char* error,
                     size_t error_size) {
  const auto bad = [&](const char* message) -> State* {
    config::format_error_line_to(error, error_size, path, 0, 0, message);
    return nullptr;
  };
  if (block->version != config_block::kVersion ||
      block->size <
          sizeof(config_block::Header) + uint64_t{block->rule_count} * sizeof(config_block::Rule))
    return bad("the config parser's answer is from another dltrace version");
  const size_t count = block->rule_count;
  void* memory = malloc(sizeof(State) + count * sizeof(CompiledRule));
  if (memory == nullptr) return bad("out of memory");
  auto* state = new (memory) State;
  auto* rules = reinterpret_cast<CompiledRule*>(state + 1);
  const char* base = reinterpret_cast<const char*>(block);
  const config_block::Rule* in = config_block::rules_of(block);
  const char* why = nullptr;
  for (size_t i = 0; i < count; ++i) {
    const config_block::Rule& r = in[i];
    auto* rule = new (&rules[i]) CompiledRule;
    if (uint64_t{r.match_offset} + r.match_size > block->size ||
        uint64_t{r.caller_offset} + r.caller_size > block->size ||
        !rule->match.compile(std::string_view(base + r.match_offset, r.match_size), &why) ||
        (r.has_caller &&
         !rule->caller.compile(std::string_view(base + r.caller_offset, r.caller_size), &why))) {
      free(memory);
      return bad("the config parser's answer is from another dltrace version");
    }
    rule->has_caller = r.has_caller != 0;
    rule->line = r.line;
    rule->change.has_set = r.has_set != 0;
    rule->change.set = r.set;
    rule->change.add = r.add;
    rule->change.remove = r.remove;
    rule->change.add_local = r.add_local != 0;
    rule->change.remove_local = r.remove_local != 0;
  }
  state->rules = rules;
  state->count = count;
  state->block = block;
  return state;
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

const char* load_overrides_from_env(const char* library) {
  if (g_loaded.exchange(true)) {
    const State* s = g_state.load(std::memory_order_acquire);
    return s != nullptr ? s->path : nullptr;
  }
  const char* path = getenv("DLTRACE_CONFIG");
  if (path == nullptr || *path == '\0') return nullptr;
  char error[4400];
  config_block::Header* block = parse_with_library(library, path, error, sizeof error);
  State* state = block != nullptr ? compile_block(block, path, error, sizeof error) : nullptr;
  if (state != nullptr) state->path = strdup(path);
  if (state == nullptr || state->path == nullptr) {
    // Never half a config: the program runs with no overrides at all.
    if (state != nullptr) {
      free(state);
      print_error(path, "out of memory");
    } else {
      print_error(error);
    }
    free(block);
    // What the parser allocated is free again but may still hold the address space under a
    // memory limit (RLIMIT_AS): give it back, so the trace buffer and the program still find it.
    malloc_trim(0);
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
  for (size_t i = 0; i < state->count; ++i) {
    const CompiledRule& rule = state->rules[i];
    if (rule.has_caller) {
      if (!caller_done) {
        caller_done = true;
        caller = facts.caller();
        caller_base = config::basename_of(caller);
      }
      if (caller.empty() || !rule.caller.matches(rule.caller.has_slash() ? caller : caller_base))
        continue;
    }
    const config::GlobView& g = rule.match;
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
    out->flags = rule.change.apply(before);
    // Keep the first entries and always the last one (its line is the event's override_line).
    uint32_t slot = out->count < 8 ? out->count++ : 7;
    out->applied[slot] = AppliedOverride{rule.line, before, out->flags};
  }
  return any;
}

}  // namespace dltrace::preload

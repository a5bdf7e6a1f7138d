// Resolution of the real dl* functions (RTLD_NEXT semantics relative to libdltrace.so) and the
// dlerror-free lookups declared in real_functions.h.
#include "real_functions.h"

#include <sched.h>

#include <atomic>
#include <cstring>

#include "elf_symbols.h"
#include "fork_gate.h"

namespace dltrace::preload {
namespace {

// An address inside whichever object this file was linked into.
__attribute__((noinline)) void self_marker() {
  __asm__ volatile("");
}

// Default versions are preferred; an unversioned request gives exactly that.
constexpr const char* kNames[] = {
#define DLTRACE_REAL_NAME(name) #name,
#define DLTRACE_REAL_CALL_NAME(kind, name, value) DLTRACE_REAL_NAME(name)
    DLTRACE_REAL_FUNCTIONS(DLTRACE_REAL_CALL_NAME, DLTRACE_REAL_NAME)
#undef DLTRACE_REAL_CALL_NAME
#undef DLTRACE_REAL_NAME
};
constexpr int kCount = sizeof kNames / sizeof kNames[0];

struct Walk {
  const char* const* names;
  const char* const* versions;  // may be nullptr
  int count;
  elf::Symbol* found;
  int missing;
  bool skip_self_and_before;  // false: skip only ourselves (if a library) and nothing else
  bool passed_self = false;
  int index = 0;
};

// The first object reported is the main executable. When this code is linked into the
// executable (unit tests), "after ourselves" is everything else, which is also what we want.
bool is_self(const dl_phdr_info& info) {
  return elf::contains(info, reinterpret_cast<uintptr_t>(&self_marker));
}

int walk_callback(dl_phdr_info* info, size_t, void* data) {
  auto& w = *static_cast<Walk*>(data);
  const int index = w.index++;
  if (is_self(*info)) {
    w.passed_self = true;
    return 0;
  }
  if (w.skip_self_and_before && !w.passed_self) return 0;
  if (!w.skip_self_and_before && index == 0) return 0;  // the executable
  // The object's tables are read once for all the names still missing.
  w.missing -= elf::find_symbols(*info, w.names, w.versions, w.count, w.found);
  return w.missing == 0 ? 1 : 0;
}

struct SonameWalk {
  const char* soname;
  const char* const* names;
  int count;
  elf::Symbol* found;
  int* missing;
};

int soname_callback(dl_phdr_info* info, size_t, void* data) {
  auto& w = *static_cast<SonameWalk*>(data);
  const char* so = elf::soname(*info);
  if (so == nullptr || std::strcmp(so, w.soname) != 0) return 0;
  *w.missing -= elf::find_symbols(*info, w.names, nullptr, w.count, w.found);
  return 1;
}

void resolve_all(RealFunctions& out) {
  elf::Symbol found[kCount];
  Walk w{kNames, nullptr, kCount, found, kCount, true};
  fork_gate::iterate_phdr(walk_callback, &w);
  if (!w.passed_self) {  // our object is not in this namespace's list: search all but the exe
    w = Walk{kNames, nullptr, kCount, found, kCount, false};
    fork_gate::iterate_phdr(walk_callback, &w);
  }
  // Nothing after us defines some of them: take libc's (>= 2.34) or libdl's.
  for (const char* so : {"libc.so.6", "libdl.so.2"}) {
    if (w.missing == 0) break;  // the usual case: each walk would read every object's tables
    SonameWalk s{so, kNames, kCount, found, &w.missing};
    fork_gate::iterate_phdr(soname_callback, &s);
  }
  // IFUNC resolvers run here, outside dl_iterate_phdr's lock.
  int i = 0;
#define DLTRACE_REAL_RESOLVE(name) \
  out.name = reinterpret_cast<decltype(out.name)>(elf::resolve(found[i++]));
#define DLTRACE_REAL_CALL_RESOLVE(kind, name, value) DLTRACE_REAL_RESOLVE(name)
  DLTRACE_REAL_FUNCTIONS(DLTRACE_REAL_CALL_RESOLVE, DLTRACE_REAL_RESOLVE)
#undef DLTRACE_REAL_CALL_RESOLVE
#undef DLTRACE_REAL_RESOLVE
}

// Each resolving thread fills its own slot and the first to finish publishes it, so there is no
// lock to deadlock on (a signal handler or a constructor may re-enter while we resolve).
constexpr int kSlots = 16;
RealFunctions g_slots[kSlots];
std::atomic<int> g_next_slot{0};

}  // namespace

constinit std::atomic<const RealFunctions*> g_published_real_functions{nullptr};

const RealFunctions& resolve_real_functions() {
  std::atomic<const RealFunctions*>& g_published = g_published_real_functions;
  if (const RealFunctions* p = g_published.load(std::memory_order_acquire)) return *p;
  int slot = g_next_slot.fetch_add(1, std::memory_order_relaxed);
  if (slot >= kSlots) {  // more than kSlots concurrent first calls: wait for one of them
    const RealFunctions* p;
    while ((p = g_published.load(std::memory_order_acquire)) == nullptr) sched_yield();
    return *p;
  }
  resolve_all(g_slots[slot]);
  const RealFunctions* expected = nullptr;
  if (g_published.compare_exchange_strong(expected, &g_slots[slot], std::memory_order_acq_rel))
    return g_slots[slot];
  return *expected;
}

void* lookup_in_object(const dl_phdr_info& object, const char* name, const char* version) {
  return elf::resolve(elf::find_symbol(object, name, version));
}

void* lookup_global(const char* name, const char* version) {
  elf::Symbol found[1];
  const char* names[1] = {name};
  const char* versions[1] = {version};
  // dl_iterate_phdr reports the namespace of its caller: namespace 0 for the preload.
  Walk w{names, versions, 1, found, 1, false};
  struct Global {
    static int callback(dl_phdr_info* info, size_t, void* data) {
      auto& w = *static_cast<Walk*>(data);
      ++w.index;
      if (is_self(*info) && w.index > 1) return 0;  // libdltrace.so (not the unit-test executable)
      w.found[0] = elf::find_symbol(*info, w.names[0], w.versions[0]);
      return w.found[0] ? 1 : 0;
    }
  };
  fork_gate::iterate_phdr(Global::callback, &w);
  return elf::resolve(found[0]);
}

FindObjectFn find_object_fn() {
  constexpr uintptr_t kUnresolved = 0, kAbsent = 1;
  static constinit std::atomic<uintptr_t> resolved{kUnresolved};
  uintptr_t v = resolved.load(std::memory_order_acquire);
  if (v == kUnresolved) {
    if (fork_gate::cautious()) return nullptr;
    void* f = lookup_global("_dl_find_object", "GLIBC_2.35");
    v = f != nullptr ? reinterpret_cast<uintptr_t>(f) : kAbsent;
    resolved.store(v, std::memory_order_release);  // idempotent: every racer stores the same
  }
  return v == kAbsent ? nullptr : reinterpret_cast<FindObjectFn>(v);
}

}  // namespace dltrace::preload

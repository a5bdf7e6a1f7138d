// The in-process table of loaded objects and its synchronisation with the loader.
//
// sync() diffs what the loader has (dl_iterate_phdr for namespace 0, the r_debug_extended chain
// for other namespaces) against the table, writes new objects with their cause/parent (BFS over
// DT_NEEDED) and marks unloaded ones. It is only needed when dlpi_adds/dlpi_subs moved, which
// sync_if_changed() checks at the walk's first object. Where namespace 0 is the only one in use
// and only one of the counters moved, the namespace-0 list kept from the last sync says what
// changed without a walk of every object: loads are what follows its last entry, unloads what a
// merge with the loader's list misses. Lookups (address -> object, handle -> object) are
// lock-free: a seqlock-protected sorted snapshot in static storage. The table lock is never held
// across a real dl* call, and nothing here touches dlerror state (no dladdr: it takes
// dl_load_lock).
#pragma once

#include <atomic>
#include <cstdint>

#include "dltrace/format.h"

namespace dltrace::preload {

class TraceWriter;

namespace objects {

enum class Mode : uint8_t {
  kStartup,     // objects present when recording starts
  kCall,        // brought in by the dlopen/dlmopen `seq`
  kDiscovered,  // loaded without a traced call (libc internals), found at event `seq`
};

struct Attribution {
  Mode mode = Mode::kDiscovered;
  uint64_t seq = 0;                        // load_seq (and opened_by for kCall)
  uint32_t caller_object = format::kNoId;  // parent of the opened object
  bool global = false;                     // effective RTLD_GLOBAL
  const void* opened = nullptr;            // link_map of the opened object, if known
};

struct SyncResult {
  uint32_t added = 0;
  uint32_t removed = 0;
  bool opened_new = false;  // Attribution::opened was among the new objects
};

// Binds the table to the writer and records our own object (for kObjectRecorder).
void set_writer(TraceWriter* writer);

// Brings the table up to date; new objects are written with `a`, unloaded ones are marked with
// `unload_seq`.
SyncResult sync(const Attribution& a, uint64_t unload_seq);
// The same, only when anything was loaded or unloaded since the last sync (any namespace): the
// loader's counters are checked at the first object of the walk a sync makes anyway.
SyncResult sync_if_changed(const Attribution& a, uint64_t unload_seq);

// CPython's marker symbol. python_generation() moves whenever a namespace-0 object defining it is
// registered or unloaded: the Python stack probe looks at the loaded objects again only then.
inline constexpr char kPythonMarker[] = "Py_IsInitialized";
namespace detail {
extern std::atomic<uint64_t> g_python_generation;
}
inline uint64_t python_generation() {
  return detail::g_python_generation.load(std::memory_order_acquire);
}

// Lock-free lookups. object_at returns kNoId when unknown; *found tells whether the address lies
// in any known mapping (including the recorder's own, which have no id); *lmid its namespace.
uint32_t object_at(uint64_t address, bool* found = nullptr, int64_t* lmid = nullptr);
uint32_t object_of_handle(const void* handle);
// Whether `address` lies in the executable, its DT_NEEDED closure or a preload (found when
// recording started, namespace 0): ld.so never unloads those. Objects dlopened before that
// (by libc, or by a constructor that ran before ours) do not count.
bool is_resident(uint64_t address);

// The objects of one dlsym/dlvsym: the caller's, the handle's and the one defining the result
// (kNoId for a null address). Returns false when the caller or the result lies in no known
// object. The last answer is memoised per thread: a lookup loop repeats all three.
struct LookupObjects {
  uint32_t caller, handle, result;
};
bool lookup_objects(uint64_t caller_ip, const void* handle, uint64_t address, LookupObjects* out);
// Id, namespace, global flag and load seq of a handle's object; false if unknown.
struct HandleInfo {
  uint32_t id;
  int64_t lmid;
  bool global;
  uint64_t load_seq;
};
bool handle_info(const void* handle, HandleInfo* out);

// RTLD_GLOBAL dlopen of an already-loaded local object: it and its DT_NEEDED closure join the
// global scope.
void promote(const void* handle, uint64_t seq);

// After fork, in the child, with a freshly opened writer: re-write every live object
// (cause/parent kept, opened_by/load_seq 0) under new ids. Also resets the lock.
void rewrite_after_fork();

// Path (l_name) of this library and of the executable; valid after the first sync.
const char* recorder_path();
const char* executable_path();

}  // namespace objects
}  // namespace dltrace::preload

// CallerContext: real dl* calls whose return address lies in the original caller's object
// (see caller_context.h). Finds the object's return gadget (the CPU's choice: arch.h) and caches
// it per object without locks.
#include "caller_context.h"

#include <link.h>

#include <atomic>
#include <cstdint>

#include "arch/arch.h"
#include "fork_gate.h"
#include "real_functions.h"

namespace dltrace::preload {
namespace {

// ---------------------------------------------------------------------------------------------
// Which object contains the caller: _dl_find_object (real_functions.h).

using FindObjectResult = arch::DlFindObject;

int subs_callback(dl_phdr_info* info, size_t, void* data) {
  *static_cast<unsigned long long*>(data) = info->dlpi_subs;
  return 1;
}

// Bumped by ld.so on every unload: a cached gadget is trusted only within one generation.
unsigned long long unload_generation() {
  unsigned long long subs = 0;
  fork_gate::iterate_phdr(subs_callback, &subs);
  return subs;
}

// ---------------------------------------------------------------------------------------------
// Per-object cache: small open-addressed table of seqlocked entries (readers never wait;
// a writer that finds an entry being written simply does not cache).

struct Entry {
  std::atomic<uint32_t> seq{0};   // odd while being written
  std::atomic<uintptr_t> key{0};  // object load address (l_addr / dlpi_addr) + 1
  std::atomic<uintptr_t> gadget{0};
  std::atomic<unsigned long long> generation{0};
  std::atomic<uintptr_t> identity{0};  // object_identity of the object, 0 if unknown
};
constexpr size_t kEntries = 64, kProbe = 4;
Entry g_cache[kEntries];
std::atomic<uint32_t> g_evict{0};

size_t slot_of(uintptr_t key) {
  return (key >> 12) * 0x9E3779B97F4A7C15ull >> 58;
}

bool cache_get(uintptr_t key, unsigned long long gen, uintptr_t& gadget) {
  for (size_t i = 0; i < kProbe; ++i) {
    Entry& e = g_cache[(slot_of(key) + i) % kEntries];
    uint32_t s1 = e.seq.load(std::memory_order_acquire);
    if (s1 & 1) continue;
    // Acquire loads keep the re-check of seq after them and, paired with the writer's release
    // stores, make a torn read visible as a changed seq (no fences: TSan does not model them).
    uintptr_t k = e.key.load(std::memory_order_acquire);
    uintptr_t g = e.gadget.load(std::memory_order_acquire);
    unsigned long long n = e.generation.load(std::memory_order_acquire);
    if (e.seq.load(std::memory_order_relaxed) != s1) continue;
    if (k == key && n == gen) {
      gadget = g;
      return true;
    }
  }
  return false;
}

void cache_put(uintptr_t key, unsigned long long gen, uintptr_t gadget, uintptr_t identity) {
  size_t base = slot_of(key);
  size_t victim = (base + g_evict.fetch_add(1, std::memory_order_relaxed)) % kEntries;
  for (size_t i = 0; i < kProbe; ++i) {  // prefer our own stale entry or one from an old generation
    Entry& e = g_cache[(base + i) % kEntries];
    if (e.key.load(std::memory_order_relaxed) == key ||
        e.generation.load(std::memory_order_relaxed) != gen) {
      victim = (base + i) % kEntries;
      break;
    }
  }
  Entry& e = g_cache[victim];
  uint32_t s = e.seq.load(std::memory_order_relaxed);
  if ((s & 1) || !e.seq.compare_exchange_strong(s, s + 1, std::memory_order_acquire)) return;
  e.key.store(key, std::memory_order_release);
  e.gadget.store(gadget, std::memory_order_release);
  e.generation.store(gen, std::memory_order_release);
  e.identity.store(identity, std::memory_order_release);
  e.seq.store(s + 2, std::memory_order_release);
}

// Which object _dl_find_object placed an address in: its link_map, where its mapping ends and its
// dynamic section. Another object loaded at the same base after an unload would have to match
// all three to pass for the one cached (a reload of the same file does, and has the same gadget).
uintptr_t object_identity(const FindObjectResult& r) {
  const auto lm = reinterpret_cast<uintptr_t>(r.map);
  const auto end = reinterpret_cast<uintptr_t>(r.map_end);
  const auto ld = reinterpret_cast<uintptr_t>(r.map->l_ld);
  const uintptr_t id = (lm * 0x9E3779B97F4A7C15ull) ^ (end * 0xC2B2AE3D27D4EB4Full) ^ ld;
  return id != 0 ? id : 1;
}

struct Locate {
  uintptr_t ip;
  unsigned long long generation;
  uintptr_t identity;
  uintptr_t gadget = 0;
  bool found = false;
};

// Slow path: finds the object and scans it while dl_iterate_phdr's lock keeps it mapped.
int locate_callback(dl_phdr_info* info, size_t, void* data) {
  auto& l = *static_cast<Locate*>(data);
  for (int i = 0; i < info->dlpi_phnum && !l.found; ++i) {
    const ElfW(Phdr)& p = info->dlpi_phdr[i];
    uintptr_t start = info->dlpi_addr + p.p_vaddr;
    l.found = p.p_type == PT_LOAD && l.ip >= start && l.ip - start < p.p_memsz;
  }
  if (!l.found) return 0;
  const uintptr_t key = info->dlpi_addr + 1;
  if (!cache_get(key, l.generation, l.gadget)) {
    l.gadget = arch::find_return_gadget(*info);
    // Cached under the generation read before locating: an unload in between invalidates it.
    cache_put(key, l.generation, l.gadget, l.identity);
  }
  return 1;
}

// The generation under which gadgets of never-unloaded objects are cached (dlpi_subs cannot
// reach it).
constexpr unsigned long long kResidentGeneration = ~0ull;
std::atomic<ResidentPredicate> g_resident{nullptr};

bool resident(const void* ip) {
  const ResidentPredicate p = g_resident.load(std::memory_order_acquire);
  return p != nullptr && p(reinterpret_cast<uint64_t>(ip));
}

// A gadget cached for the caller's object, without asking the loader for its unload count (which
// takes its lock, and a cautious fork child (fork_gate.h) must not take it): used if
// _dl_find_object (lock-free) places the caller in an object of the same identity as when the
// gadget was cached, and the gadget in that same object, and the gadget is still one. The caller's
// object cannot go away during the call: its code is running.
const void* cached_gadget_unlocked(const void* ip, FindObjectFn find, FindObjectResult* r) {
  if (find == nullptr || find(const_cast<void*>(ip), r) != 0 || r->map == nullptr) return nullptr;
  const uintptr_t key = r->map->l_addr + 1;
  const uintptr_t identity = object_identity(*r);
  for (size_t i = 0; i < kProbe; ++i) {
    Entry& e = g_cache[(slot_of(key) + i) % kEntries];
    const uint32_t s1 = e.seq.load(std::memory_order_acquire);
    const uintptr_t k = e.key.load(std::memory_order_acquire);
    const uintptr_t g = e.gadget.load(std::memory_order_acquire);
    const uintptr_t id = e.identity.load(std::memory_order_acquire);
    if ((s1 & 1) || e.seq.load(std::memory_order_relaxed) != s1 || k != key || g == 0 ||
        id != identity)
      continue;
    FindObjectResult rg;
    if (find(reinterpret_cast<void*>(g), &rg) == 0 && rg.map == r->map && arch::is_return_gadget(g))
      return reinterpret_cast<const void*>(g);
  }
  return nullptr;
}

const void* gadget_for_uncached(const void* ip) {
  const FindObjectFn find = find_object_fn();
  FindObjectResult r{};
  const bool is_resident = resident(ip);
  if (!is_resident) {
    if (const void* g = cached_gadget_unlocked(ip, find, &r)) return g;
  } else if (find != nullptr && (find(const_cast<void*>(ip), &r) != 0 || r.map == nullptr)) {
    r.map = nullptr;
  }
  // A resident object's gadget stays valid across other objects' unloads; asking the loader for
  // its unload count takes its lock.
  const unsigned long long gen = is_resident
                                     ? kResidentGeneration
                                     : unload_generation();  // read before locating: see cache_put
  uintptr_t identity = 0;
  if (r.map != nullptr) {
    uintptr_t gadget = 0;
    if (cache_get(r.map->l_addr + 1, gen, gadget)) return reinterpret_cast<const void*>(gadget);
    identity = object_identity(r);
  }
  Locate l{reinterpret_cast<uintptr_t>(ip), gen, identity};
  fork_gate::iterate_phdr(locate_callback, &l);
  return l.found ? reinterpret_cast<const void*>(l.gadget) : nullptr;
}

}  // namespace

bool trampoline_available() {
  static std::atomic<int> state{0};  // 0 unknown, 1 available, 2 not
  int s = state.load(std::memory_order_relaxed);
  if (s == 0) {
    s = arch::return_address_calls_possible() ? 1 : 2;
    state.store(s, std::memory_order_relaxed);
  }
  return s == 1;
}

void set_resident_predicate(ResidentPredicate predicate) {
  g_resident.store(predicate, std::memory_order_release);
}

namespace caller_detail {

constinit thread_local LastGadget t_last_gadget{};

const void* gadget_for_slow(const void* ip) {
  if (!trampoline_available()) return nullptr;
  const void* gadget = gadget_for_uncached(ip);
  if (gadget != nullptr && ip != nullptr && resident(ip)) t_last_gadget = {ip, gadget};
  return gadget;
}

}  // namespace caller_detail

void* CallerContext::dlopen(const char* file, int flags) const {
  const auto& real = real_functions();
  if (gadget_ == nullptr) return real.dlopen(file, flags);
  return reinterpret_cast<void*>(dltrace_call_with_return_address(
      reinterpret_cast<const void*>(real.dlopen), gadget_, reinterpret_cast<uintptr_t>(file),
      static_cast<uintptr_t>(flags), 0));
}

void* CallerContext::dlmopen(Lmid_t lmid, const char* file, int flags) const {
  const auto& real = real_functions();
  if (gadget_ == nullptr) return real.dlmopen(lmid, file, flags);
  return reinterpret_cast<void*>(dltrace_call_with_return_address(
      reinterpret_cast<const void*>(real.dlmopen), gadget_, static_cast<uintptr_t>(lmid),
      reinterpret_cast<uintptr_t>(file), static_cast<uintptr_t>(flags)));
}

}  // namespace dltrace::preload

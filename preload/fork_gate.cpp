// The fork gate (see fork_gate.h). Each thread publishes "inside a Section" in a slot of its own
// (a cache line per thread, so recording threads do not share a written line); the forking
// thread raises `pending`, forces every thread's earlier stores to be visible (membarrier), and
// waits for the slots to drain. A thread that finds `pending` raised after publishing withdraws
// and waits for the fork to finish: one of the two always sees the other (Dekker's argument with
// the heavy fence on the forking side).
#include "fork_gate.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/single_threaded.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "arch/arch.h"

namespace dltrace::preload::fork_gate {
namespace {

constexpr uint32_t kSlots = 512;

struct alignas(64) Slot {
  uint32_t depth;  // > 0 while the owner is inside a Section
  uint32_t owner;  // tid of the thread the slot belongs to (0: free)
};

DLTRACE_LARGE_BSS constinit Slot g_slots[kSlots];
constinit uint32_t g_slot_high = 0;  // slots [0, high) were ever claimed
constinit Slot g_shared{};           // threads that found no slot count here, with atomic RMWs
constinit uint32_t g_pending = 0;    // a fork is waiting for the slots to drain
constinit bool g_membarrier = false;
constinit bool g_parent_threaded = false;  // taken at prepare, for the child
constinit bool g_installed = false;
constinit bool g_cautious = false;
using ChildHandler = void (*)();
constinit ChildHandler g_child = nullptr;

constinit thread_local uint32_t* t_depth = nullptr;  // this thread's slot (or g_shared.depth)
constinit thread_local uint32_t t_nest = 0;          // Sections open on this thread
// This thread is the one forking: prepare handlers that run after ours (registered before it) may
// still make dl* calls, and must not wait for their own fork.
constinit thread_local bool t_forking = false;

long membarrier(int cmd) {
  return syscall(SYS_membarrier, cmd, 0, 0);
}

// Stores before this are visible to the forking thread before our next load (see the header).
inline void light_fence() {
  if (__builtin_expect(g_membarrier, 1))
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
  else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

uint32_t raw_tid() {
  return static_cast<uint32_t>(syscall(SYS_gettid));
}

bool thread_alive(uint32_t tid) {
  const int saved = errno;
  const bool alive = tid != 0 && (syscall(SYS_tgkill, getpid(), tid, 0) == 0 || errno != ESRCH);
  errno = saved;
  return alive;
}

// A slot for this thread: a free one, else one whose owner has exited, else the shared counter.
uint32_t* claim() {
  const uint32_t tid = raw_tid();
  // Read with a compare-exchange of 0 with 0: the first claim in a process then writes the page
  // (one fault) instead of reading the zero page and copying it at the claim below (two).
  uint32_t high = 0;
  __atomic_compare_exchange_n(&g_slot_high, &high, 0u, false, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE);
  for (uint32_t i = high; i < kSlots; ++i) {
    uint32_t free = 0;
    if (__atomic_compare_exchange_n(&g_slots[i].owner, &free, tid, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED)) {
      uint32_t h = __atomic_load_n(&g_slot_high, __ATOMIC_RELAXED);
      while (h < i + 1 && !__atomic_compare_exchange_n(&g_slot_high, &h, i + 1, true,
                                                       __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
      }
      return t_depth = &g_slots[i].depth;
    }
  }
  for (uint32_t i = 0; i < kSlots; ++i) {
    uint32_t owner = __atomic_load_n(&g_slots[i].owner, __ATOMIC_RELAXED);
    if (__atomic_load_n(&g_slots[i].depth, __ATOMIC_RELAXED) != 0 || thread_alive(owner)) continue;
    if (__atomic_compare_exchange_n(&g_slots[i].owner, &owner, tid, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_RELAXED))
      return t_depth = &g_slots[i].depth;
  }
  return t_depth = &g_shared.depth;
}

void pause_briefly(unsigned spins) {
  if (spins < 64) return;
  if (spins < 1024) {
    sched_yield();
    return;
  }
  timespec ts{0, 50 * 1000};
  nanosleep(&ts, nullptr);
}

uint64_t monotonic_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

// Waits until `depth` reads `until` (or its owner is gone, or the deadline passed: a bounded
// wait can only make the rare hang this prevents possible again, never a new one).
void drain(const uint32_t* depth, uint32_t until, uint32_t owner, uint64_t deadline_ms) {
  for (unsigned spins = 0; __atomic_load_n(depth, __ATOMIC_ACQUIRE) > until; ++spins) {
    pause_briefly(spins);
    if ((spins & 1023) == 1023) {
      if (owner != 0 && !thread_alive(owner)) return;
      if (monotonic_ms() > deadline_ms) return;
    }
  }
}

void prepare() {
  const int saved = errno;
  t_forking = true;
  __atomic_store_n(&g_pending, 1, __ATOMIC_SEQ_CST);
  if (g_membarrier) membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
  const uint64_t deadline = monotonic_ms() + 2000;
  const uint32_t high = __atomic_load_n(&g_slot_high, __ATOMIC_ACQUIRE);
  for (uint32_t i = 0; i < high; ++i) {
    if (&g_slots[i].depth == t_depth) continue;  // fork called from inside a Section of ours
    drain(&g_slots[i].depth, 0, __atomic_load_n(&g_slots[i].owner, __ATOMIC_RELAXED), deadline);
  }
  drain(&g_shared.depth, t_depth == &g_shared.depth ? t_nest : 0, 0, deadline);
  g_parent_threaded = !__libc_single_threaded;
  errno = saved;
}

void parent() {
  t_forking = false;
  __atomic_store_n(&g_pending, 0, __ATOMIC_RELEASE);
}

void reset_slots() {
  // One thread now: every other slot's owner is gone (claim() takes them over later).
  for (uint32_t i = 0; i < kSlots; ++i)
    if (&g_slots[i].depth != t_depth) g_slots[i].depth = 0;
  g_shared.depth = t_depth == &g_shared.depth ? t_nest : 0;
  if (t_depth != nullptr && t_depth != &g_shared.depth)
    reinterpret_cast<Slot*>(t_depth)->owner = raw_tid();
  if (g_membarrier && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0)
    g_membarrier = false;
  __atomic_store_n(&g_pending, 0, __ATOMIC_RELEASE);
}

void child() {
  t_forking = false;
  reset_slots();
  if (g_parent_threaded) enter_cautious();
  if (g_child != nullptr) g_child();
}

}  // namespace

void install(void (*child_handler)()) {
  if (g_installed) return;
  g_installed = true;
  g_child = child_handler;
  const int saved = errno;
  g_membarrier = membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
  errno = saved;
  pthread_atfork(prepare, parent, child);
}

// Publishes this thread in `d` and waits while a fork drains the slots (the slow half of
// Section(): a first Section on this thread, the shared counter, or a fork in progress).
__attribute__((noinline)) uint32_t* enter_slow(uint32_t* d) {
  if (d == nullptr) d = claim();
  for (unsigned spins = 0;; ++spins) {
    if (d == &g_shared.depth) {
      __atomic_fetch_add(d, 1, __ATOMIC_SEQ_CST);
    } else {
      __atomic_store_n(d, 1, __ATOMIC_RELAXED);
      light_fence();
    }
    if (!__atomic_load_n(&g_pending, __ATOMIC_RELAXED) || t_forking) return d;
    // A fork is draining the slots: step out of its way until it is done.
    if (d == &g_shared.depth)
      __atomic_fetch_sub(d, 1, __ATOMIC_RELEASE);
    else
      __atomic_store_n(d, 0, __ATOMIC_RELEASE);
    while (__atomic_load_n(&g_pending, __ATOMIC_ACQUIRE)) pause_briefly(spins++);
  }
}

Section::Section() {
  if (t_nest++ != 0) {  // nested: the outer Section already holds the gate
    depth_ = nullptr;
    return;
  }
  // The common case, kept free of the slow path's register saves: this thread's own slot, and
  // no fork in progress.
  uint32_t* d = t_depth;
  if (__builtin_expect(d != nullptr && d != &g_shared.depth, 1)) {
    __atomic_store_n(d, 1, __ATOMIC_RELAXED);
    light_fence();
    if (__builtin_expect(!__atomic_load_n(&g_pending, __ATOMIC_RELAXED), 1)) {
      depth_ = d;
      return;
    }
  }
  depth_ = enter_slow(d);
}

Section::~Section() {
  --t_nest;
  if (depth_ == nullptr) return;
  if (depth_ == &g_shared.depth)
    __atomic_fetch_sub(depth_, 1, __ATOMIC_RELEASE);
  else
    __atomic_store_n(depth_, 0, __ATOMIC_RELEASE);
}

void after_unannounced_fork() {
  reset_slots();
  enter_cautious();  // nothing is known about the parent's threads
}

int iterate_phdr(int (*callback)(dl_phdr_info*, size_t, void*), void* data) {
  Section gate;
  return dl_iterate_phdr(callback, data);
}

bool in_section() {
  return t_nest != 0;
}

bool cautious() {
  return __atomic_load_n(&g_cautious, __ATOMIC_RELAXED);
}
void proven_safe() {
  __atomic_store_n(&g_cautious, false, __ATOMIC_RELAXED);
}
void enter_cautious() {
  __atomic_store_n(&g_cautious, true, __ATOMIC_RELAXED);
}

}  // namespace dltrace::preload::fork_gate

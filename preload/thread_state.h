// Per-thread recorder state: cached tid, the stack of traced calls in progress on this thread
// (for nesting: a constructor calling dlopen inside dlopen), and the internal-call guard.
// Plain zero-initialised POD in initial-exec TLS: no TLS wrapper call, no allocation, and small,
// because a second instance of the library lives in static TLS inside each dlmopen namespace.
#pragma once

#include <unistd.h>

#include <cstdint>

namespace dltrace::preload {

struct NestFrame {
  uint64_t seq;
  uint32_t caller_object;
  uint8_t global;   // effective RTLD_GLOBAL of that call
  uint8_t is_open;  // dlopen/dlmopen (its new objects are attributed to it)
};

inline constexpr uint32_t kMaxNesting = 8;

struct ThreadState {
  uint32_t tid;    // cached gettid(); 0 = not cached yet (reset in the fork child)
  uint32_t depth;  // number of traced calls in progress on this thread (may exceed kMaxNesting)
  uint32_t guard;  // > 0 while the recorder itself calls dl* (those calls pass through untraced)
  uint32_t reserved;
  NestFrame frames[kMaxNesting];
};

extern constinit thread_local ThreadState t_state;

// Cached gettid(): the hot path must make no syscall.
inline uint32_t current_tid() {
  uint32_t tid = t_state.tid;
  if (__builtin_expect(tid == 0, 0)) t_state.tid = tid = static_cast<uint32_t>(gettid());
  return tid;
}

// RAII: the recorder's own dl* calls (libunwind) are not traced.
struct InternalGuard {
  InternalGuard() { ++t_state.guard; }
  ~InternalGuard() { --t_state.guard; }
  InternalGuard(const InternalGuard&) = delete;
  InternalGuard& operator=(const InternalGuard&) = delete;
};

}  // namespace dltrace::preload

#include "stack_capture.h"

#include <dlfcn.h>

#include <atomic>

#include "dltrace/format.h"
#include "fork_gate.h"
#include "real_functions.h"
#include "thread_state.h"
#include "trace_writer.h"

namespace dltrace::preload::stack {
namespace {
using BacktraceFn = int (*)(void**, int);
constinit std::atomic<BacktraceFn> g_backtrace{nullptr};
constinit std::atomic<int> g_state{
    0};  // 0 = not tried, 1 = loading, 2 = done (g_backtrace may be null)
}  // namespace

bool unwinder_tried() {
  return g_state.load(std::memory_order_relaxed) != 0;
}

bool load_unwinder() {
  int expected = 0;
  if (g_state.load(std::memory_order_acquire) == 2)
    return g_backtrace.load(std::memory_order_relaxed) != nullptr;
  if (!g_state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) return false;
  const RealFunctions& real = real_functions();
  if (real.dlopen != nullptr && real.dlsym != nullptr) {
    InternalGuard guard;  // libunwind's own load (and anything its constructors do) is not traced
    void* h = real.dlopen("libunwind.so.8", RTLD_LOCAL | RTLD_NOW);
    if (h != nullptr) {
      g_backtrace.store(reinterpret_cast<BacktraceFn>(real.dlsym(h, "unw_backtrace")),
                        std::memory_order_relaxed);
    }
  }
  g_state.store(2, std::memory_order_release);
  return g_backtrace.load(std::memory_order_relaxed) != nullptr;
}

uint32_t capture(TraceWriter& writer, const void* caller_ip, uint32_t depth) {
  const BacktraceFn bt = g_backtrace.load(std::memory_order_relaxed);
  // libunwind walks the loader's list and takes its own lock with every signal blocked: neither
  // may be left held in a fork child, nor taken where a fork may have left it held.
  if (bt == nullptr || depth == 0 || fork_gate::cautious()) return format::kNoId;
  if (depth > kMaxDepth) depth = kMaxDepth;
  constexpr int kOwnFrames = 8;  // our frames above the caller
  void* frames[kMaxDepth + kOwnFrames];
  int n;
  {
    InternalGuard guard;  // libunwind may dl_iterate_phdr / dlopen nothing, but be safe
    fork_gate::Section gate;
    n = bt(frames, static_cast<int>(depth) + kOwnFrames);
  }
  int first = -1;
  for (int i = 0; i < n; ++i) {
    if (frames[i] == caller_ip) {
      first = i;
      break;
    }
  }
  uint64_t ips[kMaxDepth];
  uint32_t count = 0;
  if (first < 0) {
    // The unwinder could not walk to the caller (e.g. code in another namespace): keep the one
    // frame we know.
    ips[count++] = reinterpret_cast<uint64_t>(caller_ip);
  } else {
    for (int i = first; i < n && count < depth; ++i)
      ips[count++] = reinterpret_cast<uint64_t>(frames[i]);
  }
  return writer.intern_stack(ips, count);
}

}  // namespace dltrace::preload::stack

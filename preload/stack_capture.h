// Native stacks, walked by the recorder itself from the objects' .eh_frame unwind tables: glibc's
// _dl_find_object (lock-free, glibc >= 2.35) finds a return address's object and its
// .eh_frame_hdr, eh_frame_index.h the address's FDE, frame_rules.h the rule that gives the
// caller's frame. A process-wide cache maps each address to its decoded rule, so a walk usually
// costs a few loads per frame and no call at all. No lock, no allocation, no system call, no
// thread-local storage, nothing loaded into the process: safe in a signal handler and in a fork
// child whose other threads held the loader's locks. Without _dl_find_object there are no stacks.
#pragma once

#include <atomic>
#include <cstdint>

namespace dltrace::preload {

class TraceWriter;

namespace stack {

inline constexpr uint32_t kMaxDepth = 128;

// Captures up to `depth` frames starting at the original caller (our own frames dropped) and
// interns them. Returns the stack id, or format::kNoId.
uint32_t capture(TraceWriter& writer, const void* caller_ip, uint32_t depth);

// Code in [start, end) was unmapped (an object was unloaded; the object table calls this when it
// finds one gone): the cached rules for those addresses are dropped, as a new object may be
// mapped there.
void forget_code(uintptr_t start, uintptr_t end);

// Around a real dlclose: until the object table has seen what it unloaded (forget_code), walks
// do not trust the cache.
class UnloadWindow {
 public:
  UnloadWindow();
  ~UnloadWindow();
  UnloadWindow(const UnloadWindow&) = delete;
  UnloadWindow& operator=(const UnloadWindow&) = delete;
};

}  // namespace stack
}  // namespace dltrace::preload

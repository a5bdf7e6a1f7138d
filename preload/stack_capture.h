// Native stacks via libunwind, loaded lazily with the REAL dlopen and RTLD_LOCAL so that its
// unversioned _Unwind_* / backtrace exports never enter the program's global scope (they would
// hijack C++ exception handling). If libunwind is missing, stacks are silently off.
#pragma once

#include <cstdint>

namespace dltrace::preload {

class TraceWriter;

namespace stack {

inline constexpr uint32_t kMaxDepth = 128;

// Whether load_unwinder() was called (whatever it found).
bool unwinder_tried();

// Loads libunwind.so.8 once. Makes real dl* calls (they reset dlerror state), so call it only
// where that is invisible: in the constructor or before an event's real call. Returns whether
// stacks are available.
bool load_unwinder();

// Captures up to `depth` frames starting at the original caller (our own frames dropped) and
// interns them. Returns the stack id, or format::kNoId.
uint32_t capture(TraceWriter& writer, const void* caller_ip, uint32_t depth);

}  // namespace stack
}  // namespace dltrace::preload

// Event times. The invariant TSC when the CPU has one (rdtsc ~7 ns; clock_gettime costs
// 20-70 ns on virtual machines, twice per event), calibrated against CLOCK_MONOTONIC by
// (tsc, ns) points in the trace header; CLOCK_MONOTONIC nanoseconds otherwise. The header's
// clock_kind tells readers which. Inline: every event reads the clock twice.
#pragma once

#include <time.h>

#include <cstdint>

#include "dltrace/format.h"

namespace dltrace::preload {

// Whether event times are TSC ticks (set by start_clock). Hidden: read without the GOT.
extern constinit bool g_event_clock_is_tsc __attribute__((visibility("hidden")));

// Monotonic clock in ns (vDSO, no syscall).
inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// The event clock of this instance's trace (see PrimaryApi::clock).
inline uint64_t event_clock() {
  return g_event_clock_is_tsc ? __builtin_ia32_rdtsc() : now_ns();
}

// Picks the clock for a new trace and writes its first calibration point into `h`.
void start_clock(format::FileHeader* h);
// Writes the latest calibration point (slow paths: dlopen, dlclose, the end of the process).
void refresh_clock(format::FileHeader* h);
// Event-clock ticks as ns, for human-readable output only.
uint64_t ticks_to_ns(const format::FileHeader* h, uint64_t ticks);

}  // namespace dltrace::preload

// Event times. The CPU's cycle counter when it ticks at a constant rate (arch.h; on x86-64 the
// invariant TSC: rdtsc ~7 ns, while clock_gettime costs 20-70 ns on virtual machines, twice per
// event), calibrated against CLOCK_MONOTONIC by (ticks, ns) points in the trace header (its tsc_*
// fields, clock_kind kClockTsc); CLOCK_MONOTONIC nanoseconds otherwise. Inline: every event reads
// the clock twice.
#pragma once

#include <time.h>

#include <cstdint>

#include "arch/arch.h"
#include "dltrace/format.h"

namespace dltrace::preload {

// Whether event times are cycle-counter ticks (set by start_clock). Hidden: read without the GOT.
extern constinit bool g_event_clock_counts_cycles __attribute__((visibility("hidden")));

// Monotonic clock in ns (vDSO, no syscall).
inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// The event clock of this instance's trace (see PrimaryApi::clock).
inline uint64_t event_clock() {
  return g_event_clock_counts_cycles ? arch::cycle_counter() : now_ns();
}

// Picks the clock for a new trace and writes its first calibration point into `h`.
void start_clock(format::FileHeader* h);
// Writes the latest calibration point (the end of the process).
void refresh_clock(format::FileHeader* h);
// The same on the slow paths (dlopen, dlclose), only when the time since the latest point is at
// least 1/kRefreshFraction of the span it closes: the slope readers take from the two points is
// as good, and a loop of dlopens pays two clock_gettime calls (20-70 ns each on a VM) every few
// hundred iterations instead of at every call. A trace cut short by a crash keeps a latest point
// that covers at least 8/9 of the span to its last event.
inline constexpr uint64_t kRefreshFraction = 8;
void refresh_clock_if_due(format::FileHeader* h);
// Event-clock ticks as ns, for human-readable output only.
uint64_t ticks_to_ns(const format::FileHeader* h, uint64_t ticks);

}  // namespace dltrace::preload

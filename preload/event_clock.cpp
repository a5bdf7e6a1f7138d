// The event clock's choice and calibration (event_clock.h): two (ticks, ns) points in the header,
// the base taken when the trace is created and the latest refreshed on slow paths, so that
// readers convert ticks to ns without the recorder paying for clock_gettime on every event.
#include "event_clock.h"

namespace dltrace::preload {

constinit bool g_event_clock_counts_cycles = false;

void start_clock(format::FileHeader* h) {
  if (h == nullptr) return;
  g_event_clock_counts_cycles = arch::cycle_counter_is_invariant();
  if (!g_event_clock_counts_cycles) {
    __atomic_store_n(&h->clock_kind, format::kClockMonotonicNs, __ATOMIC_RELAXED);
    return;
  }
  const uint64_t ns = now_ns();
  const uint64_t tsc = arch::cycle_counter();
  h->tsc_base = tsc;
  h->tsc_base_ns = ns;
  h->tsc_latest = tsc;
  h->tsc_latest_ns = ns;
  h->tsc_hz_estimate = arch::cycle_counter_hz();  // 0 (unknown) until measured, where unstated
  __atomic_store_n(&h->clock_kind, format::kClockTsc, __ATOMIC_RELEASE);
}

uint64_t ticks_to_ns(const format::FileHeader* h, uint64_t ticks) {
  if (!g_event_clock_counts_cycles || h == nullptr) return ticks;
  const uint64_t dns = now_ns() - h->tsc_base_ns;
  const uint64_t dt = arch::cycle_counter() - h->tsc_base;
  if (dt == 0) return ticks;
  return static_cast<uint64_t>(static_cast<long double>(ticks) * dns / dt);
}

void refresh_clock(format::FileHeader* h) {
  if (!g_event_clock_counts_cycles || h == nullptr) return;
  const uint64_t ns = now_ns();
  const uint64_t tsc = arch::cycle_counter();
  if (tsc <= __atomic_load_n(&h->tsc_latest, __ATOMIC_RELAXED)) return;
  const uint64_t dns = ns - h->tsc_base_ns;
  if (dns > 0) {
    // 128 bits: no overflow
    const auto hz = static_cast<unsigned __int128>(tsc - h->tsc_base) * 1000000000u / dns;
    __atomic_store_n(&h->tsc_hz_estimate, static_cast<uint64_t>(hz), __ATOMIC_RELAXED);
  }
  __atomic_store_n(&h->tsc_latest_ns, ns, __ATOMIC_RELAXED);
  __atomic_store_n(&h->tsc_latest, tsc, __ATOMIC_RELEASE);
}

void refresh_clock_if_due(format::FileHeader* h) {
  if (!g_event_clock_counts_cycles || h == nullptr) return;
  const uint64_t tsc = arch::cycle_counter();
  const uint64_t latest = __atomic_load_n(&h->tsc_latest, __ATOMIC_ACQUIRE);
  if (tsc > latest && tsc - latest >= (latest - h->tsc_base) / kRefreshFraction) refresh_clock(h);
}

}  // namespace dltrace::preload

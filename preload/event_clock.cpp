// The event clock's choice and calibration (event_clock.h): two (tsc, ns) points in the header,
// the base taken when the trace is created and the latest refreshed on slow paths, so that
// readers convert ticks to ns without the recorder paying for clock_gettime on every event.
#include "event_clock.h"

namespace dltrace::preload {

constinit bool g_event_clock_is_tsc = false;

namespace {
bool invariant_tsc() {
  unsigned eax, ebx, ecx, edx;
  __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0x80000000u), "c"(0));
  if (eax < 0x80000007u) return false;
  __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(0x80000007u), "c"(0));
  return (edx & (1u << 8)) != 0;
}
}  // namespace

void start_clock(format::FileHeader* h) {
  if (h == nullptr) return;
  g_event_clock_is_tsc = invariant_tsc();
  if (!g_event_clock_is_tsc) {
    __atomic_store_n(&h->clock_kind, format::kClockMonotonicNs, __ATOMIC_RELAXED);
    return;
  }
  const uint64_t ns = now_ns();
  const uint64_t tsc = __builtin_ia32_rdtsc();
  h->tsc_base = tsc;
  h->tsc_base_ns = ns;
  h->tsc_latest = tsc;
  h->tsc_latest_ns = ns;
  __atomic_store_n(&h->clock_kind, format::kClockTsc, __ATOMIC_RELEASE);
}

uint64_t ticks_to_ns(const format::FileHeader* h, uint64_t ticks) {
  if (!g_event_clock_is_tsc || h == nullptr) return ticks;
  const uint64_t dns = now_ns() - h->tsc_base_ns;
  const uint64_t dt = __builtin_ia32_rdtsc() - h->tsc_base;
  if (dt == 0) return ticks;
  return static_cast<uint64_t>(static_cast<long double>(ticks) * dns / dt);
}

void refresh_clock(format::FileHeader* h) {
  if (!g_event_clock_is_tsc || h == nullptr) return;
  const uint64_t ns = now_ns();
  const uint64_t tsc = __builtin_ia32_rdtsc();
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

}  // namespace dltrace::preload

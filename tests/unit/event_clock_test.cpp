// The event clock's calibration points (event_clock.h): the latest point moves on a slow path
// only when the time since it is a fair part of the span it closes.
#include "event_clock.h"

#include <catch2/catch.hpp>

#include "arch/arch.h"

using dltrace::format::FileHeader;
namespace preload = dltrace::preload;

TEST_CASE("event clock: the latest calibration point moves only when it is due") {
  FileHeader h{};
  preload::start_clock(&h);
  if (h.clock_kind != dltrace::format::kClockTsc) {
    WARN("no invariant cycle counter here: events are CLOCK_MONOTONIC ns, nothing to calibrate");
    return;
  }
  // A trace begun 8e9 ticks ago whose latest point is 1e6 ticks old: not due (1e6 < 8e9 / 8).
  const uint64_t now = preload::arch::cycle_counter();
  REQUIRE(now > 8'100'000'000ull);  // seconds after boot
  h.tsc_base = now - 8'000'000'000ull;
  h.tsc_latest = now - 1'000'000ull;
  h.tsc_latest_ns = h.tsc_base_ns + 1;
  preload::refresh_clock_if_due(&h);
  CHECK(h.tsc_latest == now - 1'000'000ull);
  CHECK(h.tsc_latest_ns == h.tsc_base_ns + 1);
  // Its latest point 2e9 ticks old: due (2e9 >= 6e9 / 8), and it moves to now.
  h.tsc_latest = now - 2'000'000'000ull;
  preload::refresh_clock_if_due(&h);
  CHECK(h.tsc_latest >= now);
  CHECK(h.tsc_latest_ns > h.tsc_base_ns + 1);
  // The end of the process always writes it.
  const uint64_t before = h.tsc_latest;
  preload::refresh_clock(&h);
  CHECK(h.tsc_latest > before);
}

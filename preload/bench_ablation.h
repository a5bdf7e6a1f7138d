// Parts of recording a benchmark can leave out, one at a time, to measure what each costs in the
// same run as the whole recorder (tests/bench/dlopen_loop_cost.sh: the floor under the tiny
// dlopen loop). Compiled in only with DLTRACE_BENCH_ABLATIONS, into the benchmarks'
// libdltrace_ablation.so; in libdltrace.so every part is always recorded (a constant false).
#pragma once

namespace dltrace::preload::ablation {

enum Part : unsigned {
  kVforkCheck = 1u << 0,      // the getpid() before a dlopen, dlmopen or dlclose
  kSyncBeforeOpen = 1u << 1,  // the object table's look at the loader before a dlopen
  kInFlightMark = 1u << 2,    // the durable mark of a dlopen in flight
  kObjectSync = 1u << 3,   // the object table's syncs after start (nothing loaded later is known)
  kEventCommit = 1u << 4,  // writing events into the ring
};

#ifdef DLTRACE_BENCH_ABLATIONS
// Whether DLTRACE_ABLATE (the parts' bits, in hex) leaves `part` out.
bool left_out(Part part);
#else
constexpr bool left_out(Part) {
  return false;
}
#endif

}  // namespace dltrace::preload::ablation

// Calls that never returned. The recorder commits a dlopen/dlmopen's slot once when the call
// starts (format::kEventInFlight) and again when it returns; a slot that still carries the bit is
// a call the process died, exited or exec'ed inside: a SIGBUS on a file truncated under the
// loader, a constructor that crashed or called exit(). Every view says so in the same words.
#pragma once

#include <string>
#include <vector>

#include "dltrace/format.h"
#include "dltrace/reader.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

inline bool in_flight(const format::EventSlot& e) {
  return (e.bits & format::kEventInFlight) != 0;
}
// A call that returned and failed (a call in flight did neither).
inline bool failed_call(const format::EventSlot& e) {
  return !(e.bits & format::kEventOk) && !in_flight(e);
}

// The calls in flight when the trace ends, in seq order (outer calls before the ones they made).
std::vector<format::EventSlot> calls_in_flight(const TraceReader& reader);

// `dlopen("./libcut.so", RTLD_NOW)`, `dlmopen(LM_ID_NEWLM, "libx.so", RTLD_LAZY)`.
std::string call_with_arguments(const TraceReader& reader, const format::EventSlot& e);

// Milliseconds from the call's start to the recorded end of the process; negative when the
// process has no recorded end (or the times do not fit).
double ms_to_end(const TraceModel& model, const format::EventSlot& e);

// One sentence for a call in flight, how the process ended first:
//   "died inside dlopen("./libcut.so", RTLD_NOW), 0.412 ms after the call started (killed by
//    signal 7 (SIGBUS))"
//   "exited with status 3 inside dlopen(...), 2.000 ms after the call started"
//   "exec'ed /bin/true from inside dlopen(...), ..."
//   "was inside dlopen(...) when the trace ends: the call never returned (no recorded end: ...)"
// with " on thread T" after the call when T is not the main thread.
std::string in_flight_text(const TraceModel& model, const format::EventSlot& e);

}  // namespace dltrace::viewer

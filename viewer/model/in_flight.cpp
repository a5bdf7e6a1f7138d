#include "model/in_flight.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include "common/dlopen_flags.h"

namespace dltrace::viewer {

std::vector<format::EventSlot> calls_in_flight(const TraceReader& reader) {
  std::vector<format::EventSlot> out;
  reader.for_each_event([&](const format::EventSlot& e) {
    // Only a dlopen/dlmopen leaves a mark; a damaged trace could set the bit on anything, and
    // the nesting of a real process is bounded, so a few are enough.
    if (in_flight(e) && is_open_call(e.call) && out.size() < 64) out.push_back(e);
    return true;
  });
  return out;
}

std::string call_with_arguments(const TraceReader& reader, const format::EventSlot& e) {
  const std::string name =
      e.name == format::kNoId ? "NULL" : fmt::format("\"{}\"", reader.string(e.name));
  if (e.call == static_cast<uint16_t>(format::CallKind::kDlmopen)) {
    const std::string ns = e.lmid == LM_ID_NEWLM  ? "LM_ID_NEWLM"
                           : e.lmid == LM_ID_BASE ? "LM_ID_BASE"
                                                  : std::to_string(e.lmid);
    return fmt::format("dlmopen({}, {}, {})", ns, name, flags_to_string(e.flags));
  }
  return fmt::format("{}({}, {})", call_name(e.call), name, flags_to_string(e.flags));
}

double ms_to_end(const TraceModel& model, const format::EventSlot& e) {
  const ProcessInfo& p = model.reader().process();
  if (p.end == format::EndKind::kRunning || p.end_monotonic_ns == 0) return -1;
  const uint64_t start = model.time_ns(e);
  if (p.end_monotonic_ns < start) return -1;
  return static_cast<double>(p.end_monotonic_ns - start) / 1e6;
}

std::string in_flight_text(const TraceModel& model, const format::EventSlot& e) {
  const ProcessInfo& p = model.reader().process();
  std::string call = call_with_arguments(model.reader(), e);
  if (p.pid > 0 && e.tid != static_cast<uint32_t>(p.pid))
    call += fmt::format(" on thread {}", e.tid);
  const double ms = ms_to_end(model, e);
  const std::string after =
      ms >= 0 ? fmt::format(", {:.3f} ms after the call started", ms) : std::string();
  switch (p.end) {
    case format::EndKind::kSignal:
      return fmt::format("died inside {}{} (killed by {})", call, after, signal_text(p.end_code));
    case format::EndKind::kExit:
      return fmt::format("{} inside {}{}", end_text(p), call, after);
    case format::EndKind::kExec:
      return fmt::format("exec'ed {} from inside {}{}",
                         p.exec_target.empty() ? "another program" : p.exec_target, call, after);
    case format::EndKind::kRunning:
      break;
  }
  return fmt::format("was inside {} when the trace ends: the call never returned ({})", call,
                     kNoRecordedEnd);
}

}  // namespace dltrace::viewer

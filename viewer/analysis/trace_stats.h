// The numbers of `dltrace stats`: counts per call and per thread, the most looked-up symbols,
// the slowest loads (total and self time), and the loads made from Python per statement.
//
// One pass over the events with bounded memory: per-call, per-thread and per-symbol aggregates,
// a per-thread stack of the calls still open (for self time), the N slowest loads, and the loads
// made from Python summed per Python stack (analysis/python_imports).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/outcome.h"
#include "analysis/python_imports.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

inline constexpr size_t kCallKinds = format::kCallKindCount + 1;  // slot 0 counts unknown calls

struct CallCount {
  uint64_t total = 0;
  uint64_t failed = 0;
  void add(bool ok) {
    ++total;
    if (!ok) ++failed;
  }
};

struct ThreadStats {
  uint32_t tid = 0;
  CallCount all;
  std::array<uint64_t, kCallKinds> calls{};  // by CallKind
};

struct SymbolStats {
  std::string symbol;
  std::string version;  // dlvsym only
  CallCount lookups;
};

// One dlopen/dlmopen call, once its nested calls are all known.
struct LoadTiming {
  uint64_t seq = 0;
  uint16_t call = 0;
  uint32_t tid = 0;
  std::optional<std::string> file;  // nullopt: dlopen(NULL)
  uint64_t duration_ns = 0;         // including constructors
  uint64_t self_ns = 0;             // less the traced calls nested in it
  bool ok = false;
  size_t new_objects = 0;
  std::string error;
};

struct TraceStats {
  size_t top = 0;                             // rows each ranking was asked for
  uint64_t readable = 0;                      // events
  uint64_t failed = 0;                        // calls that returned and failed
  std::vector<std::string> in_flight;         // calls the process ended inside (model/in_flight.h)
  std::array<CallCount, kCallKinds> calls{};  // by CallKind; [0]: unknown calls
  std::vector<ThreadStats> threads;           // by tid
  size_t distinct_symbols = 0;                // symbol@version pairs looked up
  std::vector<SymbolStats> top_symbols;       // most looked up first (ties: by name)
  std::vector<LoadTiming> slowest_loads;      // most time first (ties: the earlier call)
  PythonLoads python;
  OutcomeCounts outcomes;  // failed calls by class, as explain counts them (analysis/outcome.h)
};

// Streams the events of the model's trace once.
TraceStats compute_trace_stats(const TraceModel& model, size_t top);

// The file name of a module loaded from Python: the resolved object's, else the requested one's.
std::string python_module_name(const PyLoad& load, const TraceModel& model);

}  // namespace dltrace::viewer

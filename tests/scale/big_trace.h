// Large synthetic traces for the scale test and the export benchmark, written with the
// recorder's own TraceWriter (the same file the preload writes): a fixed set of objects loaded up
// front, then millions of dlsym/dlvsym/dlopen/dlclose events over bounded pools of symbol names,
// errors and stacks, so the catalog is the same size whatever the event count and everything that
// grows with the count is the ring.
#pragma once

#include <cstdint>
#include <string>

namespace dltrace::test {

struct BigTraceOptions {
  uint64_t events = 1'000'000;
  uint32_t stack_depth = 16;  // native frames per stack; 0: no stacks at all
  uint32_t distinct_stacks = 256;
  bool python_stacks = true;  // one event in 8 carries a Python stack
  // A Python program's trace: every dlopen carries a Python stack (the import that made it),
  // drawn from kPythonLoadStacks distinct stacks under 256 top-level statements, one in four
  // cut at the recorder's 64 frames. What the Python attribution keeps must stay bounded by
  // those stacks, not grow with the dlopen calls.
  bool python_loads = false;
};

// Distinct Python stacks of a `python_loads` trace.
inline constexpr uint32_t kPythonLoadStacks = 2048;

// Writes the trace to `path` (which must not exist). Returns "" or one sentence saying what failed.
// The ring is sized so that every event stays readable (nothing wraps).
std::string write_big_trace(const std::string& path, const BigTraceOptions& options);

}  // namespace dltrace::test

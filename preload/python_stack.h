// Python stacks for events made under the interpreter (extension imports, ctypes loads).
//
// CPython's C API is found by feature detection in the loaded objects (a dlerror-free lookup,
// never dlsym): nothing is linked, and a process without Python pays one cached "no Python"
// answer per event, re-probed only when the object table registered or unloaded an object that
// defines Py_IsInitialized (an embedded libpython dlopen'ed later). A stack is taken only on a
// thread that holds the GIL of an initialized, not finalizing interpreter:
// PyThreadState_GetFrame -> PyFrame_GetCode / GetLineNumber / GetBack (3.9+), the pending
// exception saved and restored, every new reference released.
#pragma once

#include <atomic>
#include <cstdint>

#include "dltrace/format.h"
#include "object_table.h"

namespace dltrace::preload {

class TraceWriter;

namespace python_stack_detail {
struct PyApi;
// The API found by the last probe (null: no usable CPython) and objects::python_generation() then.
extern std::atomic<const PyApi*> g_api;
extern std::atomic<uint64_t> g_generation;
uint32_t capture(TraceWriter& writer);
}  // namespace python_stack_detail

// Interns the current thread's Python stack (innermost frame first, at most kMaxPythonFrames);
// format::kNoId when there is none. Sets kRecorderPythonStacks in the header once Python is found.
// Inline: without Python, and nothing to probe again, every event pays two loads here.
inline uint32_t capture_python_stack(TraceWriter& writer) {
  if (python_stack_detail::g_api.load(std::memory_order_relaxed) == nullptr &&
      objects::python_generation() ==
          python_stack_detail::g_generation.load(std::memory_order_relaxed))
    return format::kNoId;
  return python_stack_detail::capture(writer);
}

inline constexpr uint32_t kMaxPythonFrames = 64;

}  // namespace dltrace::preload

// Python stacks for events made under the interpreter (extension imports, ctypes loads).
//
// CPython's C API is found by feature detection in the loaded objects (a dlerror-free lookup,
// never dlsym): nothing is linked, and a process without Python pays one cached "no Python"
// answer per event, re-probed only when the object table registered or unloaded an object that
// defines Py_IsInitialized (an embedded libpython dlopen'ed later). A stack is taken only on a thread that holds the GIL of an initialized,
// not finalizing interpreter: PyThreadState_GetFrame -> PyFrame_GetCode / GetLineNumber /
// GetBack (3.9+), the pending exception saved and restored, every new reference released.
#pragma once

#include <cstdint>

namespace dltrace::preload {

class TraceWriter;

// Interns the current thread's Python stack (innermost frame first, at most kMaxPythonFrames);
// format::kNoId when there is none. Sets kRecorderPythonStacks in the header once Python is found.
uint32_t capture_python_stack(TraceWriter& writer);

inline constexpr uint32_t kMaxPythonFrames = 64;

}  // namespace dltrace::preload

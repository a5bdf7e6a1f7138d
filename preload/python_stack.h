// Python stacks for events made under the interpreter (extension imports, ctypes). Stub for
// now: a later issue walks the frames through Python's C API (found with lookup_global).
#pragma once

#include <cstdint>

namespace dltrace::preload {

class TraceWriter;

// Interns the current thread's Python stack; format::kNoId when there is none.
uint32_t capture_python_stack(TraceWriter& writer);

}  // namespace dltrace::preload

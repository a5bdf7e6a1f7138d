// The dltrace_* functions libdltrace.so exports besides its interposers. A program (or a
// benchmark) that knows it runs under the recorder finds them with dlsym; untraced, they are
// simply absent, so nothing links against them.
#include "interposed_functions.h"
#include "object_table.h"
#include "recorder_internal.h"
#include "stack_capture.h"

using namespace dltrace::preload;
using namespace dltrace::preload::recorder;

// Native stack depth from now on (0: none). -1 when this process does not record (or in a
// dlmopen namespace's copy).
DLTRACE_EXPORT int dltrace_set_stack_depth(unsigned depth) {
  if (active_api() != primary_api()) return -1;
  if (depth > stack::kMaxDepth) depth = stack::kMaxDepth;
  g_stack_depth.store(depth, std::memory_order_relaxed);
  return 0;
}

// The trace file this process writes, or nullptr when it does not record.
DLTRACE_EXPORT const char* dltrace_trace_path(void) {
  if (active_api() != primary_api()) return nullptr;
  return g_writer.path();
}

// Called by the primary on the copy of this library it loaded into a new dlmopen namespace
// (namespaces.cpp): 0 when that copy now forwards its calls to `primary` (a PrimaryApi).
DLTRACE_EXPORT int dltrace_attach_namespace(const void* primary) {
  if (!is_secondary_instance()) return -1;
  return attach_to_primary(static_cast<const PrimaryApi*>(primary)) ? 0 : -1;
}

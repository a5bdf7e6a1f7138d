// dlsym/dlvsym while the primary records: the real call (on the caller's behalf for RTLD_DEFAULT
// and RTLD_NEXT) and its event in one pass, with no CallState and no PrimaryApi indirection. This
// is the hot path of dlsym-heavy programs (a lookup loop repeats the same names and objects, which
// the writer's intern tables and the object table's per-thread memo make cheap).
#include <dlfcn.h>

#include <cstdio>

#include "call_nesting.h"
#include "caller_context.h"
#include "event_clock.h"
#include "live_printer.h"
#include "name_cache.h"
#include "object_table.h"
#include "python_stack.h"
#include "real_functions.h"
#include "recorder_internal.h"
#include "stack_capture.h"
#include "thread_state.h"

namespace dltrace::preload {

using format::CallKind;
using format::kNoId;
using namespace recorder;

namespace {

// Which objects a lookup involved: the caller's, the handle's and the one defining the result.
// Memoised per thread in the object table. A miss on the caller or the result means objects were
// loaded since the last look: by the enclosing dlopen (a constructor calling dlsym), or without
// any traced call. They are registered first, as api_begin does.
void attribute_lookup(format::EventSlot& s, const void* handle, const NestFrame* enclosing) {
  objects::LookupObjects o;
  if (!objects::lookup_objects(s.caller_ip, handle, s.address, &o) &&
      objects::sync_if_changed(attribution_for(enclosing, s.seq), s.seq).added > 0)
    objects::lookup_objects(s.caller_ip, handle, s.address, &o);
  s.caller_object = o.caller;
  s.handle_object = o.handle;
  s.object = o.result;
}

}  // namespace

void* record_lookup(void* handle, const char* symbol, const char* version, const void* caller) {
  const RealFunctions& real = real_functions();
  // RTLD_DEFAULT and RTLD_NEXT depend on the caller: those calls are made on its behalf.
  const bool by_caller = handle == RTLD_DEFAULT || handle == RTLD_NEXT;
  ThreadState& ts = t_state;
  format::EventSlot s{};
  s.call = static_cast<uint16_t>(version ? CallKind::kDlvsym : CallKind::kDlsym);
  s.tid = current_tid();
  s.handle = reinterpret_cast<uint64_t>(handle);
  s.caller_ip = reinterpret_cast<uint64_t>(caller);
  s.error = kNoId;
  s.object = kNoId;
  // Everything that may run foreign code (the unwinder, Python) happens before the call, so that
  // nothing can touch dlerror between a failed call and its replay below.
  const uint32_t depth = ts.depth;
  const NestFrame* enclosing = mark_nested(s, ts, depth);
  const uint32_t stack_depth = g_stack_depth.load(std::memory_order_relaxed);
  s.stack = stack_depth ? capture_native_stack(caller, stack_depth) : kNoId;
  s.py_stack = capture_python_stack(g_writer);
  // Calls nested in this one (an IFUNC resolver's) see it as their enclosing call; its seq is
  // not reserved yet (see api_begin), so they get parent_seq 0.
  if (depth < kMaxNesting) ts.frames[depth] = {0, kNoId, 0, 0};
  ts.depth = depth + 1;

  const CallerContext ctx = by_caller ? CallerContext(caller) : CallerContext::direct();
  if (by_caller && !ctx.preserved()) s.bits |= format::kEventCallerEmulated;
  s.time_ns = event_clock();
  void* r = ctx.lookup(handle, symbol, version);
  s.duration_ns = event_clock() - s.time_ns;
  ts.depth = depth;
  char error_text[512];  // for DLTRACE_LIVE (the dlerror buffer is gone after the replay)
  error_text[0] = '\0';
  if (r == nullptr) {
    if (const char* e = real.dlerror()) {
      s.error = g_writer.intern_string(e);
      if (g_live) snprintf(error_text, sizeof error_text, "%s", e);
      // Re-arm the error for the program: the identical call fails the same way.
      r = ctx.lookup(handle, symbol, version);
    }
  }
  s.address = reinterpret_cast<uint64_t>(r);
  // A NULL symbol value with no error (IFUNC returning NULL) is still a successful lookup.
  if (r != nullptr || s.error == kNoId) s.bits |= format::kEventOk;
  s.name = intern_name(g_writer, symbol);
  s.version = version ? g_writer.intern_string(version) : kNoId;
  s.seq = g_writer.reserve_seq();
  attribute_lookup(s, handle, enclosing);
  g_writer.commit(s);
  if (g_live) {
    format::EventSlot shown = s;
    shown.duration_ns = ticks_to_ns(g_writer.header(), s.duration_ns);
    print_live_event(shown, symbol, version, error_text[0] ? error_text : nullptr);
  }
  return r;
}

}  // namespace dltrace::preload

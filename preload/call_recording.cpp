// Recording a call in two halves around the real call, which the interposer makes itself:
// api_begin before (seq, thread, caller, nesting, overrides, stacks), api_end after (what the call
// loaded or unloaded, the commit). The primary's dlopen, dlmopen and dlclose take this path, and
// so does every call a dlmopen namespace's copy of the recorder forwards; the primary's dlsym and
// dlvsym take the one-pass lookup_recording.cpp.
#include <dlfcn.h>
#include <unistd.h>

#include "bench_ablation.h"
#include "call_nesting.h"
#include "event_clock.h"
#include "fork_gate.h"
#include "live_printer.h"
#include "name_cache.h"
#include "object_table.h"
#include "overrides.h"
#include "python_stack.h"
#include "recorder_internal.h"
#include "stack_capture.h"
#include "thread_state.h"

namespace dltrace::preload::recorder {

using format::CallKind;
using format::kNoId;

bool api_begin(CallState* cs) {
  ThreadState& ts = t_state;
  format::EventSlot& s = cs->slot;
  const auto kind = static_cast<CallKind>(s.call);
  const bool opens = kind == CallKind::kDlopen || kind == CallKind::kDlmopen;
  const bool rare = opens || kind == CallKind::kDlclose;
  // vfork / posix_spawn / raw clone children skip the atfork handler: never write into the
  // parent's file from them.
  if (rare && !ablation::left_out(ablation::kVforkCheck) && getpid() != g_pid) return false;
  // dlopen/dlmopen/dlclose reserve their seq now (nested calls and loaded objects refer to it).
  // dlsym/dlvsym reserve it just before the commit: with many threads, a seq held across the
  // call would often be committed after the ring wrapped past it.
  if (rare) s.seq = g_writer.reserve_seq();
  s.tid = current_tid();
  const uint32_t depth = ts.depth;
  const NestFrame* enclosing = mark_nested(s, ts, depth);
  cs->nest_index = depth;
  bool known = false;
  s.caller_object = objects::object_at(reinterpret_cast<uint64_t>(cs->caller), &known);
  const uint64_t seq = rare ? s.seq : next_seq();
  const objects::Attribution before = attribution_for(enclosing, seq);
  // Register what was loaded since the last look: before a dlopen, so that its own loads are told
  // apart from earlier ones. A dlclose whose caller and handle are known, outside any dlopen, can
  // leave that to its end: the sync there registers the same objects the same way (discovered at
  // this seq).
  bool look = (opens && !ablation::left_out(ablation::kSyncBeforeOpen)) || !known;
  if (!look && kind == CallKind::kDlclose)
    look = before.mode != objects::Mode::kDiscovered ||
           objects::object_of_handle(cs->handle_in) == kNoId;
  if (look) {
    const objects::SyncResult r = objects::sync_if_changed(before, seq);
    if (r.added > 0 || r.removed > 0 || !known)
      s.caller_object = objects::object_at(reinterpret_cast<uint64_t>(cs->caller));
  }
  if (opens) {
    if (apply_overrides(cs->name, s.flags, cs->caller, &cs->overrides)) {
      s.effective_flags = cs->overrides.flags;
      if (s.effective_flags != s.flags) s.bits |= format::kEventOverridden;
      for (uint32_t i = 0; i < cs->overrides.count && i < 8; ++i) {
        const AppliedOverride& o = cs->overrides.applied[i];
        g_writer.add_override({s.seq, o.line, o.flags_before, o.flags_after, 0});
        s.override_line = o.line;
      }
    } else {
      cs->overrides.count = 0;
      cs->overrides.flags = s.flags;
      s.effective_flags = s.flags;
    }
  } else {
    s.handle = reinterpret_cast<uint64_t>(cs->handle_in);
    if (cs->handle_in != RTLD_DEFAULT && cs->handle_in != RTLD_NEXT)
      s.handle_object = objects::object_of_handle(cs->handle_in);
  }
  s.name = intern_name(g_writer, cs->name);
  s.version = cs->version ? g_writer.intern_string(cs->version) : kNoId;
  const uint32_t stack_depth = g_stack_depth.load(std::memory_order_relaxed);
  s.stack = stack_depth ? capture_native_stack(cs->caller, stack_depth) : kNoId;
  s.py_stack = capture_python_stack(g_writer);
  if (depth < kMaxNesting)
    ts.frames[depth] = {s.seq, s.caller_object,
                        static_cast<uint8_t>((s.effective_flags & RTLD_GLOBAL) != 0),
                        static_cast<uint8_t>(opens)};
  ts.depth = depth + 1;
  s.time_ns = event_clock();
  // The durable mark of a call in flight (format::kEventInFlight).
  if (opens && !ablation::left_out(ablation::kInFlightMark)) {
    format::EventSlot mark = s;
    mark.bits |= format::kEventInFlight;
    g_writer.commit(mark);
  }
  return true;
}

void api_end(CallState* cs) {
  t_state.depth = cs->nest_index;
  format::EventSlot& s = cs->slot;
  switch (static_cast<CallKind>(s.call)) {
    case CallKind::kDlopen:
    case CallKind::kDlmopen: {
      const void* handle = reinterpret_cast<const void*>(s.handle);
      objects::Attribution a;
      a.mode = objects::Mode::kCall;
      a.seq = s.seq;
      a.caller_object = s.caller_object;
      a.global = (s.effective_flags & RTLD_GLOBAL) != 0;
      a.opened = handle;
      // A cautious fork child learns here that the loader's write lock is free: a handle the
      // table does not know is an object this call loaded, under that lock, and released it.
      if (handle != nullptr && fork_gate::cautious() && objects::object_of_handle(handle) == kNoId)
        fork_gate::proven_safe();
      objects::sync_if_changed(a, s.seq);
      objects::HandleInfo opened;
      if (handle != nullptr) {
        s.object = kNoId;
        if (objects::handle_info(handle, &opened)) {
          s.object = opened.id;
          s.lmid = opened.lmid;
          // Brought in by this call (possibly attributed early by a nested call) or not.
          if (opened.load_seq != s.seq) {
            s.bits |= format::kEventNoLoad;
            if ((s.effective_flags & RTLD_GLOBAL) && !opened.global)
              objects::promote(handle, s.seq);
          }
        }
      } else if (s.call == static_cast<uint16_t>(CallKind::kDlopen)) {
        // Failed dlopen: the namespace it was made in is the caller's.
        objects::object_at(reinterpret_cast<uint64_t>(cs->caller), nullptr, &s.lmid);
      }
      break;
    }
    case CallKind::kDlsym:
    case CallKind::kDlvsym: {
      s.seq = g_writer.reserve_seq();
      if (s.address != 0) {
        bool found = false;
        s.object = objects::object_at(s.address, &found);
        if (!found) {
          objects::Attribution a;
          a.mode = objects::Mode::kDiscovered;
          a.seq = s.seq;
          if (objects::sync_if_changed(a, s.seq).added > 0)
            s.object = objects::object_at(s.address);
        }
      }
      break;
    }
    case CallKind::kDlclose: {
      objects::Attribution a;
      a.mode = objects::Mode::kDiscovered;
      a.seq = s.seq;
      if (objects::sync_if_changed(a, s.seq).removed > 0) s.bits |= format::kEventUnloaded;
      s.object = s.handle_object;
      break;
    }
  }
  g_writer.commit(s);
  if (s.call != static_cast<uint16_t>(CallKind::kDlsym) &&
      s.call != static_cast<uint16_t>(CallKind::kDlvsym))
    refresh_clock_if_due(g_writer.header());
  if (g_live) {
    format::EventSlot shown = s;
    shown.duration_ns = ticks_to_ns(g_writer.header(), s.duration_ns);
    print_live_event(shown, cs->name, cs->version, cs->error_text[0] ? cs->error_text : nullptr);
  }
}

}  // namespace dltrace::preload::recorder

// Traced calls within traced calls on one thread: a constructor calling dlsym inside dlopen, an
// IFUNC resolver inside dlsym. Each event names the call it is nested in, and objects that show
// up during a dlopen are that dlopen's. Inline: on every recording path.
#pragma once

#include <cstdint>

#include "dltrace/format.h"
#include "object_table.h"
#include "thread_state.h"

namespace dltrace::preload {

// The traced call this event is nested in on this thread (nullptr: none); marks the event.
inline const NestFrame* mark_nested(format::EventSlot& s, const ThreadState& ts, uint32_t depth) {
  if (depth == 0) return nullptr;
  const NestFrame* enclosing = &ts.frames[(depth <= kMaxNesting ? depth : kMaxNesting) - 1];
  s.bits |= format::kEventNested;
  s.parent_seq = enclosing->seq;
  return enclosing;
}

// Objects found loaded at an event were brought in by the enclosing dlopen (the event comes
// from its constructor), or else without any traced call (found at `seq`).
inline objects::Attribution attribution_for(const NestFrame* enclosing, uint64_t seq) {
  objects::Attribution a;
  if (enclosing != nullptr && enclosing->is_open && enclosing->seq != 0) {
    a.mode = objects::Mode::kCall;
    a.seq = enclosing->seq;
    a.caller_object = enclosing->caller_object;
    a.global = enclosing->global != 0;
  } else {
    a.mode = objects::Mode::kDiscovered;
    a.seq = seq;
  }
  return a;
}

}  // namespace dltrace::preload

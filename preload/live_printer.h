// DLTRACE_LIVE=1: one human-readable line per event on stderr, as it happens. Written with a
// single write(2) per line so that lines from several threads do not interleave.
#pragma once

#include "dltrace/format.h"

namespace dltrace::preload {

// name/version/error: the raw strings of the call (error may be nullptr).
void print_live_event(const format::EventSlot& slot, const char* name, const char* version,
                      const char* error);

}  // namespace dltrace::preload

// The recorder as the interposers see it: the two halves of every traced call, the one-pass
// lookup, dlmopen namespaces, and the ends of a process. The interposers (interposers.cpp) make
// the real call themselves, caller-preserving, between PrimaryApi::begin and end; everything that
// needs the trace file happens in the recorder (its files are listed in recorder_internal.h). A
// second instance of this library loaded into a dlmopen namespace has no trace file: it forwards
// its calls to the primary through PrimaryApi.
#pragma once

#include <cstdint>

#include "dltrace/format.h"
#include "overrides.h"

namespace dltrace::preload {

// One traced call. Filled by the interposer and by the primary; plain data so that it can cross
// from a secondary instance to the primary (the layout is part of PrimaryApi's version).
struct CallState {
  format::EventSlot slot;    // the event being built (seq, time, flags, handle, ...)
  const void* caller;        // return address in the original caller
  const char* name;          // file / symbol as passed by the program (may be nullptr)
  const char* version;       // dlvsym version
  const void* handle_in;     // dlsym/dlvsym/dlclose handle argument
  OverrideResult overrides;  // dlopen/dlmopen: applied rules; overrides.flags = effective flags
  uint32_t nest_index;       // this call's depth on the thread (for pop)
  uint32_t reserved;
  char error_text[512];  // copy of the dlerror() text for DLTRACE_LIVE (may be truncated)
};

// Versioned table of the primary's recording functions, handed to a secondary instance by
// dltrace_attach_namespace().
inline constexpr uint32_t kPrimaryApiVersion = 2;  // 2: CallState without t0
struct PrimaryApi {
  uint32_t version;
  uint32_t size;
  // false: not recording (pass the call through untraced).
  bool (*begin)(CallState* cs);
  void (*end)(CallState* cs);
  uint32_t (*intern)(const char* text);
  // The event clock (TSC ticks or CLOCK_MONOTONIC ns, see FileHeader::clock_kind): durations
  // measured by a secondary instance must use the primary's clock.
  uint64_t (*clock)();
};

// The API the interposers should use in this instance, or nullptr when not recording. Initialises
// the recorder lazily (a dependency's constructor may call dlopen before ours ran); if another
// thread is initialising right now, returns nullptr instead of waiting.
const PrimaryApi* active_api();

// The primary's own API (also what a secondary receives).
const PrimaryApi* primary_api();

// dlsym/dlvsym while the primary records: the real call (on the caller's behalf for RTLD_DEFAULT
// and RTLD_NEXT; glibc ignores the caller for a real handle) and its event, built in one pass
// without a CallState. This is the hot path of dlsym-heavy programs.
void* record_lookup(void* handle, const char* symbol, const char* version, const void* caller);

// dlmopen(LM_ID_NEWLM): load this library first into a new namespace so that it interposes
// there too, and attach it. Returns the new namespace id, or -1 (then the caller falls back to a
// plain LM_ID_NEWLM call). Must be called before the program's real call (touches dlerror).
long prepare_new_namespace(const CallState* cs, void** instance_handle);
// Undo prepare_new_namespace() after the program's dlmopen failed.
void release_new_namespace(void* instance_handle);

// How the process ends when it does not return through exit() (process_end.cpp): each records
// the end in this process's own trace (never in a parent's: vfork children and raw clones are
// told apart) after bringing the object table up to date.
void record_process_exit(int status, bool underscore);
void record_exec(const char* target);
void record_exec_failed();  // the exec returned: the process runs on

// Secondary instance: whether this instance lives outside the base namespace. attach_to_primary
// makes it forward to `api` (if it is a secondary and the version fits); true if it now does.
bool is_secondary_instance();
bool attach_to_primary(const PrimaryApi* api);

}  // namespace dltrace::preload

// The exported dl* interposers, one per recorded call (DLTRACE_CALL_KINDS, dltrace/calls.h). Each
// makes the real call itself, on behalf of the original caller (CallerContext), between the
// recorder's call_begin/call_end. After a failed call the dlerror() text is copied and re-armed by
// repeating the identical call; after a successful call nothing here touches dlerror state.
#include <dlfcn.h>
#include <string.h>

#include "caller_context.h"
#include "interposed_functions.h"
#include "real_functions.h"
#include "recorder.h"
#include "stack_capture.h"
#include "thread_state.h"

namespace dltrace::preload {
namespace {

using format::CallKind;

inline bool special_handle(const void* h) {
  return h == RTLD_DEFAULT || h == RTLD_NEXT;
}

// The API to record with, or nullptr: pass through (the recorder's own calls, not recording).
inline const PrimaryApi* recording_api() {
  if (__builtin_expect(t_state.guard != 0, 0)) return nullptr;
  return active_api();
}

inline void prepare(CallState& cs, CallKind kind, const void* caller) {
  memset(&cs.slot, 0, sizeof(cs.slot));
  cs.slot.call = static_cast<uint16_t>(kind);
  cs.slot.error = format::kNoId;
  cs.slot.object = format::kNoId;
  cs.slot.handle_object = format::kNoId;
  cs.slot.caller_object = format::kNoId;
  cs.slot.caller_ip = reinterpret_cast<uint64_t>(caller);
  cs.caller = caller;
  cs.name = nullptr;
  cs.version = nullptr;
  cs.handle_in = nullptr;
  cs.error_text[0] = '\0';
}

// After a failed call: consume the pending error into the event. Returns whether there was one
// (then the caller must re-arm it by repeating the call).
inline bool take_error(const PrimaryApi* api, CallState& cs) {
  const char* e = real_functions().dlerror();
  if (e == nullptr) return false;  // e.g. RTLD_NOLOAD miss, IFUNC returning NULL: nothing pending
  cs.slot.error = api->intern(e);
  strncpy(cs.error_text, e, sizeof(cs.error_text) - 1);
  cs.error_text[sizeof(cs.error_text) - 1] = '\0';
  return true;
}

inline void finish_duration(const PrimaryApi* api, CallState& cs) {
  cs.slot.duration_ns = api->clock() - cs.slot.time_ns;
}

void* traced_open(bool is_mopen, Lmid_t lmid, const char* file, int flags, const void* caller) {
  CallerContext ctx(caller);
  const PrimaryApi* api = recording_api();
  if (api == nullptr) return is_mopen ? ctx.dlmopen(lmid, file, flags) : ctx.dlopen(file, flags);
  CallState cs;
  prepare(cs, is_mopen ? CallKind::kDlmopen : CallKind::kDlopen, caller);
  cs.name = file;
  cs.slot.flags = flags;
  cs.slot.effective_flags = flags;
  cs.slot.lmid = is_mopen ? lmid : 0;
  if (!api->begin(&cs)) return is_mopen ? ctx.dlmopen(lmid, file, flags) : ctx.dlopen(file, flags);
  const int eff = cs.slot.effective_flags;
  if (!ctx.preserved()) cs.slot.bits |= format::kEventCallerEmulated;

  // dlmopen(LM_ID_NEWLM): put a second instance of the recorder first into the new namespace so
  // that calls made inside it are recorded too (an LD_PRELOAD wrapper never sees them otherwise).
  void* instance = nullptr;
  Lmid_t target = lmid;
  if (is_mopen && lmid == LM_ID_NEWLM && api == primary_api()) {
    const long ns = prepare_new_namespace(&cs, &instance);
    if (ns >= 0) target = ns;
  }
  void* r = is_mopen ? ctx.dlmopen(target, file, eff) : ctx.dlopen(file, eff);
  finish_duration(api, cs);
  if (r == nullptr) {
    if (take_error(api, cs)) {
      if (instance != nullptr) {
        release_new_namespace(instance);  // resets dlerror: the replay below re-arms it
        target = LM_ID_NEWLM;
      }
      r = is_mopen ? ctx.dlmopen(target, file, eff) : ctx.dlopen(file, eff);
    } else if (instance != nullptr) {
      release_new_namespace(instance);  // no error pending: nothing to re-arm
    }
  }
  cs.slot.handle = reinterpret_cast<uint64_t>(r);
  if (r != nullptr) cs.slot.bits |= format::kEventOk;
  api->end(&cs);
  return r;
}

void* traced_sym(void* handle, const char* symbol, const char* version, const void* caller) {
  const PrimaryApi* api = recording_api();
  const bool special = special_handle(handle);
  if (api == nullptr) {
    // glibc ignores the caller for a real handle: the fast path calls it directly.
    if (!special)
      return version ? real_functions().dlvsym(handle, symbol, version)
                     : real_functions().dlsym(handle, symbol);
    CallerContext ctx(caller);
    return version ? ctx.dlvsym(handle, symbol, version) : ctx.dlsym(handle, symbol);
  }
  if (api == primary_api()) return record_lookup(handle, symbol, version, caller);
  CallState cs;
  prepare(cs, version ? CallKind::kDlvsym : CallKind::kDlsym, caller);
  cs.name = symbol;
  cs.version = version;
  cs.handle_in = handle;
  if (!api->begin(&cs)) {
    if (!special)
      return version ? real_functions().dlvsym(handle, symbol, version)
                     : real_functions().dlsym(handle, symbol);
    CallerContext ctx(caller);
    return version ? ctx.dlvsym(handle, symbol, version) : ctx.dlsym(handle, symbol);
  }
  void* r;
  if (!special) {
    const RealFunctions& real = real_functions();
    r = version ? real.dlvsym(handle, symbol, version) : real.dlsym(handle, symbol);
    finish_duration(api, cs);
    if (r == nullptr && take_error(api, cs)) {
      r = version ? real.dlvsym(handle, symbol, version) : real.dlsym(handle, symbol);
    }
  } else {
    CallerContext ctx(caller);
    if (!ctx.preserved()) cs.slot.bits |= format::kEventCallerEmulated;
    r = version ? ctx.dlvsym(handle, symbol, version) : ctx.dlsym(handle, symbol);
    finish_duration(api, cs);
    if (r == nullptr && take_error(api, cs)) {
      r = version ? ctx.dlvsym(handle, symbol, version) : ctx.dlsym(handle, symbol);
    }
  }
  cs.slot.address = reinterpret_cast<uint64_t>(r);
  // A NULL symbol value with no error (IFUNC returning NULL) is still a successful lookup.
  if (r != nullptr || cs.slot.error == format::kNoId) cs.slot.bits |= format::kEventOk;
  api->end(&cs);
  return r;
}

int traced_close(void* handle, const void* caller) {
  const RealFunctions& real = real_functions();
  const PrimaryApi* api = recording_api();
  if (api == nullptr) return real.dlclose(handle);
  CallState cs;
  prepare(cs, CallKind::kDlclose, caller);
  cs.handle_in = handle;
  if (!api->begin(&cs)) return real.dlclose(handle);
  stack::UnloadWindow unloading;  // until api->end has registered what the call unloaded
  int r = real.dlclose(handle);
  finish_duration(api, cs);
  if (r != 0 && take_error(api, cs)) r = real.dlclose(handle);  // re-arm: fails the same way
  cs.slot.result = r;
  if (r == 0) cs.slot.bits |= format::kEventOk;
  api->end(&cs);
  return r;
}

}  // namespace
}  // namespace dltrace::preload

using namespace dltrace::preload;

DLTRACE_EXPORT void* dlopen(const char* file, int flags) noexcept {
  return traced_open(false, LM_ID_BASE, file, flags, __builtin_return_address(0));
}

DLTRACE_EXPORT void* dlmopen(Lmid_t lmid, const char* file, int flags) noexcept {
  return traced_open(true, lmid, file, flags, __builtin_return_address(0));
}

DLTRACE_EXPORT void* dlsym(void* __restrict handle, const char* __restrict symbol) noexcept {
  return traced_sym(handle, symbol, nullptr, __builtin_return_address(0));
}

DLTRACE_EXPORT void* dlvsym(void* __restrict handle, const char* __restrict symbol,
                            const char* __restrict version) noexcept {
  return traced_sym(handle, symbol, version, __builtin_return_address(0));
}

DLTRACE_EXPORT int dlclose(void* handle) noexcept {
  return traced_close(handle, __builtin_return_address(0));
}

// One recorder per namespace, one trace per process. The copy of libdltrace.so in the base
// namespace (the primary) owns the trace. An LD_PRELOAD wrapper never sees calls made inside a
// dlmopen namespace, so dlmopen(LM_ID_NEWLM) first loads a copy of this library into the new
// namespace (prepare_new_namespace); that secondary copy has no file of its own and forwards its
// calls to the primary through the versioned PrimaryApi it is handed (dltrace_attach_namespace).
#include <dlfcn.h>

#include "event_clock.h"
#include "object_table.h"
#include "real_functions.h"
#include "recorder_internal.h"
#include "thread_state.h"

namespace dltrace::preload {

using namespace recorder;

namespace {

constinit std::atomic<const PrimaryApi*> g_attached{nullptr};  // secondary: the primary's API

uint32_t api_intern(const char* text) {
  return g_writer.intern_string(text);
}

constexpr PrimaryApi kApi = {kPrimaryApiVersion, sizeof(PrimaryApi), api_begin, api_end,
                             api_intern,         event_clock};

}  // namespace

const PrimaryApi* primary_api() {
  return &kApi;
}

const PrimaryApi* active_api() {
  int s = g_state.load(std::memory_order_acquire);
  if (__builtin_expect(s == kActive, 1)) {
    if (__builtin_expect(same_process(), 1)) return &kApi;
    after_unannounced_fork();
    return g_state.load(std::memory_order_acquire) == kActive ? &kApi : nullptr;
  }
  if (s == kUninit) {
    init();
    s = g_state.load(std::memory_order_acquire);
    if (s == kActive) return &kApi;
  }
  if (s == kSecondary) return g_attached.load(std::memory_order_acquire);
  return nullptr;
}

bool is_secondary_instance() {
  active_api();
  return g_state.load(std::memory_order_acquire) == kSecondary;
}

bool attach_to_primary(const PrimaryApi* api) {
  if (g_state.load(std::memory_order_acquire) == kSecondary && api != nullptr &&
      api->version == kPrimaryApiVersion && api->size >= sizeof(PrimaryApi))
    g_attached.store(api, std::memory_order_release);
  return g_attached.load() == api;
}

long prepare_new_namespace(const CallState* cs, void** instance_handle) {
  *instance_handle = nullptr;
  if (g_state.load(std::memory_order_acquire) != kActive || g_self_real[0] == '\0') return -1;
  const RealFunctions& real = real_functions();
  if (real.dlmopen == nullptr || real.dlinfo == nullptr || real.dlsym == nullptr) return -1;
  InternalGuard guard;
  void* h = real.dlmopen(LM_ID_NEWLM, g_self_real, RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) return -1;
  Lmid_t lmid = 0;
  using AttachFn = int (*)(const void*);
  auto attach = reinterpret_cast<AttachFn>(real.dlsym(h, "dltrace_attach_namespace"));
  if (attach == nullptr || real.dlinfo(h, RTLD_DI_LMID, &lmid) != 0 || attach(&kApi) != 0) {
    real.dlclose(h);
    return -1;
  }
  *instance_handle = h;
  // Attribute our instance (and the libc it brings into the namespace) to this dlmopen now, so
  // that the program's library is recognised as the opened object afterwards.
  objects::Attribution a;
  a.mode = objects::Mode::kCall;
  a.seq = cs->slot.seq;
  a.caller_object = cs->slot.caller_object;
  a.opened = h;
  objects::sync(a, cs->slot.seq);
  return lmid;
}

void release_new_namespace(void* instance_handle) {
  if (instance_handle == nullptr) return;
  InternalGuard guard;
  real_functions().dlclose(instance_handle);
}

}  // namespace dltrace::preload

// CallerContext: make a real dl* call on behalf of the original caller.
//
// glibc's dlopen/dlmopen/dlsym/dlvsym find their caller from their return address: RTLD_NEXT
// starts after it, RTLD_DEFAULT searches its scope and adds a dependency, a bare name is searched
// in its DT_RPATH/DT_RUNPATH, $ORIGIN expands against it, its namespace is used, and dlerror
// texts name it. A wrapper that calls the real function becomes the caller. So an assembly
// trampoline makes the real function see a return address inside the caller's object: it pushes
// its own continuation, then the address of a return gadget in the caller's executable segment
// (on x86-64 a `ret` byte, 0xC3), and jumps. The real function returns onto the gadget, which
// returns into the trampoline. The gadget is chosen so that unwinders walking through the fake
// frame stay sane (on x86-64: covered by an FDE, not preceded by an instruction that moves %rsp)
// and cached per object. The trampoline and the gadget are the CPU's (arch/arch.h).
//
// Where this cannot work (no gadget, shadow stack enabled, a CPU without a trampoline) the call is
// made directly and preserved() is false; the event records that the caller was emulated.
#pragma once

#include <dlfcn.h>

#include <cstdint>

#include "arch/arch.h"  // dltrace_call_with_return_address
#include "real_functions.h"

namespace dltrace::preload {

namespace caller_detail {
// The last caller's gadget on this thread, kept only for a resident caller (present at start-up,
// never unloaded, so its gadget stays valid for the life of the process and of its fork
// children): a loop of RTLD_DEFAULT/RTLD_NEXT lookups from one place then costs one
// thread-local compare (inline, with no call), skipping the residency check and the cache.
struct LastGadget {
  const void* ip;
  const void* gadget;
};
extern constinit thread_local LastGadget t_last_gadget;
// The gadget for `ip` when it is not the last one (or nullptr: the call cannot be preserved).
const void* gadget_for_slow(const void* ip);

inline const void* gadget_for(const void* ip) {
  const LastGadget& last = t_last_gadget;
  if (__builtin_expect(last.ip == ip && ip != nullptr, 1)) return last.gadget;
  return gadget_for_slow(ip);
}
}  // namespace caller_detail

class CallerContext {
 public:
  // caller_ip: the wrapper's __builtin_return_address(0).
  explicit CallerContext(const void* caller_ip)
      : caller_ip_(caller_ip), gadget_(caller_detail::gadget_for(caller_ip)) {}

  bool preserved() const { return gadget_ != nullptr; }
  const void* caller_ip() const { return caller_ip_; }
  // The gadget the real function returns onto (nullptr when not preserved).
  const void* gadget() const { return gadget_; }

  void* dlopen(const char* file, int flags) const;
  void* dlmopen(Lmid_t lmid, const char* file, int flags) const;
  void* dlsym(void* handle, const char* symbol) const { return lookup(handle, symbol, nullptr); }
  void* dlvsym(void* handle, const char* symbol, const char* version) const {
    return lookup(handle, symbol, version);
  }
  // dlsym (`version` nullptr) or dlvsym, through one call site (inline: the recorder's lookup
  // path makes it twice when it replays a failed call).
  void* lookup(void* handle, const char* symbol, const char* version) const {
    const auto& real = real_functions();
    if (gadget_ == nullptr)
      return version ? real.dlvsym(handle, symbol, version) : real.dlsym(handle, symbol);
    // dlsym takes two arguments and ignores the third register.
    const void* fn = version ? reinterpret_cast<const void*>(real.dlvsym)
                             : reinterpret_cast<const void*>(real.dlsym);
    return reinterpret_cast<void*>(dltrace_call_with_return_address(
        fn, gadget_, reinterpret_cast<uintptr_t>(handle), reinterpret_cast<uintptr_t>(symbol),
        reinterpret_cast<uintptr_t>(version)));
  }
  // Calls made directly, not on anyone's behalf (a lookup in a real handle).
  static CallerContext direct() { return CallerContext(); }

 private:
  CallerContext() : caller_ip_(nullptr), gadget_(nullptr) {}

  const void* caller_ip_;
  const void* gadget_;  // a return gadget in the caller's object, or nullptr
};

// Whether the trampoline may be used at all in this process (arch::return_address_calls_possible).
bool trampoline_available();

// Tells whether the object containing an address can never be unloaded (the recorder's object
// table knows: objects present at start-up). Such an object's gadget stays cached across other
// objects' unloads instead of being looked up again after each one. Unset: none is assumed.
using ResidentPredicate = bool (*)(uint64_t address);
void set_resident_predicate(ResidentPredicate predicate);

}  // namespace dltrace::preload

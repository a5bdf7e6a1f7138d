// CallerContext: make a real dl* call on behalf of the original caller.
//
// glibc's dlopen/dlmopen/dlsym/dlvsym find their caller from their return address: RTLD_NEXT
// starts after it, RTLD_DEFAULT searches its scope and adds a dependency, a bare name is searched
// in its DT_RPATH/DT_RUNPATH, $ORIGIN expands against it, its namespace is used, and dlerror
// texts name it. A wrapper that calls the real function becomes the caller. So on x86-64 an
// assembly trampoline makes the real function see a return address inside the caller's object:
// it pushes its own continuation, then the address of a `ret` (0xC3) byte in the caller's
// executable segment, and jumps. The real function returns onto that `ret`, which returns into
// the trampoline. The gadget is chosen so that unwinders walking through the fake frame stay
// sane (covered by an FDE, not preceded by an instruction that moves %rsp) and cached per object.
//
// Where this cannot work (no gadget, shadow stack enabled, not x86-64) the call is made directly
// and preserved() is false; the event records that the caller was emulated.
#pragma once

#include <dlfcn.h>

#include <cstdint>

namespace dltrace::preload {

class CallerContext {
 public:
  // caller_ip: the wrapper's __builtin_return_address(0).
  explicit CallerContext(const void* caller_ip);

  bool preserved() const { return gadget_ != nullptr; }
  const void* caller_ip() const { return caller_ip_; }
  // The `ret` byte the real function returns onto (nullptr when not preserved).
  const void* gadget() const { return gadget_; }

  void* dlopen(const char* file, int flags) const;
  void* dlmopen(Lmid_t lmid, const char* file, int flags) const;
  void* dlsym(void* handle, const char* symbol) const;
  void* dlvsym(void* handle, const char* symbol, const char* version) const;

 private:
  const void* caller_ip_;
  const void* gadget_;  // a `ret` in the caller's object, or nullptr
};

// Whether the trampoline may be used at all in this process (x86-64, no shadow stack).
bool trampoline_available();

// Tells whether the object containing an address can never be unloaded (the recorder's object
// table knows: objects present at start-up). Such an object's gadget stays cached across other
// objects' unloads instead of being looked up again after each one. Unset: none is assumed.
using ResidentPredicate = bool (*)(uint64_t address);
void set_resident_predicate(ResidentPredicate predicate);

}  // namespace dltrace::preload

// The trampoline (caller_trampoline.S): calls fn(a0, a1, a2) with `gadget` as its return address;
// the gadget's `ret` comes back here. Callee sees the normal ABI (rsp = 8 mod 16 at entry).
extern "C" uintptr_t dltrace_call_with_return_address(const void* fn, const void* gadget,
                                                      uintptr_t a0, uintptr_t a1, uintptr_t a2);

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

namespace dltrace::preload {

class CallerContext {
 public:
  // caller_ip: the wrapper's __builtin_return_address(0).
  explicit CallerContext(const void* caller_ip);

  bool preserved() const { return gadget_ != nullptr; }
  const void* caller_ip() const { return caller_ip_; }
  // The gadget the real function returns onto (nullptr when not preserved).
  const void* gadget() const { return gadget_; }

  void* dlopen(const char* file, int flags) const;
  void* dlmopen(Lmid_t lmid, const char* file, int flags) const;
  void* dlsym(void* handle, const char* symbol) const;
  void* dlvsym(void* handle, const char* symbol, const char* version) const;

 private:
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

// The real dl* functions and a dlerror-free symbol lookup.
//
// dlsym(RTLD_NEXT, "dlsym") is circular once we export dlsym, and GLIBC_PRIVATE helpers are gone
// on glibc >= 2.34, so we look names up ourselves: walk dl_iterate_phdr, skip objects up to and
// including libdltrace.so (RTLD_NEXT semantics, so a second interposer preloaded after us is
// chained), read each later object's dynamic symbol table (DT_GNU_HASH or DT_HASH, DT_VERSYM,
// DT_VERDEF) and run IFUNC resolvers. Falls back to libc.so.6 / libdl.so.2 by soname.
#pragma once

#include <dlfcn.h>
#include <link.h>
#include <signal.h>

#include <atomic>
#include <type_traits>

#include "interposed_functions.h"

namespace dltrace::preload {

// The functions the recorder calls on behalf of the program: the dl* family, and the process
// functions it interposes to learn how a process ends (signal dispositions, _exit, exec). The
// rows are interposed_functions.h's: the struct member and the name looked up are generated.
using SigHandler = void (*)(int);
#define DLTRACE_REAL_FUNCTIONS(X) \
  DLTRACE_RECORDED_CALLS(X)       \
  DLTRACE_HELPER_FUNCTIONS(X)     \
  DLTRACE_PROCESS_INTERPOSERS(X)

struct RealFunctions {
#define DLTRACE_REAL_MEMBER(name, type) std::type_identity_t<type> name;
  DLTRACE_REAL_FUNCTIONS(DLTRACE_REAL_MEMBER)
#undef DLTRACE_REAL_MEMBER
};

// Resolved lazily and idempotently on first use: safe before our constructor ran (another
// library's constructor calling dlopen) and from any thread. Never returns nullptr; if a function
// cannot be found (cannot happen with a working libc) its pointer is nullptr.
inline const RealFunctions& real_functions();

// The slow half of real_functions() (inline: it is on every traced call's path).
const RealFunctions& resolve_real_functions();
extern constinit std::atomic<const RealFunctions*> g_published_real_functions;
inline const RealFunctions& real_functions() {
  if (const RealFunctions* p = g_published_real_functions.load(std::memory_order_acquire))
    return *p;
  return resolve_real_functions();
}

// Looks `name` up in one loaded object's dynamic symbol table the way the loader would:
// default (non-hidden) version when `version` is nullptr, exactly that version otherwise.
// Touches no dlerror state and takes no lock. Returns nullptr when not defined there.
void* lookup_in_object(const dl_phdr_info& object, const char* name, const char* version);

// First definition of `name` in namespace 0 in link-map order (the global-scope order for the
// executable and its dependencies), skipping libdltrace.so. For probing optional APIs such as
// Python's (Py_IsInitialized) without touching dlerror state.
void* lookup_global(const char* name, const char* version = nullptr);

}  // namespace dltrace::preload

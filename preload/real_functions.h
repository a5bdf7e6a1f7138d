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
#include <unistd.h>

#include <atomic>

#include "arch/arch.h"
#include "dltrace/calls.h"
#include "interposed_functions.h"

namespace dltrace::preload {

// The functions the recorder calls on behalf of the program: the recorded dl* calls, helpers
// (dlerror, dlinfo), and the process functions it interposes to learn how a process ends. The rows
// are dltrace/calls.h's and interposed_functions.h's: X_CALL(kind, name, value) for each recorded
// call, X(name) for the others.
#define DLTRACE_REAL_FUNCTIONS(X_CALL, X) \
  DLTRACE_CALL_KINDS(X_CALL)              \
  DLTRACE_HELPER_FUNCTIONS(X)             \
  DLTRACE_PROCESS_INTERPOSERS(X)

using SigHandler = void (*)(int);  // what signal() and sysv_signal() take and return

// One member per real function, with the type libc declares it with.
struct RealFunctions {
#define DLTRACE_REAL_MEMBER(name) decltype(&::name) name;
#define DLTRACE_REAL_CALL_MEMBER(kind, name, value) DLTRACE_REAL_MEMBER(name)
  DLTRACE_REAL_FUNCTIONS(DLTRACE_REAL_CALL_MEMBER, DLTRACE_REAL_MEMBER)
#undef DLTRACE_REAL_CALL_MEMBER
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

// glibc's _dl_find_object (>= 2.35: lock-free, async-signal-safe, leaves dlerror alone), found by
// lookup_global so that the preload needs neither GLIBC_2.35 nor ld.so as a NEEDED entry. Null
// where glibc lacks it, and, until a process resolved it, in a fork child that may have inherited
// the loader's lock held (the lookup walks the loaded objects under it).
using FindObjectFn = int (*)(void*, arch::DlFindObject*);
FindObjectFn find_object_fn();

}  // namespace dltrace::preload

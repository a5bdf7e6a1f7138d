// Which file a dlopen name will load, found *before* the call and without any dl* function that
// touches dlerror state (dlopen/dlinfo would), used by the override matcher so that a rule can
// name the file the user sees, not only the string passed.
//
// An already-loaded object with that soname wins; otherwise ld.so's search as common/
// library_search.h models it (the one model the viewer uses too), with the caller as the
// loader. Not emulated: the RPATHs of the objects that loaded the caller (ld.so's private
// l_loader chain) and ld.so.cache's glibc-hwcaps entries.
#pragma once

#include <link.h>

#include <climits>
#include <cstddef>

namespace dltrace::preload {

// The object that made a dlopen call: what the search needs of it.
struct CallerObject {
  const char* path = nullptr;  // its file ("" for the executable is replaced by its real path)
  ElfW(Addr) base = 0;
  const ElfW(Dyn) * dynamic = nullptr;
};

// The loaded object whose PT_LOAD segments contain `ip`. dl_iterate_phdr, not dladdr: dladdr
// also looks for the nearest symbol, a linear walk over the object's whole symbol table.
bool find_caller(const void* ip, CallerObject* out);

struct ResolvedLibrary {
  char path[PATH_MAX];  // absolute (or as loaded) path of the file, "" if not found
  char soname[256];     // its DT_SONAME, "" if none
};

// Reads LD_LIBRARY_PATH, the executable's path and maps /etc/ld.so.cache. Call once at init
// (it may allocate); resolve_library() works without it but finds less.
void resolver_init();

// The path of the main executable (from /proc/self/exe), "" before resolver_init().
const char* executable_path();

// Resolves `name` as dlopen would when called from the object `caller` (may be null).
// Returns false when no file was found. No allocation.
bool resolve_library(const char* name, const CallerObject* caller, ResolvedLibrary* out);

// The same, remembering the answer per (caller, name) until an object is loaded or unloaded, so
// that repeated dlopens of a name cost a table lookup instead of file I/O. A file replaced on disk
// without any load/unload in between is not noticed. Names with a relative path (which depend on
// the cwd) are never cached. Thread-safe; no lock is held across the search.
bool resolve_library_cached(const char* name, const CallerObject* caller, ResolvedLibrary* out);

// DT_SONAME of an ELF file on disk; false if unreadable, not a 64-bit x86-64 ELF, or none.
bool read_soname(const char* path, char* soname, size_t cap);

}  // namespace dltrace::preload

// Dynamic symbol lookup in one loaded ELF object, done by reading its tables in memory.
//
// Used instead of dlsym/dlvsym because those reset the program's dlerror state, take the loader
// lock and would resolve to our own interposers. Matches ld.so's rules for dlsym/dlvsym:
// unversioned request → a VER_NDX_GLOBAL/unversioned definition or the default (non-hidden)
// version; versioned request → exactly that version name (any definition if the object has no
// version table). Defined, non-local functions and objects only (no TLS).
#pragma once

#include <link.h>

#include <cstdint>

namespace dltrace::preload::elf {

struct Symbol {
  uintptr_t address = 0;  // run-time address (for an IFUNC: the resolver's address)
  bool ifunc = false;
  explicit operator bool() const { return address != 0; }
};

// Reads the object's PT_DYNAMIC and looks `name` up. Takes no lock, calls nothing in the loader.
Symbol find_symbol(const dl_phdr_info& object, const char* name, const char* version);

// find_symbol for `count` names in one object, its tables read once: fills the entries of `found`
// still empty (`versions` may be nullptr: all unversioned). Returns how many it filled.
int find_symbols(const dl_phdr_info& object, const char* const* names, const char* const* versions,
                 int count, Symbol* found);

// The address a caller gets: runs an IFUNC resolver (outside any loader lock, please).
void* resolve(const Symbol& symbol);

// DT_SONAME of the object, or nullptr.
const char* soname(const dl_phdr_info& object);

// Whether `address` lies inside one of the object's PT_LOAD segments.
bool contains(const dl_phdr_info& object, uintptr_t address);

}  // namespace dltrace::preload::elf

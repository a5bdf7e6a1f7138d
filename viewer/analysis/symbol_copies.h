// Two copies of one API in one process: an object whose exported definitions are shadowed, in its
// own lookup scope, by another object of an earlier search list that defines the same names (the
// executable, or the global scope's libraries). ld.so binds every reference through the scope to
// the first copy (loader-rules.md §2), while the second object's code reaches its own copy
// directly and a dlsym on its handle returns its own: one API, two sets of state. What stays
// quiet because it is harmless by design is decided by harmless_duplicate().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "analysis/elf_file.h"
#include "analysis/scope_graph.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

// Definitions that several objects may export by design, so a second one is no second copy:
// _init/_fini (DT_INIT/DT_FINI code, never looked up), C++ vague linkage (typeinfo and its name,
// vtables, VTTs, guard variables, TLS init/wrappers; inline functions and template instances are
// weak or STB_GNU_UNIQUE), non-default versions (glibc's compat aliases, sym@VER), symbols that
// are not code or data (version names, _end, _edata) and GLIBC_PRIVATE internals.
bool harmless_duplicate(const ElfSymbol& s);

// The libraries whose static copy a module can carry: the C++ runtime and the C library.
// "libstdc++", "the C library", ... for a soname, or "" for any other library.
std::string runtime_name(std::string_view soname);

struct CopyReference {
  uint32_t from = format::kNoId;  // the object whose relocation names the symbol
  std::string symbol;
  uint32_t to = format::kNoId;  // the copy it binds to
};

struct CopyLookup {
  uint64_t seq = 0;  // a successful dlsym/dlvsym
  std::string symbol;
  uint32_t to = format::kNoId;  // the copy it returned
};

struct ApiCopy {
  uint32_t first = format::kNoId;    // the copy every scope lookup finds first
  uint32_t second = format::kNoId;   // the object that brings another copy
  uint64_t seq = 0;                  // when `second` was relocated (its dlopen, or start-up)
  std::vector<std::string> symbols;  // exported by both, harmless ones left out; .dynsym order
  // Of `symbols`, those `second` defines and never looks up through the scope (no dynamic
  // relocation names them): its own code reaches its own copy of them directly.
  std::vector<std::string> direct;
  // Relocations of `second` and of the objects of its groups that name `symbols`.
  std::vector<CopyReference> references;
  std::vector<CopyLookup> lookups;  // dlsym/dlvsym results for `symbols`
  std::string runtime;              // runtime_name(first's soname)
  size_t second_exports = 0;        // `second`'s exported definitions, harmless ones left out

  size_t bound_to(uint32_t object) const;       // references that bind to `object`
  size_t returned_from(uint32_t object) const;  // lookups that returned `object`'s copy
  // State is split: something reaches the second copy (its own direct uses, a reference, a
  // dlsym) while references of the second object or of its group bind to the first.
  bool split() const;
  // What explain reports and tree shows: a split copy of a runtime, or of an API when most of
  // `second`'s exports are the copy. Two libraries of one project that share a few utility
  // definitions (libwayland-client and -server both export wayland-util's wl_list_*, wl_array_*
  // and the protocol's interface tables) are a minority of `second`'s API: quiet.
  bool reported() const;
};

// Every (first, second) pair of alive objects in one namespace where `second`'s own lookup
// scope finds `first` before `second` for names both export, and no search list holds both
// (two definitions in one list are ExplainObjects' duplicate-symbol). In load order.
// With `only`, just the pairs whose second object is one of those.
std::vector<ApiCopy> find_api_copies(const ScopeGraph& graph,
                                     const absl::flat_hash_set<uint32_t>* only = nullptr);

// The system libraries a dlopen brought in as dependencies that duplicate another object: a
// second copy of an API whose references split (find_api_copies), or one library loaded
// twice (the same soname or build-id from another file): object id -> the object it duplicates.
// `tree` never folds these away. Reads ELF files only when such a library exists.
absl::flat_hash_map<uint32_t, uint32_t> duplicates_brought_by_dlopen(const TraceModel& model);

}  // namespace dltrace::viewer

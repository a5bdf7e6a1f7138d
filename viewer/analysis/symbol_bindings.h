// Which definition each symbol reference of a loaded object binds to, offline: ld.so's
// _dl_lookup_symbol_x (glibc 2.36 elf/dl-lookup.c) over the object's l_scope as ScopeGraph
// reconstructs it (loader-rules.md §2). What LD_DEBUG=bindings prints, for the objects of a
// trace; the engine of the lazy-binding and two-copies findings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/elf_file.h"
#include "analysis/scope_graph.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

struct SymbolBinding {
  uint32_t from = format::kNoId;  // the object whose relocation names the symbol
  std::string symbol;
  std::string version;            // the version the reference asks for, "" for none
  uint32_t to = format::kNoId;    // the object whose definition it binds to; kNoId: none
  std::string to_version;         // the definition's version, "" for none
  uint8_t relocations = 0;        // ElfSymbol::kReloc* of the reference
  bool weak = false;              // a weak reference (binds to 0 when nothing defines it)
  bool protected_symbol = false;  // the reference's own definition is STV_PROTECTED
};

// Where `object`'s references bind when it is relocated at `seq` (its load for an eager
// binding; a later event for a lazy JUMP_SLOT bound at its first call). Empty when its file
// cannot be read.
std::vector<SymbolBinding> bind_object(const ScopeGraph& graph, const ObjectRecord& object,
                                       uint64_t seq);

// The event at which ld.so relocated `object`: the dlopen that brought it in, or start-up.
uint64_t relocation_seq(const ObjectRecord& object);

}  // namespace dltrace::viewer

// `dltrace scopes` as text: every search list (each namespace's global scope, then the local
// scope of every dlopen group) with why each object is in it; with --for, the lists an object's
// undefined symbols are looked up in, in order, as LD_DEBUG=scopes prints them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string_view>
#include <vector>

#include "analysis/scope_graph.h"
#include "analysis/scope_queries.h"

namespace dltrace::viewer {

void write_scope_lists_text(const ScopeGraph& graph, bool color, std::FILE* out);

// For each of `objects`: its search order at `at_seq`, or at its load when not given, and the
// scopes it gained later.
void write_object_scopes_text(const ScopeGraph& graph,
                              const std::vector<const ObjectRecord*>& objects,
                              std::optional<uint64_t> at_seq, bool color, std::FILE* out);

// The search list of a dlopen of `name` that failed.
void write_failed_load_scopes_text(const ScopeGraph& graph, const FailedLoadScopes& failed,
                                   std::string_view name, bool color, std::FILE* out);

}  // namespace dltrace::viewer

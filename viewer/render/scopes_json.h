// `dltrace scopes --json`: every search list (format "dltrace-scopes"), or with --for the scopes
// and search order of each object named (format "dltrace-scopes-for").
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "analysis/scope_graph.h"

namespace dltrace::viewer {

absl::Status write_scope_lists_json(const ScopeGraph& graph, std::FILE* out);

absl::Status write_object_scopes_json(const ScopeGraph& graph,
                                      const std::vector<const ObjectRecord*>& objects,
                                      std::optional<uint64_t> at_seq, std::FILE* out);

}  // namespace dltrace::viewer

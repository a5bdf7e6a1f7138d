// The symbol-scope graph as Graphviz DOT (`dltrace dot --graph scope`): one cluster per search
// list (each namespace's global scope, every dlopen group's local scope) with its objects in
// lookup order, and for every failure explain attributes to visibility (a symbol hidden in a
// local scope, another namespace, not exported) a red edge from the object that needed the
// symbol to the object that has it.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "analysis/explain.h"
#include "analysis/scope_graph.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

struct ScopeGraphOptions {
  bool all = false;   // draw system libraries one by one instead of one node per scope
  std::string focus;  // object name, soname or path: only the scopes that contain it
};

absl::StatusOr<std::string> scope_graph_dot(const TraceReader& reader,
                                            const ScopeGraphOptions& options);
// The same from an analysis already made (the HTML report shows the findings too).
absl::StatusOr<std::string> scope_graph_dot(const ScopeGraph& graph, const ExplainResult& findings,
                                            const ScopeGraphOptions& options);

}  // namespace dltrace::viewer

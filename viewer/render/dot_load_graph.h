// The load graph (model/load_graph.h) as Graphviz DOT (`dltrace dot --graph load`, and the
// HTML report's picture): objects as nodes, dlopen edges labelled with their flags (requested ->
// effective when an override changed them), DT_NEEDED edges dashed, failed dlopens as red nodes
// with the dlerror() text as tooltip. System libraries are folded into one node unless `all`;
// `focus` keeps only what touches one object.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "dltrace/reader.h"
#include "model/load_graph.h"

namespace dltrace::viewer {

struct LoadGraphOptions {
  bool all = false;   // draw system libraries (and the recorder) one by one
  std::string focus;  // object name, soname or path: only its ancestors and descendants
};

// The DOT text of the load graph. A `focus` that names no object is a usage error.
absl::StatusOr<std::string> load_graph_dot(const LoadGraph& graph, const LoadGraphOptions& options);
// The same, building the model of `reader` first.
absl::StatusOr<std::string> load_graph_dot(const TraceReader& reader,
                                           const LoadGraphOptions& options);

}  // namespace dltrace::viewer

// Lays out DOT text with the Graphviz library (the `dot` engine) and renders it as SVG, in
// process: the HTML report must not depend on a `dot` executable being installed.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace dltrace::viewer {

// Graphviz's layout time grows much faster than the graph: ~500 nodes take minutes.
inline constexpr int kMaxLayoutNodes = 200;

// The <svg ...>...</svg> element (no XML prolog or DOCTYPE), ready to inline into HTML. A graph
// with more than `max_nodes` nodes is not laid out (ResourceExhausted, saying how many it has).
absl::StatusOr<std::string> dot_to_svg(std::string_view dot, int max_nodes = kMaxLayoutNodes);

}  // namespace dltrace::viewer

// Lays out DOT text with the Graphviz library (the `dot` engine) and renders it as SVG, in
// process: the HTML report must not depend on a `dot` executable being installed.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace dltrace::viewer {

// The <svg ...>...</svg> element (no XML prolog or DOCTYPE), ready to inline into HTML.
absl::StatusOr<std::string> dot_to_svg(std::string_view dot);

}  // namespace dltrace::viewer

#include "render/dot_layout.h"

#include <fmt/format.h>
#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>

#include <memory>
#include <string>

#include "util/status.h"

namespace dltrace::viewer {

absl::StatusOr<std::string> dot_to_svg(std::string_view dot, int max_nodes) {
  // Graphviz prints warnings (e.g. about fonts) on stderr; only errors matter here.
  agseterr(AGERR);
  // One context for the process, never freed: Graphviz keeps a font cache across contexts that
  // gvFreeContext frees and the next context reads again (a use after free that ASan showed in
  // fuzz_viewer, since html lays out two graphs).
  static GVC_t* const context = gvContext();
  if (!context) return TraceError("cannot start the Graphviz library");
  const std::unique_ptr<GVC_t, void (*)(GVC_t*)> gvc(context, [](GVC_t*) {});
  const std::string text(dot);  // agmemread wants a NUL-terminated string
  std::unique_ptr<Agraph_t, int (*)(Agraph_t*)> graph(agmemread(text.c_str()), &agclose);
  if (!graph) return TraceError("Graphviz could not parse the generated graph");
  if (const int nodes = agnnodes(graph.get()); nodes > max_nodes) {
    return absl::ResourceExhaustedError(fmt::format(
        "the graph has {} nodes, too many to lay out here (at most {})", nodes, max_nodes));
  }
  if (gvLayout(gvc.get(), graph.get(), "dot") != 0) {
    return TraceError("Graphviz could not lay out the graph (is its dot plugin installed?)");
  }
  char* data = nullptr;
  unsigned int length = 0;
  const int rendered = gvRenderData(gvc.get(), graph.get(), "svg", &data, &length);
  std::string svg;
  if (rendered == 0 && data) svg.assign(data, length);
  if (data) gvFreeRenderData(data);
  gvFreeLayout(gvc.get(), graph.get());
  if (rendered != 0 || svg.empty()) return TraceError("Graphviz could not render SVG");
  const size_t start = svg.find("<svg");
  if (start == std::string::npos) return TraceError("Graphviz rendered no <svg> element");
  return svg.substr(start);
}

}  // namespace dltrace::viewer

// `dltrace dot --graph load` on a synthetic trace written with the real TraceWriter: nodes,
// dlopen/DT_NEEDED/failed edges, folding, --focus, escaping.
#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <regex>
#include <string>

#include "render/dot_load_graph.h"
#include "render/dot_text.h"
#include "viewer_graph_trace.h"

using namespace dltrace;
using test::has;

namespace {

// The node id whose label starts with <B>name</B>, or "".
std::string node_id(const std::string& dot, const std::string& name) {
  std::smatch m;
  const std::regex re("  (n[0-9]+) \\[label=<<B>" + name + "</B>");
  return std::regex_search(dot, m, re) ? m[1].str() : std::string();
}

}  // namespace

TEST_CASE("dot load graph: objects, dlopen and DT_NEEDED edges, failures", "[viewer][dot]") {
  test::GraphFixture fx;
  const std::string dot = fx.dot();
  INFO(dot);
  CHECK(dot.starts_with("digraph load {"));
  CHECK(dot.ends_with("}\n"));
  const std::string app = node_id(dot, "app"), core = node_id(dot, "libcore.so"),
                    plug = node_id(dot, "libplug.so"), deep = node_id(dot, "libdeep.so"),
                    helper = node_id(dot, "libhelper.so");
  REQUIRE(!app.empty());
  REQUIRE(!core.empty());
  REQUIRE(!plug.empty());
  REQUIRE(!deep.empty());
  REQUIRE(!helper.empty());
  // Paths under the names, small and grey.
  CHECK(has(dot,
            "<B>libplug.so</B><BR/><FONT POINT-SIZE=\"8\" "
            "COLOR=\"gray45\">/opt/app/plugins/libplug.so</FONT>"));
  CHECK(has(dot, app + " [label=<<B>app</B>"));
  // DT_NEEDED: dashed.
  CHECK(has(dot, app + " -> " + core + " [style=dashed"));
  CHECK(has(dot, plug + " -> " + helper + " [style=dashed"));
  // dlopen edges with flags; the override changes them and is marked.
  CHECK(has(dot, core + " -> " + plug +
                     " [label=\"RTLD_LAZY|RTLD_LOCAL → RTLD_LAZY|RTLD_GLOBAL (override)\", "
                     "color=darkorange"));
  CHECK(has(dot, plug + " -> " + deep + " [label=\"RTLD_NOW|RTLD_LOCAL\"];"));
  CHECK(has(dot, app + " -> " + plug + " [label=\"RTLD_NOW|RTLD_LOCAL\"];"));  // already loaded
  // The two failed dlopens: one red node, counted, the error (escaped) as tooltip.
  CHECK(has(dot, "✗ libnope&lt;x&gt;.so ×2"));
  CHECK(
      has(dot, "tooltip=\"libnope<x>.so: cannot open shared object file: \\\"No\\\" such file\""));
  CHECK(has(dot, "color=red, fontcolor=red, style=\"rounded,filled\""));
  // System libraries folded into one node; the recorder hidden.
  CHECK(has(dot, "system [label=\"3 system libraries\""));
  CHECK(has(dot, app + " -> system [style=dashed"));
  CHECK(has(dot, plug + " -> system [style=dashed"));
  CHECK_FALSE(has(dot, "libc.so.6"));
  CHECK_FALSE(has(dot, "libdltrace.so"));
}

TEST_CASE("dot load graph: --all and --focus", "[viewer][dot]") {
  test::GraphFixture fx;
  viewer::LoadGraphOptions all;
  all.all = true;
  const std::string full = fx.dot(all);
  INFO(full);
  CHECK_FALSE(has(full, "system librar"));
  CHECK(has(full, "<B>libc.so.6</B>"));
  CHECK(has(full, "<B>libm.so.6</B>"));
  CHECK(has(full, "dltrace recorder"));
  CHECK(has(full, node_id(full, "app") + " -> " + node_id(full, "libc.so.6") + " [style=dashed"));

  viewer::LoadGraphOptions focus;
  focus.focus = "libdeep.so";
  const std::string branch = fx.dot(focus);
  INFO(branch);
  for (const char* kept : {"libdeep.so", "libplug.so", "libcore.so", "app"}) {
    CHECK_FALSE(node_id(branch, kept).empty());
  }
  CHECK(node_id(branch, "libhelper.so").empty());  // libplug's, not on libdeep's path
  CHECK_FALSE(has(branch, "libnope"));
  CHECK_FALSE(has(branch, "system librar"));  // nothing of the system on the path
  CHECK(has(branch, "focus libdeep.so"));

  focus.focus = "/opt/app/libhelper.so";  // a path works too
  const std::string helper = fx.dot(focus);
  CHECK_FALSE(node_id(helper, "libhelper.so").empty());
  CHECK(node_id(helper, "libdeep.so").empty());

  focus.focus = "libnothing.so";
  auto missing = viewer::load_graph_dot(*fx.reader, focus);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("dot text escaping", "[viewer][dot]") {
  CHECK(viewer::dot_quoted("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(viewer::dot_html("<b>&\"") == "&lt;b&gt;&amp;&quot;");
  CHECK(viewer::dot_clean("ok\xff/x\n") == "ok\xEF\xBF\xBD/x");  // invalid byte, control char
  CHECK(viewer::dot_clean("é✗") == "é✗");
}

TEST_CASE("dot load graph of a damaged trace never fails", "[viewer][dot]") {
  const int opened = test::for_each_garbled_trace(11, [](const TraceReader& reader) {
    auto text = viewer::load_graph_dot(reader, {});
    REQUIRE(text.ok());
    CHECK(text->starts_with("digraph load {"));
  });
  CHECK(opened > 10);
}

// `dltrace html` on a synthetic trace: the load graph inline as SVG, the events embedded as
// JSON that cannot close its <script>, the placeholder sections, nothing fetched from a network.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "render/dot_layout.h"
#include "render/html_report.h"
#include "viewer_graph_trace.h"

using namespace dltrace;
using test::has;

TEST_CASE("html report: inline SVG graph, events as data, placeholders, no network",
          "[viewer][html]") {
  test::GraphFixture fx;
  const std::string html = test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::write_html_report(*fx.reader, {}, f).ok()); });
  REQUIRE(has(html, "<!DOCTYPE html>"));
  CHECK(has(html, "<svg"));
  CHECK(has(html, "libplug.so"));
  CHECK(has(html, "id=\"findings\""));
  CHECK(has(html, "id=\"scope-graph\""));
  CHECK_FALSE(has(html, "<script src"));
  CHECK_FALSE(has(html, "<link"));
  CHECK_FALSE(has(html, "url(http"));

  const std::string open = "<script type=\"application/json\" id=\"events-data\">";
  const size_t start = html.find(open);
  REQUIRE(start != std::string::npos);
  const size_t end = html.find("</script>", start);
  REQUIRE(end != std::string::npos);
  const std::string data = html.substr(start + open.size(), end - start - open.size());
  CHECK_FALSE(has(data, "<"));  // nothing in the data can close its <script>
  const auto rows = nlohmann::json::parse(data);
  REQUIRE(rows.size() == 5);
  CHECK(rows[0][0] == 1);
  CHECK(rows[0][3] == "dlopen");
  CHECK(rows[0][6].get<std::string>().find("libplug.so new: libplug.so libhelper.so libm.so.6") !=
        std::string::npos);
  CHECK(rows[1][4] == 1);  // libdeep's dlopen: nested, depth 1
  CHECK(rows[2][5] == "\"libnope<x>.so\", RTLD_NOW|RTLD_LOCAL");  // '<' back after parsing
  CHECK(rows[2][9] == 0);
  CHECK(has(rows[2][8].get<std::string>(), "cannot open shared object file"));
  CHECK(rows[4][9] == 1);
}

TEST_CASE("dot_to_svg lays out with the Graphviz library, up to a node limit", "[viewer][html]") {
  const std::string dot = "digraph g { a -> b; b -> c; a [label=\"libα.so\"]; }";
  auto svg = viewer::dot_to_svg(dot);
  REQUIRE(svg.ok());
  CHECK(svg->starts_with("<svg"));
  CHECK(has(*svg, "libα.so"));
  auto too_big = viewer::dot_to_svg(dot, 2);
  REQUIRE_FALSE(too_big.ok());
  CHECK(too_big.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(has(std::string(too_big.status().message()), "3 nodes"));
  CHECK_FALSE(viewer::dot_to_svg("digraph {").ok());  // a syntax error is an error, not a crash
}

TEST_CASE("html report: the explain findings first, then both graphs", "[viewer][html][explain]") {
  test::GraphFixture fx;
  const std::string html = test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::write_html_report(*fx.reader, {}, f).ok()); });
  const size_t findings = html.find("<section id=\"findings\">");
  const size_t load = html.find("<section id=\"load-graph\">");
  const size_t scope = html.find("<section id=\"scope-graph\">");
  REQUIRE(findings != std::string::npos);
  REQUIRE(load != std::string::npos);
  REQUIRE(scope != std::string::npos);
  CHECK(findings < load);
  CHECK(load < scope);
  // The failed dlopen of libnope<x>.so (an error text of no known shape) is a finding, escaped.
  const std::string section = html.substr(findings, load - findings);
  CHECK(has(section, "class=\"finding error\""));
  CHECK(has(section, "<code>load-failed</code>"));
  CHECK(has(section, "dlopen(&quot;libnope&lt;x&gt;.so&quot;, RTLD_NOW|RTLD_LOCAL) failed"));
  CHECK_FALSE(has(section, "placeholder"));
  CHECK_FALSE(has(section, "<pre class=\"rule\"></pre>"));
  // The scope graph is inline SVG too, with the global scope's cluster.
  const std::string scopes = html.substr(scope, html.find("<section id=\"events\"") - scope);
  CHECK(has(scopes, "<svg"));
  CHECK(has(scopes, "global scope, namespace 0"));
}

// scopes and explain on the synthetic viewer trace (whose files do not exist on this machine:
// the analysis must say so and fall back to what the trace recorded) and on garbled traces.
#include <catch2/catch.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "commands/explain_command.h"
#include "commands/scopes_command.h"
#include "viewer_test_trace.h"

using namespace dltrace;
using dltrace::test::has;
using dltrace::test::rendered_text;

namespace {

std::unique_ptr<TraceReader> viewer_trace(test::ScratchDir& dir) {
  const std::string path = dir.file("v.trace");
  REQUIRE(test::write_viewer_trace(path) == "");
  std::string error;
  auto reader = TraceReader::open(path, &error);
  REQUIRE(reader);
  return reader;
}

std::vector<std::string> member_names(const nlohmann::json& list) {
  std::vector<std::string> out;
  for (const auto& m : list["members"]) out.push_back(m["name"]);
  return out;
}

}  // namespace

TEST_CASE("scopes of the viewer trace: global scope growth and the dlopen group",
          "[viewer][scopes]") {
  test::ScratchDir dir;
  auto reader = viewer_trace(dir);
  viewer::ScopesOptions json;
  json.json = true;
  const auto j = nlohmann::json::parse(
      rendered_text([&](std::FILE* f) { CHECK(viewer::scopes_trace(*reader, json, f).ok()); }));
  REQUIRE(j["lists"].size() == 2);
  const auto& global = j["lists"][0];
  CHECK(global["kind"] == "global");
  // The files are not on this machine: DT_NEEDED comes from the trace, and that is said.
  CHECK(member_names(global) ==
        std::vector<std::string>{"host", "libc.so.6", "libplugin.so", "libdep.so"});
  CHECK(global["members"][2]["since_seq"] == 1);
  CHECK(global["members"][2]["reason"] == "dlopen #1 RTLD_GLOBAL");
  CHECK(global["gaps"].dump().find("taken from the trace") != std::string::npos);
  const auto& local = j["lists"][1];
  CHECK(local["kind"] == "local");
  CHECK(local["opened_by"] == 1);
  CHECK(member_names(local) == std::vector<std::string>{"libplugin.so", "libdep.so"});
  CHECK(local["members"][0]["unload_seq"] == 5);

  viewer::ScopesOptions for_dep;
  for_dep.for_object = "libdep.so";
  const std::string text =
      rendered_text([&](std::FILE* f) { CHECK(viewer::scopes_trace(*reader, for_dep, f).ok()); });
  CHECK(has(text, "libdep.so (/opt/plugins/libdep.so), at its load (#1):"));
  CHECK(has(text, " scope 0: global scope of namespace 0\n"));
  INFO(text);
  CHECK(has(text,
            " scope 1: local scope of dlopen #1 \"libplugin.so\" RTLD_NOW|RTLD_GLOBAL (requested "
            "RTLD_NOW|RTLD_LOCAL) from host\n"));
  CHECK(has(text,
            "libplugin.so joined the global scope of namespace 0 at #1 (dlopen #1 RTLD_GLOBAL)"));
}

TEST_CASE("explain on the viewer trace: the failed dlvsym, the override, missing files",
          "[viewer][explain]") {
  test::ScratchDir dir;
  auto reader = viewer_trace(dir);
  viewer::ExplainOptions json;
  json.json = true;
  size_t problems = 99;
  const auto j = nlohmann::json::parse(rendered_text([&](std::FILE* f) {
    auto r = viewer::explain_trace_to(*reader, json, f);
    REQUIRE(r.ok());
    problems = *r;
  }));
  CHECK(problems == 1);
  CHECK(j["problems"] == 1);
  const auto& findings = j["findings"];
  REQUIRE(findings.size() >= 3);
  // Errors first.
  CHECK(findings[0]["kind"] == "undefined-symbol");
  CHECK(findings[0]["seq"] == 4);
  CHECK(findings[0]["symbol"] == "missing");
  CHECK(findings[0]["version"] == "V1");
  bool override_seen = false, missing_file = false, from_dependency = false;
  for (const auto& f : findings) {
    if (f["kind"] == "override-applied") {
      override_seen = true;
      CHECK(f["line"] == "3");
      CHECK(f["config"] == "/etc/dl.toml");
    }
    if (f["kind"] == "file-missing" && f["object"] == "/opt/plugins/libplugin.so")
      missing_file = true;
    if (f["kind"] == "dlsym-from-dependency") {
      from_dependency = true;
      CHECK(f["symbol"] == "plugin_init");
      CHECK(f["defined_in"] == "/opt/plugins/libdep.so");
    }
    CHECK(f["severity"] != "");
  }
  CHECK(override_seen);
  CHECK(missing_file);
  CHECK(from_dependency);

  viewer::ExplainOptions text_options;
  const std::string text = rendered_text(
      [&](std::FILE* f) { CHECK(viewer::explain_trace_to(*reader, text_options, f).ok()); });
  CHECK(has(text, "1 problem (1 error, 0 warnings)"));
  CHECK(has(text,
            "error [undefined-symbol] #4: host needs missing@V1, which no loaded object defines"));
}

TEST_CASE("scopes and explain survive garbled traces", "[viewer][scopes][explain]") {
  const int opened = test::for_each_garbled_trace(777, [](const TraceReader& reader) {
    std::FILE* sink = std::tmpfile();
    REQUIRE(sink);
    viewer::ScopesOptions text, json, for_dep;
    json.json = true;
    for_dep.for_object = "libdep.so";
    CHECK(viewer::scopes_trace(reader, text, sink).ok());
    CHECK(viewer::scopes_trace(reader, json, sink).ok());
    (void)viewer::scopes_trace(reader, for_dep, sink);  // may not name the object any more
    viewer::ExplainOptions e, ej;
    ej.json = true;
    CHECK(viewer::explain_trace_to(reader, e, sink).ok());
    CHECK(viewer::explain_trace_to(reader, ej, sink).ok());
    std::fclose(sink);
  });
  CHECK(opened > 0);
}

// `dltrace export`: the spec's field names and values on a synthetic trace, json and jsonl.
#include <catch2/catch.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "render/json_export.h"
#include "viewer_test_trace.h"

using namespace dltrace;
using nlohmann::json;

namespace {

std::unique_ptr<TraceReader> viewer_trace(test::ScratchDir& dir) {
  const std::string path = dir.file("v.trace");
  REQUIRE(test::write_viewer_trace(path) == "");
  std::string error;
  auto reader = TraceReader::open(path, &error);
  INFO(error);
  REQUIRE(reader);
  return reader;
}

std::string export_text(const TraceReader& reader, viewer::JsonFlavor flavor) {
  viewer::JsonWriter w;  // in memory
  viewer::JsonExportOptions options;
  options.flavor = flavor;
  REQUIRE(viewer::write_json_export(reader, options, w).ok());
  return std::string(w.str());
}

const char* const kEventKeys[] = {"seq",
                                  "time_ns",
                                  "tid",
                                  "call",
                                  "duration_ns",
                                  "file",
                                  "namespace",
                                  "flags",
                                  "flags_text",
                                  "effective_flags",
                                  "effective_flags_text",
                                  "override",
                                  "handle",
                                  "object",
                                  "new_objects",
                                  "symbol",
                                  "version",
                                  "address",
                                  "ok",
                                  "error",
                                  "caller",
                                  "stack",
                                  "python_stack"};
const char* const kObjectKeys[] = {"id",        "path",      "soname",   "base",
                                   "build_id",  "namespace", "cause",    "parent",
                                   "opened_by", "global",    "load_seq", "unload_seq"};

}  // namespace

TEST_CASE("json export has the spec's fields and values", "[viewer][export]") {
  test::ScratchDir dir;
  auto reader = viewer_trace(dir);
  const json j = json::parse(export_text(*reader, viewer::JsonFlavor::kJson));

  CHECK(j["format"] == "dltrace-json");
  CHECK(j["version"] == 1);
  CHECK(j["dropped_events"] == 0);
  const json& p = j["process"];
  CHECK(p["exe"] == "/usr/bin/host");
  CHECK(p["argv"] == json::array({"host", "--x"}));
  CHECK(p["end"] == "exit");
  CHECK(p["exit_status"] == 0);
  CHECK(p["signal"].is_null());
  CHECK(p.contains("pid"));
  CHECK(p.contains("ppid"));

  const json& objects = j["objects"];
  REQUIRE(objects.size() == 4);
  for (const auto& o : objects) {
    for (const char* k : kObjectKeys) CHECK(o.contains(k));
  }
  CHECK(objects[0]["cause"] == "startup");
  CHECK(objects[0]["opened_by"].is_null());
  CHECK(objects[0]["global"] == true);
  CHECK(objects[0]["base"] == "0x400000");
  CHECK(objects[1]["cause"] == "needed");
  CHECK(objects[1]["soname"] == "libc.so.6");
  CHECK(objects[1]["parent"] == 0);
  const json& lib = objects[2];
  CHECK(lib["path"] == "/opt/plugins/libplugin.so");
  CHECK(lib["cause"] == "dlopen");
  CHECK(lib["parent"] == 0);
  CHECK(lib["opened_by"] == 1);
  CHECK(lib["load_seq"] == 1);
  CHECK(lib["unload_seq"] == 5);
  CHECK(lib["global"] == true);  // promoted at seq 3
  CHECK(lib["base"] == "0x7f0000000000");
  CHECK(objects[3]["soname"].is_null());
  CHECK(objects[3]["global"] == false);
  CHECK(objects[3]["parent"] == 2);

  const json& events = j["events"];
  REQUIRE(events.size() == 5);
  for (const auto& e : events) {
    for (const char* k : kEventKeys) CHECK(e.contains(k));
  }
  const json& open = events[0];
  CHECK(open["seq"] == 1);
  CHECK(open["call"] == "dlopen");
  CHECK(open["file"] == "libplugin.so");
  CHECK(open["flags"] == RTLD_NOW);
  CHECK(open["flags_text"] == "RTLD_NOW|RTLD_LOCAL");
  CHECK(open["effective_flags"] == (RTLD_NOW | RTLD_GLOBAL));
  CHECK(open["effective_flags_text"] == "RTLD_NOW|RTLD_GLOBAL");
  CHECK(open["override"]["config"] == "/etc/dl.toml");
  CHECK(open["override"]["line"] == 3);
  CHECK(open["handle"] == "0x5000");
  CHECK(open["object"] == 2);
  CHECK(open["new_objects"] == json::array({2, 3}));
  CHECK(open["symbol"].is_null());
  CHECK(open["address"].is_null());
  CHECK(open["ok"] == true);
  CHECK(open["error"].is_null());
  CHECK(open["time_ns"] == 1001);
  CHECK(open["duration_ns"] == 7);
  CHECK(open["caller"]["object"] == 0);
  CHECK(open["caller"]["offset"] == "0x1234");
  REQUIRE(open["stack"].size() == 3);
  CHECK(open["stack"][0]["ip"] == "0x401234");
  CHECK(open["stack"][0]["object"] == 0);
  CHECK(open["stack"][0]["offset"] == "0x1234");
  CHECK(open["stack"][1]["object"] == 1);
  CHECK(open["stack"][2]["object"].is_null());  // 0xdead is in no object
  CHECK(open["stack"][2]["offset"].is_null());
  REQUIRE(open["python_stack"].size() == 1);
  CHECK(open["python_stack"][0] ==
        json({{"file", "app.py"}, {"line", 3}, {"function", "<module>"}}));

  const json& nested = events[1];
  CHECK(nested["seq"] == 2);
  CHECK(nested["nested"] == true);
  CHECK(nested["parent_seq"] == 1);
  CHECK(nested["handle"].is_null());  // RTLD_DEFAULT is the NULL handle
  CHECK(nested["handle_name"] == "RTLD_DEFAULT");

  const json& sym = events[2];
  CHECK(sym["call"] == "dlsym");
  CHECK(sym["symbol"] == "plugin_init");
  CHECK(sym["handle"] == "0x5000");
  CHECK(sym["object"] == 3);
  CHECK(sym["address"] == "0x7f0000101234");
  CHECK(sym["file"].is_null());
  CHECK(sym["flags"].is_null());
  CHECK(sym["new_objects"].is_null());
  CHECK(sym["override"].is_null());
  CHECK(sym["stack"].is_null());
  CHECK(sym["caller"].is_null());

  const json& vsym = events[3];
  CHECK(vsym["call"] == "dlvsym");
  CHECK(vsym["version"] == "V1");
  CHECK(vsym["ok"] == false);
  CHECK(vsym["address"].is_null());
  CHECK(vsym["object"].is_null());
  CHECK(vsym["error"] == "/usr/bin/host: undefined symbol: missing, version V1");

  const json& close = events[4];
  CHECK(close["call"] == "dlclose");
  CHECK(close["handle"] == "0x5000");
  CHECK(close["object"] == 2);
  CHECK(close["unloaded"] == true);
  CHECK(close["result"] == 0);
}

TEST_CASE("jsonl export: a process line, then objects just before their first event",
          "[viewer][export]") {
  test::ScratchDir dir;
  auto reader = viewer_trace(dir);
  std::istringstream in(export_text(*reader, viewer::JsonFlavor::kJsonl));
  std::string line;
  std::vector<json> lines;
  while (std::getline(in, line)) lines.push_back(json::parse(line));
  REQUIRE(lines.size() == 1 + 4 + 5);
  CHECK(lines[0]["type"] == "process");
  CHECK(lines[0]["exe"] == "/usr/bin/host");
  CHECK(lines[0]["dropped_events"] == 0);
  uint64_t last_event_seq = 0;
  int objects = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const json& l = lines[i];
    if (l["type"] == "object") {
      ++objects;
      const uint64_t load = l["load_seq"];
      CHECK((last_event_seq < load || load == 0));
      // The next event line has seq >= load_seq.
      for (size_t k = i + 1; k < lines.size(); ++k) {
        if (lines[k]["type"] == "event") {
          CHECK(lines[k]["seq"].get<uint64_t>() >= load);
          break;
        }
      }
    } else {
      REQUIRE(l["type"] == "event");
      CHECK(l["seq"].get<uint64_t>() > last_event_seq);
      last_event_seq = l["seq"];
    }
  }
  CHECK(objects == 4);
}

TEST_CASE("json export of a process that did not end cleanly says unknown", "[viewer][export]") {
  test::ScratchDir dir;
  const std::string path = dir.file("k.trace");
  REQUIRE(test::write_viewer_trace(path, false) == "");
  std::string error;
  auto reader = TraceReader::open(path, &error);
  REQUIRE(reader);
  const json j = json::parse(export_text(*reader, viewer::JsonFlavor::kJson));
  CHECK(j["process"]["end"] == "unknown");
  CHECK(j["process"]["exit_status"].is_null());
  CHECK(j["process"]["signal"].is_null());
}

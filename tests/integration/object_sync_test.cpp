// The object table follows the loader through loads and unloads in any order: each object in the
// trace once per time it was loaded, with its cause, parent, the call that opened it, the event
// at which it appeared and the one at which it went, and the addresses the loader mapped it at.
// rt_object_sync (tests/fixtures/runtime) makes the calls; the numbers in its comment are the
// events' seqs.
#include <catch2/catch.hpp>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "harness.h"

using nlohmann::json;
using namespace dltrace::test;

namespace {

std::string basename_of(const json& o) {
  const std::string p = o["path"].get<std::string>();
  return p.substr(p.rfind('/') + 1);
}

bool has_flag(const json& o, const std::string& flag) {
  for (const auto& f : o["flags"])
    if (f == flag) return true;
  return false;
}

// The objects of `name` (basename) in namespace `ns`, in the order they were written.
std::vector<json> instances(const json& trace, const std::string& name, int ns = 0) {
  std::vector<json> out;
  for (const auto& o : trace["objects"])
    if (basename_of(o) == name && o["namespace"] == ns) out.push_back(o);
  return out;
}

// The program's "NAME base=0x.. start=0x.. end=0x.." lines for `name`, in order.
std::vector<std::map<std::string, std::string>> reported(const std::string& out,
                                                         const std::string& name) {
  std::vector<std::map<std::string, std::string>> lines;
  const std::regex line("^" + std::regex_replace(name, std::regex(R"(\.)"), R"(\.)") +
                        R"( base=(0x[0-9a-f]+) start=(0x[0-9a-f]+) end=(0x[0-9a-f]+)$)");
  std::smatch m;
  std::string::size_type from = 0;
  while (from < out.size()) {
    const auto to = out.find('\n', from);
    const std::string l = out.substr(from, to == std::string::npos ? std::string::npos : to - from);
    if (std::regex_match(l, m, line))
      lines.push_back({{"base", m[1]}, {"map_start", m[2]}, {"map_end", m[3]}});
    if (to == std::string::npos) break;
    from = to + 1;
  }
  return lines;
}

// What the trace says of an object's mapping is what the loader reported.
void check_mapping(const json& o, const std::map<std::string, std::string>& loader) {
  INFO(o.dump());
  for (const char* key : {"base", "map_start", "map_end"}) CHECK(o[key] == loader.at(key));
  CHECK(o["soname"] == basename_of(o));
  CHECK(o["build_id"].is_string());
}

// Runs rt_object_sync (with `arg`, if any) traced and checks the calls it makes.
json record(const std::string& dir, const std::vector<std::string>& extra, const std::string& depth,
            std::string* out) {
  std::vector<std::string> argv{fixture("rt_object_sync")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  RunOptions opts;
  opts.env["DLTRACE_STACK_DEPTH"] = depth;
  ProcessResult r = run_traced(argv, dir + "/t.trace", opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  *out = r.out;
  json t = export_json(dir + "/t.trace");
  std::vector<std::string> calls;
  for (const auto& e : t["events"]) calls.push_back(e["call"]);
  std::vector<std::string> expected{"dlopen",  "dlopen", "dlopen",  "dlclose", "dlsym",
                                    "dlclose", "dlopen", "dlclose", "dlclose"};
  if (extra == std::vector<std::string>{"dlmopen"})
    expected.insert(expected.end(), {"dlmopen", "dlopen", "dlclose", "dlclose"});
  if (extra == std::vector<std::string>{"nested"})
    expected = {"dlopen", "dlopen", "dlclose", "dlsym", "dlclose"};
  REQUIRE(calls == expected);
  for (std::size_t i = 0; i < calls.size(); ++i) REQUIRE(t["events"][i]["seq"] == i + 1);
  return t;
}

}  // namespace

TEST_CASE("object sync: loads and unloads in any order, objects loaded with no traced call",
          "[runtime][objects]") {
  settle_fixtures();
  for (const std::string depth : {"0", "32"}) {
    INFO("DLTRACE_STACK_DEPTH=" << depth);
    std::string out;
    const json t = record(temp_dir("objsync"), {}, depth, &out);
    INFO(out);

    // 1 and 7: librt_sync_top.so and its dependency, twice, each time unloaded together (4, 8)
    // by a dlclose that says it unloaded.
    const auto top = instances(t, "librt_sync_top.so");
    const auto dep = instances(t, "librt_sync_dep.so");
    REQUIRE(top.size() == 2);
    REQUIRE(dep.size() == 2);
    const auto top_at = reported(out, "librt_sync_top.so");
    const auto dep_at = reported(out, "librt_sync_dep.so");
    REQUIRE(top_at.size() == 2);
    REQUIRE(dep_at.size() == 2);
    const int opened[] = {1, 7}, closed[] = {4, 8};
    for (int i = 0; i < 2; ++i) {
      INFO("load " << i + 1);
      CHECK(top[i]["cause"] == "dlopen");
      CHECK(top[i]["opened_by"] == opened[i]);
      CHECK(top[i]["load_seq"] == opened[i]);
      CHECK(top[i]["unload_seq"] == closed[i]);
      CHECK(dep[i]["cause"] == "needed");
      CHECK(dep[i]["parent"] == top[i]["id"]);
      CHECK(dep[i]["load_seq"] == opened[i]);
      CHECK(dep[i]["unload_seq"] == closed[i]);
      check_mapping(top[i], top_at[i]);
      check_mapping(dep[i], dep_at[i]);
      CHECK(t["events"][closed[i] - 1]["unloaded"] == true);
      CHECK(t["events"][closed[i] - 1]["handle_object"] == top[i]["id"]);
      CHECK(t["events"][opened[i] - 1]["object"] == top[i]["id"]);
      CHECK(t["events"][opened[i] - 1]["new_objects"] == json::array({top[i]["id"], dep[i]["id"]}));
    }

    // 2, 5, 6: the plugin stays known after objects loaded before it went (4): the dlsym is
    // attributed to it, and its dlclose unloads it.
    const auto plugin = instances(t, "librt_plugin.so");
    REQUIRE(plugin.size() == 1);
    CHECK(plugin[0]["opened_by"] == 2);
    CHECK(plugin[0]["unload_seq"] == 6);
    check_mapping(plugin[0], reported(out, "librt_plugin.so").at(0));
    const json& lookup = t["events"][4];
    CHECK(lookup["object"] == plugin[0]["id"]);
    CHECK(lookup["handle_object"] == plugin[0]["id"]);
    CHECK(t["events"][5]["unloaded"] == true);

    // 3: librt_sync_iconv.so, and the gconv modules libc loaded in its constructor with no
    // traced call: found by that dlopen, as loaded without a call of their own.
    const auto with_iconv = instances(t, "librt_sync_iconv.so");
    REQUIRE(with_iconv.size() == 1);
    CHECK(with_iconv[0]["opened_by"] == 3);
    CHECK(with_iconv[0]["unload_seq"] == 9);
    check_mapping(with_iconv[0], reported(out, "librt_sync_iconv.so").at(0));
    for (const char* module : {"ISO8859-15.so", "UTF-16.so"}) {
      INFO(module);
      const auto m = instances(t, module);
      REQUIRE(m.size() == 1);
      CHECK(has_flag(m[0], "discovered"));
      CHECK(m[0]["load_seq"] == 3);
      CHECK(m[0]["opened_by"].is_null());
      CHECK(m[0]["unload_seq"].is_null());  // libc keeps its modules
    }
    // Between 5 and 6 the program's own iconv_open loaded IBM850.so: the dlclose 6 finds it
    // (while it finds the plugin gone).
    const auto ibm = instances(t, "IBM850.so");
    REQUIRE(ibm.size() == 1);
    CHECK(has_flag(ibm[0], "discovered"));
    CHECK(ibm[0]["load_seq"] == 6);
    CHECK(ibm[0]["unload_seq"].is_null());
  }
}

TEST_CASE("object sync: loads and unloads in namespace 0 while another namespace is in use",
          "[runtime][objects]") {
  settle_fixtures();
  std::string out;
  const json t = record(temp_dir("objsync-ns"), {"dlmopen"}, "0", &out);
  INFO(out);
  // 10 and 12: librt_sync_top.so and its dependency in the new namespace.
  const auto top = instances(t, "librt_sync_top.so", 1);
  const auto dep = instances(t, "librt_sync_dep.so", 1);
  REQUIRE(top.size() == 1);
  REQUIRE(dep.size() == 1);
  CHECK(top[0]["opened_by"] == 10);
  CHECK(top[0]["unload_seq"] == 12);
  CHECK(dep[0]["parent"] == top[0]["id"]);
  CHECK(dep[0]["unload_seq"] == 12);
  CHECK(t["events"][11]["unloaded"] == true);
  // 11 and 13: the plugin in namespace 0, loaded and unloaded meanwhile.
  const auto plugin = instances(t, "librt_plugin.so");
  REQUIRE(plugin.size() == 2);
  CHECK(plugin[1]["opened_by"] == 11);
  CHECK(plugin[1]["unload_seq"] == 13);
  check_mapping(plugin[1], reported(out, "librt_plugin.so").at(1));
  CHECK(t["events"][12]["unloaded"] == true);
}

TEST_CASE(
    "object sync: what a constructor has libc load before a nested dlclose belongs to the "
    "dlopen running it",
    "[runtime][objects]") {
  settle_fixtures();
  std::string out;
  const json t = record(temp_dir("objsync-nested"), {"nested"}, "0", &out);
  INFO(out);
  // 1 loads librt_sync_ctor.so, whose constructor makes 2 and 3 (and libc load UTF-7.so between
  // them): the dlclose 3 finds the module, inside the dlopen 1, which it is counted to.
  const auto with_ctor = instances(t, "librt_sync_ctor.so");
  const auto plugin = instances(t, "librt_plugin.so");
  REQUIRE(with_ctor.size() == 1);
  REQUIRE(plugin.size() == 1);
  CHECK(with_ctor[0]["opened_by"] == 1);
  CHECK(with_ctor[0]["unload_seq"] == 5);
  CHECK(plugin[0]["opened_by"] == 2);
  CHECK(plugin[0]["parent"] == with_ctor[0]["id"]);
  CHECK(plugin[0]["unload_seq"] == 3);
  CHECK(t["events"][2]["nested"] == true);
  CHECK(t["events"][2]["unloaded"] == true);
  const auto module = instances(t, "UTF-7.so");
  REQUIRE(module.size() == 1);
  CHECK(module[0]["load_seq"] == 1);
  CHECK(module[0]["unload_seq"].is_null());
}

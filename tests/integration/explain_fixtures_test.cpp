// The real failing situations behind `dltrace explain` (tests/fixtures/explain/CMakeLists.txt
// lists them with their commands and texts). Each runs without and with the preload: both runs
// must print the same text and exit the same way (recording does not change the failure), and the
// trace must hold the event with the exact dlerror text the program saw.
#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string ex(const std::string& name) {
  return fixtures_dir() + "/explain/" + name;
}
std::string ov_host() {
  return fixtures_dir() + "/overrides/ov_host";
}

// Runs argv untraced and traced (run_differential retries once on a transient difference) and
// checks that both runs behave identically.
DifferentialResult run_both(const std::vector<std::string>& argv, RunOptions opts = {}) {
  DifferentialResult d = run_differential(argv, opts);
  INFO("plain:  " << describe(d.plain));
  INFO("traced: " << describe(d.traced));
  CHECK(d.plain.signal == 0);
  CHECK(d.traced.signal == d.plain.signal);
  CHECK(d.traced.exit_code == d.plain.exit_code);
  CHECK(d.traced.out == d.plain.out);
  CHECK(d.traced.err == d.plain.err);
  return d;
}

// The exported trace, after checking it recorded the exit status the program returned.
json traced_export(const DifferentialResult& d) {
  json t = export_json(d.trace_path);
  CHECK(t["process"]["end"] == "exit");
  CHECK(t["process"]["exit_status"] == d.plain.exit_code);
  return t;
}

// Events of `call` whose string field `key` is exactly `value`, in order.
std::vector<json> events(const json& trace, const std::string& call, const std::string& key,
                         const std::string& value) {
  std::vector<json> out;
  for (const auto& e : trace["events"]) {
    if (e.value("call", "") != call) continue;
    if (e.contains(key) && e[key].is_string() && e[key].get<std::string>() == value)
      out.push_back(e);
  }
  return out;
}

// The single dlopen event for `file`, which must have failed with exactly `error`.
void check_failed_open(const json& trace, const std::string& file, const std::string& error) {
  auto opens = events(trace, "dlopen", "file", file);
  INFO("dlopen " << file);
  REQUIRE(opens.size() == 1);
  INFO("event: " << opens[0].dump());
  CHECK(opens[0]["ok"] == false);
  CHECK(opens[0]["error"] == error);
  CHECK(opens[0]["handle"].is_null());
}

// The single dlopen event for `file`, which must have succeeded.
void check_ok_open(const json& trace, const std::string& file) {
  auto opens = events(trace, "dlopen", "file", file);
  INFO("dlopen " << file);
  REQUIRE(opens.size() == 1);
  INFO("event: " << opens[0].dump());
  CHECK(opens[0]["ok"] == true);
  CHECK(opens[0]["error"].is_null());
}

int object_id(const json& trace, const std::string& path_suffix) {
  const json* o = find_object(trace, path_suffix);
  INFO("object " << path_suffix);
  REQUIRE(o != nullptr);
  return (*o)["id"].get<int>();
}

bool have_lua() {
  if (fs::exists(ex("ex_lua_host"))) return true;
  WARN("no " << ex("ex_lua_host")
             << " (liblua5.4.a missing? scripts/install-deps.sh installs "
                "liblua5.4-dev); skipped");
  return false;
}

RunOptions lua_options() {
  RunOptions opts;
  opts.unset = {"LUA_CPATH",    "LUA_CPATH_5_4", "LUA_PATH",
                "LUA_PATH_5_4", "LUA_INIT",      "LUA_INIT_5_4"};
  return opts;
}

}  // namespace

TEST_CASE("explain fixtures: a C module in a static Lua host without --export-dynamic",
          "[explain-fixtures]") {
  if (!have_lua()) return;
  const std::string mod = ex("luamod.so");
  const std::string error = mod + ": undefined symbol: luaL_checkversion_";

  SECTION("ex_lua_host: require fails with the module's undefined lua API symbol") {
    DifferentialResult d = run_both({ex("ex_lua_host"), ex("luamod_test.lua")}, lua_options());
    INFO("plain: " << describe(d.plain));
    CHECK(d.plain.exit_code == 1);
    CHECK(d.plain.out ==
          "lua error: error loading module 'luamod' from file '" + mod + "':\n\t" + error + "\n");
    CHECK(d.plain.err.empty());
    json t = traced_export(d);
    check_failed_open(t, mod, error);
    auto opens = events(t, "dlopen", "file", mod);
    REQUIRE(opens.size() == 1);
    CHECK(opens[0]["flags"] == RTLD_NOW);  // Lua's own dlopen: RTLD_NOW | RTLD_LOCAL
  }
  SECTION("ex_lua_host_exported: the same script works") {
    DifferentialResult d =
        run_both({ex("ex_lua_host_exported"), ex("luamod_test.lua")}, lua_options());
    INFO("plain: " << describe(d.plain));
    CHECK(d.plain.exit_code == 0);
    CHECK(d.plain.out == "luamod.add(2, 3) = 5\n");
    CHECK(d.plain.err.empty());
    json t = traced_export(d);
    check_ok_open(t, mod);
    auto syms = events(t, "dlsym", "symbol", "luaopen_luamod");
    REQUIRE(syms.size() == 1);
    CHECK(syms[0]["ok"] == true);
    CHECK(syms[0]["object"] == object_id(t, "luamod.so"));
  }
}

TEST_CASE("explain fixtures: library not found, with a candidate in explain/plugins/",
          "[explain-fixtures]") {
  const std::string error =
      "libex_hidden.so: cannot open shared object file: No such file or "
      "directory";
  DifferentialResult d = run_both({ov_host(), "open:libex_hidden.so:NOW"});
  INFO("plain: " << describe(d.plain));
  CHECK(d.plain.exit_code == 0);
  CHECK(d.plain.out == "open libex_hidden.so: null: " + error + "\n");
  json t = traced_export(d);
  check_failed_open(t, "libex_hidden.so", error);
  CHECK(find_object(t, "libex_hidden.so") == nullptr);

  // The candidate itself is fine: opened by its path it loads.
  const std::string candidate = ex("plugins/libex_hidden.so");
  DifferentialResult ok =
      run_both({ov_host(), "open:" + candidate + ":NOW", "int:" + candidate + ":hidden_value"});
  CHECK(ok.plain.out == "open " + candidate + ": ok\nint hidden_value = 7\n");
  json t2 = traced_export(ok);
  check_ok_open(t2, candidate);
}

TEST_CASE("explain fixtures: version EXVER_2.0 not found in the old libex_ver.so already loaded",
          "[explain-fixtures]") {
  const std::string old_ver = ex("old/libex_ver.so");
  const std::string needs = ex("libex_needs_ver.so");
  const std::string error = old_ver + ": version `EXVER_2.0' not found (required by " + needs + ")";
  DifferentialResult d =
      run_both({ov_host(), "open:" + old_ver + ":NOW", "open:" + needs + ":NOW"});
  INFO("plain: " << describe(d.plain));
  CHECK(d.plain.exit_code == 0);
  CHECK(d.plain.out == "open " + old_ver + ": ok\nopen " + needs + ": null: " + error + "\n");
  json t = traced_export(d);
  check_ok_open(t, old_ver);
  check_failed_open(t, needs, error);
  const json* loaded = find_object(t, "old/libex_ver.so");
  REQUIRE(loaded != nullptr);
  CHECK((*loaded)["soname"] == "libex_ver.so");
  CHECK(find_object(t, "new/libex_ver.so") == nullptr);

  // With the new copy loaded first the same dlopen works (what the fix looks like).
  const std::string new_ver = ex("new/libex_ver.so");
  DifferentialResult fixed =
      run_both({ov_host(), "open:" + new_ver + ":NOW", "open:" + needs + ":NOW",
                "int:" + needs + ":needs_ver_value"});
  CHECK(fixed.plain.out ==
        "open " + new_ver + ": ok\nopen " + needs + ": ok\nint needs_ver_value = 42\n");
}

TEST_CASE("explain fixtures: the same soname loaded twice from two files", "[explain-fixtures]") {
  const std::string dup1 = ex("dup1/libex_dup.so");
  const std::string dup2 = ex("dup2/libex_dup.so");
  DifferentialResult d = run_both({ov_host(), "open:" + dup1 + ":NOW", "open:" + dup2 + ":NOW",
                                   "int:" + dup1 + ":dup_value", "int:" + dup2 + ":dup_value"});
  INFO("plain: " << describe(d.plain));
  CHECK(d.plain.exit_code == 0);
  CHECK(d.plain.out ==
        "open " + dup1 + ": ok\nopen " + dup2 + ": ok\nint dup_value = 1\nint dup_value = 2\n");
  json t = traced_export(d);
  check_ok_open(t, dup1);
  check_ok_open(t, dup2);
  const json* o1 = find_object(t, "dup1/libex_dup.so");
  const json* o2 = find_object(t, "dup2/libex_dup.so");
  REQUIRE(o1 != nullptr);
  REQUIRE(o2 != nullptr);
  CHECK((*o1)["id"] != (*o2)["id"]);
  CHECK((*o1)["soname"] == "libex_dup.so");
  CHECK((*o2)["soname"] == "libex_dup.so");
  CHECK((*o1)["unload_seq"].is_null());
  CHECK((*o2)["unload_seq"].is_null());
}

TEST_CASE("explain fixtures: two global libraries defining twin_value()", "[explain-fixtures]") {
  const std::string a = ex("libex_twin_a.so");
  const std::string b = ex("libex_twin_b.so");
  DifferentialResult d =
      run_both({ov_host(), "open:" + a + ":NOW|GLOBAL", "open:" + b + ":NOW|GLOBAL",
                "int:" + a + ":twin_value", "int:" + b + ":twin_value", "int:" + a + ":twin_a_sees",
                "int:" + b + ":twin_b_sees", "global:twin_value"});
  INFO("plain: " << describe(d.plain));
  CHECK(d.plain.exit_code == 0);
  // dlsym by handle finds each library's own definition; libex_twin_b.so's own call binds to
  // libex_twin_a.so's, the first one in the global scope.
  CHECK(d.plain.out == "open " + a + ": ok\nopen " + b +
                           ": ok\nint twin_value = 1\nint twin_value = 2\nint twin_a_sees = 1\n"
                           "int twin_b_sees = 1\nglobal twin_value: found\n");
  json t = traced_export(d);
  check_ok_open(t, a);
  check_ok_open(t, b);
  int ida = object_id(t, "libex_twin_a.so");
  int idb = object_id(t, "libex_twin_b.so");
  CHECK(find_object(t, "libex_twin_a.so")->at("global") == true);
  CHECK(find_object(t, "libex_twin_b.so")->at("global") == true);
  auto syms = events(t, "dlsym", "symbol", "twin_value");
  REQUIRE(syms.size() == 3);
  CHECK(syms[0]["object"] == ida);
  CHECK(syms[1]["object"] == idb);
  CHECK(syms[2]["handle_name"] == "RTLD_DEFAULT");
  CHECK(syms[2]["object"] == ida);
}

TEST_CASE("explain fixtures: dlsym(RTLD_DEFAULT) from a library finds the host's definition",
          "[explain-fixtures]") {
  const std::string lib = ex("libex_interp.so");
  DifferentialResult d = run_both({ov_host(), "open:" + lib + ":NOW",
                                   "str:" + lib + ":interp_lookup", "str:" + lib + ":which_impl"});
  INFO("plain: " << describe(d.plain));
  CHECK(d.plain.exit_code == 0);
  CHECK(d.plain.out == "open " + lib + ": ok\nstr interp_lookup = host\nstr which_impl = interp\n");
  json t = traced_export(d);
  check_ok_open(t, lib);
  int host_id = object_id(t, "ov_host");
  int lib_id = object_id(t, "libex_interp.so");
  auto syms = events(t, "dlsym", "symbol", "which_impl");
  REQUIRE(syms.size() == 2);
  INFO("events: " << syms[0].dump() << "\n" << syms[1].dump());
  // libex_interp.so's own dlsym(RTLD_DEFAULT): defined by ov_host.
  CHECK(syms[0]["handle_name"] == "RTLD_DEFAULT");
  CHECK(syms[0]["ok"] == true);
  CHECK(syms[0]["object"] == host_id);
  CHECK(syms[0]["caller"]["object"] == lib_id);
  // ov_host's dlsym(handle): the library's own.
  CHECK(syms[1]["object"] == lib_id);
  CHECK(syms[1]["caller"]["object"] == host_id);
}

TEST_CASE("explain fixtures: RTLD_DEEPBIND (overrides/libdeep.so)", "[explain-fixtures]") {
  DifferentialResult deep =
      run_both({ov_host(), "open:libdeep.so:NOW|DEEPBIND", "str:libdeep.so:deep_which"});
  CHECK(deep.plain.exit_code == 0);
  CHECK(deep.plain.out == "open libdeep.so: ok\nstr deep_which = deep\n");
  json t = traced_export(deep);
  check_ok_open(t, "libdeep.so");
  auto opens = events(t, "dlopen", "file", "libdeep.so");
  REQUIRE(opens.size() == 1);
  CHECK(opens[0]["flags"] == (RTLD_NOW | RTLD_DEEPBIND));

  DifferentialResult plain =
      run_both({ov_host(), "open:libdeep.so:NOW", "str:libdeep.so:deep_which"});
  CHECK(plain.plain.out == "open libdeep.so: ok\nstr deep_which = host\n");
}

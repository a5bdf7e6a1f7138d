// `dltrace explain` on the real failing situations (fixtures/explain, fixtures/overrides,
// fixtures/embedded_python): each class of finding names the right objects, the evidence and
// the fix; for the RTLD_LOCAL class, the override rule explain prints makes the program work.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

namespace {

std::string ex(const std::string& name) {
  return fixtures_dir() + "/explain/" + name;
}
std::string ov_host() {
  return fixtures_dir() + "/overrides/ov_host";
}

struct Explained {
  ProcessResult program;
  std::string trace;
  ProcessResult text;
  nlohmann::json json;
};

Explained explain_run(const std::vector<std::string>& argv, RunOptions opts = {}) {
  settle_fixtures();
  Explained e;
  e.trace = temp_dir("explain") + "/run.trace";
  e.program = run_traced(argv, e.trace, opts);
  e.text = run({viewer_path(), "explain", "--color=never", e.trace});
  ProcessResult j = run({viewer_path(), "explain", "--json", e.trace});
  INFO("explain --json: " << describe(j));
  REQUIRE(j.exit_code == e.text.exit_code);
  e.json = nlohmann::json::parse(j.out, nullptr, false);
  REQUIRE_FALSE(e.json.is_discarded());
  CHECK(e.json["format"] == "dltrace-explain");
  return e;
}

// The first finding of `kind`, or null json.
nlohmann::json finding(const Explained& e, const std::string& kind) {
  for (const auto& f : e.json["findings"])
    if (f["kind"] == kind) return f;
  return nullptr;
}

bool mentions(const nlohmann::json& f, const std::string& needle) {
  return f.dump().find(needle) != std::string::npos;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string fix_config(const nlohmann::json& f) {
  for (const auto& fix : f["fixes"])
    if (fix["config"].is_string()) return fix["config"];
  return {};
}

}  // namespace

TEST_CASE("explain: a symbol hidden by RTLD_LOCAL, and its override fix works", "[explain]") {
  // libembed.so links libapi.so and is opened RTLD_LOCAL; libplugin.so needs api_value.
  Explained e = explain_run({ov_host(), "open:libembed.so:NOW|LOCAL", "open:libplugin.so:NOW",
                             "int:libplugin.so:plugin_value"});
  INFO(e.text.out);
  CHECK(e.text.exit_code == 1);
  auto f = finding(e, "undefined-symbol-local-scope");
  REQUIRE(f.is_object());
  CHECK(f["severity"] == "error");
  CHECK(f["symbol"] == "api_value");
  CHECK(contains(f["needed_by"], "libplugin.so"));
  CHECK(contains(f["defined_in"], "/libapi.so"));
  CHECK(contains(f["scope_root"], "/libembed.so"));
  CHECK(f["opened_by"] == "1");
  CHECK(mentions(f, "dlopen(\\\"libembed.so\\\", RTLD_NOW|RTLD_GLOBAL)"));
  CHECK(mentions(f, "host.c:"));  // the call site, symbolized
  CHECK(contains(e.text.out, "match = \"libembed.so\""));

  // Feed the suggested rule back: the same program now loads the plugin and calls it.
  std::string config = fix_config(f);
  REQUIRE(!config.empty());
  std::string dir = temp_dir("explain-fix");
  std::ofstream(dir + "/dltrace.toml") << config;
  RunOptions opts;
  opts.env["DLTRACE_CONFIG"] = dir + "/dltrace.toml";
  ProcessResult fixed = run_traced({ov_host(), "open:libembed.so:NOW|LOCAL",
                                    "open:libplugin.so:NOW", "int:libplugin.so:plugin_value"},
                                   dir + "/fixed.trace", opts);
  INFO(describe(fixed));
  CHECK(contains(e.program.out, "open libplugin.so: null"));
  CHECK(contains(fixed.out, "open libplugin.so: ok"));
  // And explain now reports the override in effect, and no problem.
  ProcessResult after = run({viewer_path(), "explain", "--color=never", dir + "/fixed.trace"});
  INFO(after.out);
  CHECK(after.exit_code == 0);
  CHECK(contains(after.out, "[override-applied]"));
  CHECK(contains(after.out, "RTLD_NOW|RTLD_GLOBAL instead of RTLD_NOW|RTLD_LOCAL"));
}

TEST_CASE("explain: embedded Python, libpython in a local scope, fixed by the printed rule",
          "[explain][python]") {
  std::string host = fixture("embedded_python/embedpy_host");
  if (access(host.c_str(), X_OK) != 0 || access("/usr/bin/python3", X_OK) != 0) {
    WARN("no embedded_python fixture or /usr/bin/python3; skipped");
    return;
  }
  const std::string code = "import _json; print('ok')";
  Explained e = explain_run({host, code});
  INFO(e.program.out << e.text.out);
  CHECK(e.text.exit_code == 1);
  auto f = finding(e, "undefined-symbol-local-scope");
  REQUIRE(f.is_object());
  CHECK(contains(f["symbol"], "Py"));
  CHECK(contains(f["needed_by"], "_json"));
  CHECK(contains(f["defined_in"], "libpython3"));
  CHECK(contains(f["scope_root"], "libembedpy.so"));
  CHECK(mentions(f, "embedded-interpreter situation"));

  std::string dir = temp_dir("explain-py");
  std::ofstream(dir + "/dltrace.toml") << fix_config(f);
  RunOptions opts;
  opts.env["DLTRACE_CONFIG"] = dir + "/dltrace.toml";
  ProcessResult fixed = run_traced({host, code}, dir + "/fixed.trace", opts);
  INFO(describe(fixed));
  CHECK(fixed.exit_code == 0);
  CHECK(contains(fixed.out, "ok"));
}

TEST_CASE("explain: a symbol the executable defines but does not export (static Lua)",
          "[explain]") {
  if (access(ex("ex_lua_host").c_str(), X_OK) != 0) {
    WARN("no static Lua fixture (liblua5.4-dev missing?); skipped");
    return;
  }
  Explained e = explain_run({ex("ex_lua_host"), ex("luamod_test.lua")});
  INFO(e.program.out << e.program.err << e.text.out);
  CHECK(e.program.exit_code == 1);
  CHECK(e.text.exit_code == 1);
  auto f = finding(e, "symbol-not-exported");
  REQUIRE(f.is_object());
  CHECK(contains(f["symbol"], "lua"));
  CHECK(contains(f["needed_by"], "luamod.so"));
  CHECK(contains(f["defined_in"], "ex_lua_host"));
  CHECK(mentions(f, "-Wl,--export-dynamic"));
  CHECK(mentions(f, "--dynamic-list"));
  CHECK(mentions(f, ".symtab"));
  // The host built with the suggested flag runs the same script.
  ProcessResult fixed = run({ex("ex_lua_host_exported"), ex("luamod_test.lua")});
  CHECK(fixed.exit_code == 0);
}

TEST_CASE("explain: library not found lists the search in order and the copy elsewhere",
          "[explain]") {
  RunOptions opts;
  opts.cwd = fixtures_dir() + "/explain";
  opts.env["LD_LIBRARY_PATH"] = "/nonexistent-dltrace-dir";
  Explained e = explain_run({ov_host(), "open:libex_hidden.so:NOW"}, opts);
  INFO(e.text.out);
  CHECK(e.text.exit_code == 1);
  auto f = finding(e, "library-not-found");
  REQUIRE(f.is_object());
  CHECK(f["library"] == "libex_hidden.so");
  CHECK(contains(f["candidate"], "explain/plugins/libex_hidden.so"));
  const std::string& out = e.text.out;
  size_t llp = out.find("/nonexistent-dltrace-dir/libex_hidden.so  (LD_LIBRARY_PATH)");
  size_t runpath = out.find("overrides/libex_hidden.so  (DT_RUNPATH of ov_host)");
  size_t cache = out.find("/etc/ld.so.cache");
  size_t defaults = out.find("/usr/lib/x86_64-linux-gnu/libex_hidden.so  (default directory)");
  CHECK(llp != std::string::npos);
  CHECK(runpath != std::string::npos);
  CHECK(cache != std::string::npos);
  CHECK(defaults != std::string::npos);
  CHECK(llp < runpath);  // LD_LIBRARY_PATH comes before DT_RUNPATH
  CHECK(runpath < cache);
  CHECK(cache < defaults);
  CHECK(contains(out, "LD_LIBRARY_PATH=" + fixtures_dir() + "/explain/plugins"));
}

TEST_CASE("explain: version not found names the loaded copy and the one that has it", "[explain]") {
  RunOptions opts;
  opts.cwd = fixtures_dir() + "/explain";
  Explained e = explain_run({ov_host(), "open:" + ex("old/libex_ver.so") + ":NOW",
                             "open:" + ex("libex_needs_ver.so") + ":NOW"},
                            opts);
  INFO(e.text.out);
  CHECK(e.text.exit_code == 1);
  auto f = finding(e, "version-not-found");
  REQUIRE(f.is_object());
  CHECK(f["version"] == "EXVER_2.0");
  CHECK(contains(f["provider"], "old/libex_ver.so"));
  CHECK(contains(f["needed_by"], "libex_needs_ver.so"));
  CHECK(contains(f["candidate"], "new/libex_ver.so"));
  CHECK(mentions(f, "that copy was loaded at #1 by #1: dlopen("));
  CHECK(mentions(f, "that copy defines: EXVER_1.0"));
}

TEST_CASE("explain: one library loaded twice, one symbol defined twice in a scope", "[explain]") {
  Explained twice = explain_run({ov_host(), "open:" + ex("dup1/libex_dup.so") + ":NOW",
                                 "open:" + ex("dup2/libex_dup.so") + ":NOW"});
  INFO(twice.text.out);
  CHECK(twice.text.exit_code == 1);
  auto lib = finding(twice, "duplicate-library");
  REQUIRE(lib.is_object());
  CHECK(lib["severity"] == "warning");
  CHECK(contains(lib["first"], "dup1/libex_dup.so"));
  CHECK(contains(lib["second"], "dup2/libex_dup.so"));

  Explained twins = explain_run({ov_host(), "open:" + ex("libex_twin_a.so") + ":NOW|GLOBAL",
                                 "open:" + ex("libex_twin_b.so") + ":NOW|GLOBAL"});
  INFO(twins.text.out);
  auto sym = finding(twins, "duplicate-symbol");
  REQUIRE(sym.is_object());
  CHECK(sym["symbol"] == "twin_value");
  CHECK(contains(sym["winner"], "libex_twin_a.so"));
  CHECK(contains(sym["loser"], "libex_twin_b.so"));
  CHECK(contains(sym["title"], "global scope of namespace 0"));
  // Nothing else in that run is a problem: the system libraries' own overlaps are not reported.
  CHECK(twins.json["problems"] == 1);
}

TEST_CASE("explain: dlsym interposition and RTLD_DEEPBIND are informational", "[explain]") {
  Explained e = explain_run({ov_host(), "open:" + ex("libex_interp.so") + ":NOW",
                             "str:" + ex("libex_interp.so") + ":interp_lookup",
                             "open:libdeep.so:NOW|DEEPBIND"});
  INFO(e.text.out);
  CHECK(contains(e.program.out, "interp_lookup = host"));
  CHECK(e.text.exit_code == 0);  // informational findings are not problems
  auto f = finding(e, "dlsym-interposed");
  REQUIRE(f.is_object());
  CHECK(f["severity"] == "info");
  CHECK(f["symbol"] == "which_impl");
  CHECK(contains(f["object"], "libex_interp.so"));
  CHECK(contains(f["defined_in"], "ov_host"));
  auto deep = finding(e, "deepbind");
  REQUIRE(deep.is_object());
  CHECK(contains(deep["object"], "libdeep.so"));
  ProcessResult quiet = run({viewer_path(), "explain", "--no-info", e.trace});
  CHECK(quiet.exit_code == 0);
  CHECK(!contains(quiet.out, "[deepbind]"));
}

TEST_CASE("explain: a clean run has no problems; a bad trace is an error", "[explain]") {
  Explained e = explain_run({ov_host(), "open:libembed.so:NOW"});
  CHECK(e.text.exit_code == 0);
  CHECK(e.json["problems"] == 0);
  std::string dir = temp_dir("explain-bad");
  std::ofstream(dir + "/empty.trace");
  ProcessResult bad = run({viewer_path(), "explain", dir + "/empty.trace"});
  CHECK(bad.exit_code == 1);
  CHECK(contains(bad.err, "dltrace: "));
}

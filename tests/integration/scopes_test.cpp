// `dltrace scopes` against the dynamic linker's own account: the same traced run also prints
// LD_DEBUG=scopes, and every dlopen'ed object's scopes, and the global scope's growth, must be
// what ld.so said.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;
namespace fs = std::filesystem;

namespace {

std::string canonical(const std::string& path, const std::string& cwd) {
  fs::path p(path);
  if (p.is_relative()) p = fs::path(cwd) / p;
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p.lexically_normal().string() : c.string();
}

// LD_DEBUG=scopes, parsed: per "object=PATH [NS]" block (first occurrence), its scopes; and the
// "add PATH [NS] to global scope" lines in order.
struct LdDebugScopes {
  std::map<std::string, std::vector<std::vector<std::string>>> object_scopes;
  std::vector<std::string> initial_global;  // scope 0 of the executable
  std::vector<std::string> added_to_global;
};

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

LdDebugScopes parse_ld_debug(const std::string& err, const std::string& cwd) {
  LdDebugScopes out;
  std::istringstream in(err);
  std::string current;
  bool first_block = false;
  for (std::string line; std::getline(in, line);) {
    size_t tab = line.find('\t');
    if (tab == std::string::npos) continue;
    std::string body = line.substr(tab + 1);
    if (body.rfind("object=", 0) == 0) {
      std::string path = body.substr(7, body.rfind(" [") - 7);
      current = canonical(path, cwd);
      first_block = !out.object_scopes.count(current);
      if (first_block) out.object_scopes[current];
      continue;
    }
    if (body.rfind(" scope ", 0) == 0 && !current.empty()) {
      auto words = split_words(body.substr(body.find(':') + 1));
      for (auto& w : words) w = canonical(w, cwd);
      if (out.initial_global.empty()) out.initial_global = words;
      if (first_block) out.object_scopes[current].push_back(words);
      continue;
    }
    if (body.rfind("add ", 0) == 0 && body.find(" to global scope") != std::string::npos) {
      std::string path = body.substr(4, body.rfind(" [") - 4);
      out.added_to_global.push_back(canonical(path, cwd));
    }
  }
  return out;
}

std::vector<std::string> member_paths(const nlohmann::json& list, const std::string& cwd) {
  std::vector<std::string> out;
  for (const auto& m : list["members"]) out.push_back(canonical(m["path"].get<std::string>(), cwd));
  return out;
}

}  // namespace

TEST_CASE("scopes match what LD_DEBUG=scopes printed for the same run", "[scopes]") {
  settle_fixtures();
  const std::string dir = fixtures_dir() + "/overrides";
  const std::string trace = temp_dir("scopes") + "/run.trace";
  // A local group with a dependency, a global one, then the local one promoted to global.
  RunOptions opts;
  opts.env["LD_DEBUG"] = "scopes";
  opts.cwd = dir;
  ProcessResult r =
      run_traced({dir + "/ov_host", "open:libembed.so:NOW|LOCAL", "open:libdeep.so:NOW|GLOBAL",
                  "open:liblazy.so:LAZY|LOCAL", "open:libembed.so:NOW|NOLOAD|GLOBAL"},
                 trace, opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  LdDebugScopes ld = parse_ld_debug(r.err, dir);
  REQUIRE(ld.object_scopes.size() >= 4);

  ProcessResult all = run({viewer_path(), "scopes", "--json", trace});
  INFO(all.err);
  REQUIRE(all.exit_code == 0);
  nlohmann::json scopes = nlohmann::json::parse(all.out);
  const auto& global = scopes["lists"][0];
  REQUIRE(global["kind"] == "global");
  // The global scope: ld.so's initial list, then its "add ... to global scope" lines, in order.
  std::vector<std::string> expected = ld.initial_global;
  expected.insert(expected.end(), ld.added_to_global.begin(), ld.added_to_global.end());
  CHECK(member_paths(global, dir) == expected);
  CHECK(ld.added_to_global.size() == 3);  // libdeep, then libembed and libapi

  // Every dlopen'ed object: its scopes at load, list by list.
  for (const char* name : {"libembed.so", "libapi.so", "libdeep.so", "liblazy.so"}) {
    std::string path = canonical(dir + "/" + name, dir);
    INFO("object " << name);
    REQUIRE(ld.object_scopes.count(path));
    ProcessResult one = run({viewer_path(), "scopes", "--json", "--for", name, trace});
    INFO(one.err);
    REQUIRE(one.exit_code == 0);
    nlohmann::json j = nlohmann::json::parse(one.out);
    REQUIRE(j["objects"].size() == 1);
    std::vector<std::vector<std::string>> ours;
    for (const auto& list : j["objects"][0]["scopes"]) ours.push_back(member_paths(list, dir));
    CHECK(ours == ld.object_scopes[path]);
  }
}

TEST_CASE("scopes --for prints the search order and names the groups", "[scopes]") {
  settle_fixtures();
  const std::string dir = fixtures_dir() + "/overrides";
  const std::string trace = temp_dir("scopes") + "/run.trace";
  ProcessResult r = run_traced({dir + "/ov_host", "open:libembed.so:NOW|LOCAL"}, trace);
  REQUIRE(r.exit_code == 0);
  ProcessResult text = run({viewer_path(), "scopes", "--for", "libapi.so", trace});
  INFO(text.out << text.err);
  REQUIRE(text.exit_code == 0);
  CHECK(text.out.find("scope 0: global scope of namespace 0") != std::string::npos);
  CHECK(text.out.find("scope 1: local scope of dlopen #1 \"libembed.so\" RTLD_NOW|RTLD_LOCAL") !=
        std::string::npos);
  // Global first (the executable), then the group: libembed.so before its dependency libapi.so.
  size_t host = text.out.find("ov_host");
  size_t embed = text.out.find("libembed.so  ");
  size_t api = text.out.find("libapi.so  ");
  CHECK(host < embed);
  CHECK(embed < api);

  // An object whose dlopen failed: the search list it had during that call.
  ProcessResult failed_run = run_traced(
      {dir + "/ov_host", "open:libembed.so:NOW|LOCAL", "open:libplugin.so:NOW"}, trace + "2");
  REQUIRE(failed_run.exit_code == 0);
  ProcessResult failed = run({viewer_path(), "scopes", "--for", "libplugin.so", trace + "2"});
  INFO(failed.out << failed.err);
  CHECK(failed.exit_code == 0);
  CHECK(failed.out.find("never finished loading: dlopen #2 failed") != std::string::npos);
  CHECK(failed.out.find("undefined symbol: api_value") != std::string::npos);
  CHECK(failed.out.find(" scope 1: its own group") != std::string::npos);
  CHECK(failed.out.find("libapi.so") == std::string::npos);  // which is the point

  ProcessResult unknown = run({viewer_path(), "scopes", "--for", "libnope.so", trace});
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err.find("no object named \"libnope.so\"") != std::string::npos);
  ProcessResult usage = run({viewer_path(), "scopes", "--at", "3", trace});
  CHECK(usage.exit_code == 2);
}

TEST_CASE("dot --graph scope draws the scopes and the failed lookup, and Graphviz renders it",
          "[scopes][dot]") {
  settle_fixtures();
  const std::string dir = fixtures_dir() + "/overrides";
  const std::string work = temp_dir("scopes-dot");
  const std::string trace = work + "/run.trace";
  ProcessResult r =
      run_traced({dir + "/ov_host", "open:libembed.so:NOW|LOCAL", "open:libplugin.so:NOW"}, trace);
  REQUIRE(r.exit_code == 0);
  ProcessResult dot = run({viewer_path(), "dot", "--graph", "scope", "-o", work + "/s.dot", trace});
  INFO(dot.err);
  REQUIRE(dot.exit_code == 0);
  ProcessResult svg = run({"dot", "-Tsvg", work + "/s.dot", "-o", work + "/s.svg"});
  INFO(svg.err);
  REQUIRE(svg.exit_code == 0);
  std::ifstream in(work + "/s.svg");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("global scope, namespace 0") != std::string::npos);
  CHECK(text.find("local scope of dlopen #1") != std::string::npos);
  CHECK(text.find("libapi.so") != std::string::npos);
  CHECK(text.find("libplugin.so") != std::string::npos);
  CHECK(text.find("needs api_value (RTLD_LOCAL)") != std::string::npos);
  // --focus keeps only the scopes holding that object.
  ProcessResult focus =
      run({viewer_path(), "dot", "--graph", "scope", "--focus", "libapi.so", trace});
  REQUIRE(focus.exit_code == 0);
  CHECK(focus.out.find("global scope, namespace 0") == std::string::npos);
  CHECK(focus.out.find("libapi.so") != std::string::npos);
  ProcessResult none =
      run({viewer_path(), "dot", "--graph", "scope", "--focus", "libnope.so", trace});
  CHECK(none.exit_code == 2);
}

// explain on a dlopen that fails inside the loader, with the situations built for real at test
// time: the finding's facts are checked, and the fix it prints is applied and must work.
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

namespace {

void compile(const std::vector<std::string>& argv) {
  std::vector<std::string> cmd{"cc"};
  cmd.insert(cmd.end(), argv.begin(), argv.end());
  const ProcessResult r = run(cmd);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
}

// A program that dlopens argv[1] and says whether it worked.
std::string build_opener(const std::string& dir) {
  std::ofstream(dir + "/opener.c")
      << "#include <dlfcn.h>\n#include <stdio.h>\n"
         "int main(int argc, char** argv) {\n"
         "  void* h = dlopen(argv[1], RTLD_NOW);\n"
         "  if (!h) { printf(\"failed: %s\\n\", dlerror()); return 1; }\n"
         "  printf(\"loaded\\n\");\n  return 0;\n}\n";
  compile({"-o", dir + "/opener", dir + "/opener.c", "-ldl"});
  return dir + "/opener";
}

struct Explained {
  ProcessResult program, text;
  nlohmann::json json;
};

Explained record_and_explain(const std::vector<std::string>& argv, const std::string& dir) {
  Explained e;
  const std::string trace = dir + "/run.trace";
  e.program = run_traced(argv, trace);
  e.text = run({viewer_path(), "explain", "--color=never", trace});
  const ProcessResult j = run({viewer_path(), "explain", "--json", trace});
  INFO(describe(j));
  e.json = nlohmann::json::parse(j.out, nullptr, false);
  REQUIRE_FALSE(e.json.is_discarded());
  return e;
}

nlohmann::json finding(const Explained& e, const std::string& kind) {
  for (const auto& f : e.json["findings"])
    if (f["kind"] == kind) return f;
  return nullptr;
}

}  // namespace

// libA.so (RUNPATH $ORIGIN/b:$ORIGIN/c) → libB.so (no paths) → libC.so, which sits in c/.
// libA's RUNPATH names c/, but ld.so searches libC.so with libB's paths only: RUNPATH is not
// inherited. The fix must go to libB.so.
TEST_CASE(
    "explain: a dependency's dependency is missing: the needing chain and a fix on the "
    "right object",
    "[explain][load-failure]") {
  const std::string dir = temp_dir("missing-dep");
  run({"mkdir", "-p", dir + "/b", dir + "/c"});
  std::ofstream(dir + "/c.c") << "int c_value(void) { return 3; }\n";
  std::ofstream(dir + "/b.c") << "int c_value(void);\nint b_value(void) { return c_value(); }\n";
  std::ofstream(dir + "/a.c") << "int b_value(void);\nint a_value(void) { return b_value(); }\n";
  compile({"-shared", "-fPIC", "-o", dir + "/c/libC.so", dir + "/c.c"});
  compile({"-shared", "-fPIC", "-o", dir + "/b/libB.so", dir + "/b.c", "-L" + dir + "/c", "-lC"});
  compile({"-shared", "-fPIC", "-o", dir + "/libA.so", dir + "/a.c", "-L" + dir + "/b", "-lB",
           "-Wl,--enable-new-dtags,-rpath,$ORIGIN/b:$ORIGIN/c"});
  const std::string opener = build_opener(dir);

  Explained e = record_and_explain({opener, dir + "/libA.so"}, dir);
  INFO(e.text.out);
  REQUIRE(e.program.exit_code == 1);
  CHECK(e.program.out.find("libC.so: cannot open shared object file") != std::string::npos);
  const nlohmann::json f = finding(e, "library-not-found");
  REQUIRE(f.is_object());
  CHECK(f["library"] == "libC.so");
  CHECK(f["needed_by"] == dir + "/b/libB.so");
  CHECK(f["chain"] == "libA.so → libB.so → libC.so (not found)");
  CHECK(f["candidate"] == dir + "/c/libC.so");
  const std::string& out = e.text.out;
  CHECK(out.find("as a DT_NEEDED entry of libB.so") != std::string::npos);
  CHECK(out.find("libA.so's DT_RUNPATH ($ORIGIN/b:$ORIGIN/c) is not used for libB.so's "
                 "dependencies") != std::string::npos);
  // The search is libB's own: no directory from libA's RUNPATH is claimed to have been tried.
  CHECK(out.find(dir + "/c/libC.so  (") == std::string::npos);

  // Apply the first fix exactly as printed: patchelf on libB.so.
  REQUIRE(f["fixes"].size() >= 2);
  const std::string fix = f["fixes"][0]["text"];
  std::smatch m;
  REQUIRE(std::regex_search(fix, m, std::regex(R"(patchelf --set-rpath (\S+) (\S+)$)")));
  auto unquote = [](std::string s) {
    return s.size() >= 2 && s.front() == '\'' ? s.substr(1, s.size() - 2) : s;
  };
  CHECK(unquote(m[2]) == dir + "/b/libB.so");
  {
    // The second fix, LD_LIBRARY_PATH, works before the first is applied.
    const std::string llp = f["fixes"][1]["text"];
    REQUIRE(llp.rfind("or run with LD_LIBRARY_PATH=", 0) == 0);
    RunOptions opts;
    opts.env["LD_LIBRARY_PATH"] =
        unquote(llp.substr(std::string("or run with LD_LIBRARY_PATH=").size()));
    const ProcessResult fixed = run({opener, dir + "/libA.so"}, opts);
    INFO(describe(fixed));
    CHECK(fixed.exit_code == 0);
  }
  const ProcessResult patch = run({"patchelf", "--set-rpath", unquote(m[1]), unquote(m[2])});
  INFO(describe(patch));
  REQUIRE(patch.exit_code == 0);
  const ProcessResult fixed = run({opener, dir + "/libA.so"});
  INFO(describe(fixed));
  CHECK(fixed.exit_code == 0);
  CHECK(fixed.out == "loaded\n");
}

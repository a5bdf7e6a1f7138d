// Two copies of one library: a stateful library without a soname, copied under another name and
// opened by both paths, is mapped twice (the loader matches neither name nor file), and each
// copy keeps its own state. Only the build-id says it is one library. explain must report it,
// and loading it from one place (the fix) gives one state.
#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

TEST_CASE(
    "two copies: one library mapped twice under two names is found by its build-id, and "
    "loading it from one place gives one state",
    "[explain][two-copies]") {
  const std::string dir = temp_dir("two-copies");
  run({"mkdir", "-p", dir + "/a", dir + "/b"});
  std::ofstream(dir + "/state.c") << "static int counter;\nint bump(void) { return ++counter; }\n";
  build("cc",
        {"-shared", "-fPIC", "-Wl,--build-id", "-o", dir + "/a/libstate.so", dir + "/state.c"});
  run({"cp", dir + "/a/libstate.so", dir + "/b/libstate_copy.so"});
  std::ofstream(dir + "/host.c") << "#include <dlfcn.h>\n#include <stdio.h>\n"
                                    "int main(int argc, char** argv) {\n"
                                    "  for (int i = 1; i < argc; ++i) {\n"
                                    "    void* h = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);\n"
                                    "    if (!h) { puts(dlerror()); return 1; }\n"
                                    "    int (*bump)(void) = (int (*)(void))dlsym(h, \"bump\");\n"
                                    "    printf(\"%d\\n\", bump());\n  }\n  return 0;\n}\n";
  build("cc", {"-o", dir + "/host", dir + "/host.c", "-ldl"});

  const std::string trace = dir + "/run.trace";
  const ProcessResult program =
      run_traced({dir + "/host", dir + "/a/libstate.so", dir + "/b/libstate_copy.so"}, trace);
  INFO(describe(program));
  REQUIRE(program.exit_code == 0);
  CHECK(program.out == "1\n1\n");  // two states

  const ProcessResult j = run({viewer_path(), "explain", "--json", trace});
  const nlohmann::json doc = nlohmann::json::parse(j.out, nullptr, false);
  REQUIRE_FALSE(doc.is_discarded());
  const nlohmann::json exported = export_json(trace);
  const nlohmann::json* object = find_object(exported, "libstate.so");
  REQUIRE(object != nullptr);
  const std::string build_id = (*object)["build_id"];
  REQUIRE_FALSE(build_id.empty());
  nlohmann::json f;
  for (const auto& x : doc["findings"])
    if (x["kind"] == "duplicate-library") f = x;
  INFO(doc.dump(2));
  REQUIRE(f.is_object());
  CHECK(f["severity"] == "warning");
  CHECK(f["build_id"] == build_id);
  CHECK(f["first"] == dir + "/a/libstate.so");
  CHECK(f["second"] == dir + "/b/libstate_copy.so");
  CHECK(f["title"].get<std::string>().find("are one library (the same build-id") !=
        std::string::npos);
  CHECK(f["fixes"][0]["text"].get<std::string>().find("load libstate.so from one place only") == 0);
  // The fix: one file, opened twice, is one copy with one state.
  const ProcessResult fixed = run({dir + "/host", dir + "/a/libstate.so", dir + "/a/libstate.so"});
  INFO(describe(fixed));
  CHECK(fixed.out == "1\n2\n");
}

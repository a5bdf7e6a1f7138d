// A plugin opened RTLD_LAZY that calls a function nobody in its scope defines: the dlopen
// succeeds, and the first call kills the process (ld.so: "symbol lookup error", _exit(127), no
// atexit, no signal). explain predicts it from the bindings, names the library on disk that
// exports the function, and linking the plugin against it (the fix) makes the program work.
#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

TEST_CASE(
    "lazy binding: a function defined nowhere in an RTLD_LAZY plugin's scope is found "
    "before its call kills the process, and linking the provider fixes it",
    "[explain][lazy]") {
  const std::string dir = temp_dir("lazy");
  std::ofstream(dir + "/prov.c") << "int missing_fn(int x) { return x * 2; }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libprov.so", dir + "/prov.c"});
  std::ofstream(dir + "/plugin.c") << "int missing_fn(int);\n"
                                      "int run_ok(void) { return 1; }\n"
                                      "int run_missing(void) { return missing_fn(21); }\n";
  auto plugin = [&](bool fixed) {
    std::vector<std::string> args{"-shared", "-fPIC", "-o", dir + "/plugin.so", dir + "/plugin.c"};
    if (fixed) args.insert(args.end(), {"-L" + dir, "-lprov", "-Wl,-rpath," + dir});
    build("cc", args);
  };
  std::ofstream(dir + "/host.c")
      << "#include <dlfcn.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
         "static void bye(void) { puts(\"atexit ran\"); }\n"
         "int main(int argc, char** argv) {\n"
         "  atexit(bye);\n"
         "  void* h = dlopen(argv[1], RTLD_LAZY);\n"
         "  if (!h) { printf(\"failed: %s\\n\", dlerror()); return 1; }\n"
         "  int (*ok)(void) = (int (*)(void))dlsym(h, \"run_ok\");\n"
         "  int (*missing)(void) = (int (*)(void))dlsym(h, \"run_missing\");\n"
         "  printf(\"ok %d\\n\", ok());\n  fflush(stdout);\n"
         "  printf(\"missing %d\\n\", missing());\n  return 0;\n}\n";
  build("cc", {"-o", dir + "/host", dir + "/host.c", "-ldl"});
  plugin(false);

  const std::string trace = dir + "/run.trace";
  const ProcessResult program = run_traced({dir + "/host", dir + "/plugin.so"}, trace);
  INFO(describe(program));
  REQUIRE(program.exit_code == 127);
  CHECK(program.out == "ok 1\n");  // no atexit handler ran
  CHECK(program.err.find("symbol lookup error") != std::string::npos);

  const ProcessResult j = run({viewer_path(), "explain", "--json", trace});
  const ProcessResult text = run({viewer_path(), "explain", "--color=never", trace});
  INFO(text.out);
  CHECK(text.exit_code == 1);
  const nlohmann::json doc = nlohmann::json::parse(j.out, nullptr, false);
  REQUIRE_FALSE(doc.is_discarded());
  nlohmann::json f;
  for (const auto& x : doc["findings"])
    if (x["kind"] == "lazy-undefined-function") f = x;
  REQUIRE(f.is_object());
  CHECK(f["severity"] == "error");
  CHECK(f["symbol"] == "missing_fn");
  CHECK(f["object"] == dir + "/plugin.so");
  CHECK(f["provider"] == dir + "/libprov.so");
  CHECK(f["title"].get<std::string>().find("it will fail at the first call of missing_fn") !=
        std::string::npos);
  CHECK(f.dump().find("the process ended without a recorded exit — consistent with ld.so's exit "
                      "127") != std::string::npos);
  // Only the function nobody defines: run_ok and the plugin's libc calls are not findings.
  size_t lazy = 0;
  for (const auto& x : doc["findings"]) lazy += x["kind"] == "lazy-undefined-function";
  CHECK(lazy == 1);

  const std::string fix = f["fixes"][0]["text"];
  CHECK(fix.find("link plugin.so against libprov.so") == 0);
  plugin(true);
  const ProcessResult fixed = run({dir + "/host", dir + "/plugin.so"});
  INFO(describe(fixed));
  CHECK(fixed.exit_code == 0);
  CHECK(fixed.out == "ok 1\nmissing 42\natexit ran\n");
}

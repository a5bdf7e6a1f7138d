// `dltrace bindings` against LD_DEBUG=bindings of the same run (LD_BIND_NOW=1, so that ld.so
// binds every reference at load): a program built at test time with a copy relocation, symbol
// versions, an -rdynamic executable whose definition wins over a library's, and a plugin
// opened RTLD_LOCAL; then Python importing numpy. Every binding ld.so printed for a relocation
// must be the one dltrace computed, and every one dltrace computed must be one ld.so printed.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "harness.h"

using namespace dltrace::test;
namespace fs = std::filesystem;

namespace {

std::string real(const std::string& path, const std::string& cwd) {
  std::error_code ec;
  fs::path p = path.front() == '/' ? fs::path(path) : fs::path(cwd) / path;
  fs::path r = fs::canonical(p, ec);
  return ec ? p.lexically_normal().string() : r.string();
}

using Binding = std::tuple<std::string, std::string, std::string>;  // from, symbol, to

struct Compared {
  std::set<Binding> ld_debug;  // what ld.so printed, for references dltrace knows of
  std::set<Binding> dltrace;   // what dltrace computed (bound references)
  size_t ld_debug_lines = 0;
};

// Records argv with LD_DEBUG=bindings and LD_BIND_NOW=1, runs `dltrace bindings --json` on the
// trace, and returns both as sets of (from, symbol, to), paths made canonical.
Compared record_and_compare(const std::vector<std::string>& argv, const std::string& dir,
                            RunOptions opts = {}) {
  const std::string trace = dir + "/bindings.trace";
  const std::string cwd = opts.cwd.empty() ? fs::current_path().string() : opts.cwd;
  opts.env["LD_DEBUG"] = "bindings";
  opts.env["LD_DEBUG_OUTPUT"] = dir + "/ld_debug";
  opts.env["LD_BIND_NOW"] = "1";
  const ProcessResult program = run_traced(argv, trace, opts);
  INFO(describe(program));
  REQUIRE(program.exit_code == 0);
  const ProcessResult j = run({viewer_path(), "bindings", "--json", trace});
  INFO(j.err);
  REQUIRE(j.exit_code == 0);
  const nlohmann::json doc = nlohmann::json::parse(j.out, nullptr, false);
  REQUIRE_FALSE(doc.is_discarded());
  REQUIRE(doc["format"] == "dltrace-bindings");
  Compared c;
  std::set<std::pair<std::string, std::string>> references;  // (from, symbol) dltrace knows
  for (const auto& b : doc["bindings"]) {
    const std::string from = real(b["from"], cwd);
    references.emplace(from, b["symbol"]);
    if (b["to"].is_string()) c.dltrace.emplace(from, b["symbol"], real(b["to"], cwd));
  }
  // The traced process's own log (LD_DEBUG_OUTPUT gets ".PID").
  const std::string program_file = real(argv.front(), cwd);
  const std::regex line(R"(binding file (.+) \[\d+\] to (.+) \[\d+\]: \w+ symbol `([^']+)')");
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("ld_debug", 0) != 0) continue;
    std::ifstream in(entry.path());
    std::string text;
    while (std::getline(in, text)) {
      std::smatch m;
      if (!std::regex_search(text, m, line)) continue;
      ++c.ld_debug_lines;
      const std::string from = real(m[1], cwd);
      const std::string symbol = m[3];
      // Lookups that are not relocations have no reference in the file (dlsym), or are ld.so's
      // own: once libc is loaded, rtld looks up malloc, calloc, realloc and free in the main
      // program's scope for itself (__rtld_malloc_init_real). dltrace computes relocations.
      if (from == program_file &&
          (symbol == "malloc" || symbol == "calloc" || symbol == "realloc" || symbol == "free") &&
          real(m[2], cwd) == program_file)
        continue;
      if (references.contains({from, symbol})) c.ld_debug.emplace(from, symbol, real(m[2], cwd));
    }
  }
  return c;
}

std::string describe_difference(const Compared& c) {
  std::ostringstream out;
  size_t shown = 0;
  for (const Binding& b : c.ld_debug)
    if (!c.dltrace.contains(b) && shown++ < 20)
      out << "ld.so only:   " << std::get<0>(b) << " " << std::get<1>(b) << " -> " << std::get<2>(b)
          << "\n";
  for (const Binding& b : c.dltrace)
    if (!c.ld_debug.contains(b) && shown++ < 40)
      out << "dltrace only: " << std::get<0>(b) << " " << std::get<1>(b) << " -> " << std::get<2>(b)
          << "\n";
  return out.str();
}

}  // namespace

TEST_CASE("bindings: the same as LD_DEBUG=bindings on a program built for it", "[bindings]") {
  const std::string dir = temp_dir("bindings");
  // libbase: versioned data and functions; the executable copies `base_counter` (copy
  // relocation) and defines `shared_fn` itself (-rdynamic), which libbase and the plugin also
  // define: every reference binds to the executable's.
  std::ofstream(dir + "/base.c") << "int base_counter = 1;\n"
                                    "int shared_fn(void) { return 100; }\n"
                                    "int base_fn(void) { return base_counter + shared_fn(); }\n";
  std::ofstream(dir + "/base.map") << "BASE_1 { global: base_counter; base_fn; shared_fn; "
                                      "local: *; };\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libbase.so", dir + "/base.c",
               "-Wl,--version-script=" + dir + "/base.map", "-Wl,-soname,libbase.so"});
  std::ofstream(dir + "/dep.c") << "int dep_fn(void) { return 3; }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libdep.so", dir + "/dep.c"});
  std::ofstream(dir + "/plugin.c") << "#include <stdio.h>\n"
                                      "extern int base_counter;\n"
                                      "int base_fn(void); int dep_fn(void);\n"
                                      "int shared_fn(void) { return 200; }\n"
                                      "int run(void) { printf(\"%d\\n\", base_fn() + dep_fn() + "
                                      "base_counter + shared_fn()); return 0; }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/plugin.so", dir + "/plugin.c", "-L" + dir,
               "-lbase", "-ldep", "-Wl,-rpath," + dir});
  std::ofstream(dir + "/main.c") << "#include <dlfcn.h>\n#include <stdio.h>\n"
                                    "extern int base_counter;\n"
                                    "int shared_fn(void) { return 300; }\n"
                                    "int main(int argc, char** argv) {\n"
                                    "  base_counter = 5;\n"
                                    "  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);\n"
                                    "  if (!h) { puts(dlerror()); return 1; }\n"
                                    "  int (*run)(void) = (int (*)(void))dlsym(h, \"run\");\n"
                                    "  return run();\n}\n";
  build("cc", {"-o", dir + "/main", dir + "/main.c", "-rdynamic", "-L" + dir, "-lbase", "-ldl",
               "-Wl,-rpath," + dir});

  const Compared c = record_and_compare({dir + "/main", dir + "/plugin.so"}, dir);
  INFO(describe_difference(c));
  CHECK(c.ld_debug_lines > 50);
  CHECK(c.ld_debug.size() > 50);
  CHECK(c.ld_debug == c.dltrace);
  // The facts the fixture is about, spelled out.
  CHECK(c.dltrace.contains({real(dir + "/plugin.so", dir), "shared_fn", real(dir + "/main", dir)}));
  CHECK(c.dltrace.contains(
      {real(dir + "/libbase.so", dir), "base_counter", real(dir + "/main", dir)}));
  CHECK(c.dltrace.contains({real(dir + "/main", dir), "base_counter",
                            real(dir + "/libbase.so", dir)}));  // the copy relocation
  CHECK(
      c.dltrace.contains({real(dir + "/plugin.so", dir), "dep_fn", real(dir + "/libdep.so", dir)}));
}

TEST_CASE("bindings: the same as LD_DEBUG=bindings on Python importing numpy",
          "[bindings][python]") {
  const char* python = "/usr/bin/python3";
  if (access(python, X_OK) != 0 || run({python, "-c", "import numpy"}).exit_code != 0) {
    WARN("no python3 with numpy; skipped");
    return;
  }
  const std::string dir = temp_dir("bindings-numpy");
  const Compared c =
      record_and_compare({python, "-c", "import numpy; print(numpy.arange(4).sum())"}, dir);
  INFO(describe_difference(c));
  CHECK(c.ld_debug.size() > 1000);
  CHECK(c.ld_debug == c.dltrace);
}

TEST_CASE(
    "bindings: the same as LD_DEBUG=bindings where two copies split the references (an "
    "extension linked against libpython; an -rdynamic executable and an RTLD_LOCAL library)",
    "[bindings][two-copies]") {
  const std::string dir = temp_dir("bindings-copies");
  // An -rdynamic executable and a library opened RTLD_LOCAL both define counter_increment.
  const std::string counter =
      "static int count;\nint counter_increment(void) { return ++count; }\n";
  std::ofstream(dir + "/lib.c") << counter
                                << "int plugin_bump(void) { return counter_increment(); }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libcounter.so", dir + "/lib.c"});
  std::ofstream(dir + "/host.c")
      << "#include <dlfcn.h>\n#include <stdio.h>\n"
      << counter
      << "int main(int argc, char** argv) {\n"
         "  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);\n"
         "  if (!h) { puts(dlerror()); return 1; }\n"
         "  int (*bump)(void) = (int (*)(void))dlsym(h, \"plugin_bump\");\n"
         "  return bump() + counter_increment() == 3 ? 0 : 1;\n}\n";
  build("cc", {"-o", dir + "/host", dir + "/host.c", "-rdynamic", "-ldl"});
  const std::string counter_dir = dir + "/counter";
  fs::create_directories(counter_dir);
  const Compared c = record_and_compare({dir + "/host", dir + "/libcounter.so"}, counter_dir);
  INFO(describe_difference(c));
  CHECK(c.ld_debug == c.dltrace);
  CHECK(c.dltrace.contains(
      {real(dir + "/libcounter.so", dir), "counter_increment", real(dir + "/host", dir)}));

  const char* python = "/usr/bin/python3";
  const std::string include = run({python, "-c",
                                   "import sysconfig; print(sysconfig.get_paths()['include'], "
                                   "sysconfig.get_config_var('LIBDIR'), "
                                   "sysconfig.get_config_var('LDVERSION'))"})
                                  .out;
  std::istringstream fields(include);
  std::string inc, libdir, ldversion;
  fields >> inc >> libdir >> ldversion;
  if (access((inc + "/Python.h").c_str(), R_OK) != 0 ||
      access((libdir + "/libpython" + ldversion + ".so").c_str(), R_OK) != 0) {
    WARN("no Python.h or libpython (python3-dev); the Python half skipped");
    return;
  }
  std::ofstream(dir + "/twocopies.c")
      << "#define PY_SSIZE_T_CLEAN\n#include <Python.h>\n"
         "static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, \"twocopies\", NULL, -1, "
         "NULL};\n"
         "PyMODINIT_FUNC PyInit_twocopies(void) { return PyModule_Create(&module); }\n";
  build("cc", {"-shared", "-fPIC", "-I" + inc, "-o", dir + "/twocopies.so", dir + "/twocopies.c",
               "-L" + libdir, "-lpython" + ldversion});
  const std::string python_dir = dir + "/python";
  fs::create_directories(python_dir);
  RunOptions opts;
  opts.cwd = dir;
  const Compared p = record_and_compare({python, "-c", "import twocopies"}, python_dir, opts);
  INFO(describe_difference(p));
  CHECK(p.ld_debug.size() > 1000);
  CHECK(p.ld_debug == p.dltrace);
  // The module's C-API references and libpython's own relocated ones bind to the executable.
  const std::string exe = real(python, dir);
  CHECK(p.dltrace.contains({real(dir + "/twocopies.so", dir), "PyModule_Create2", exe}));
  bool libpython_to_exe = false;
  for (const Binding& b : p.dltrace)
    libpython_to_exe =
        libpython_to_exe || (std::get<0>(b).find("/libpython" + ldversion) != std::string::npos &&
                             std::get<1>(b) == "_PyRuntime" && std::get<2>(b) == exe);
  CHECK(libpython_to_exe);
  // And `bindings` says so: the module's references bind to one of two copies, libpython's the
  // other, and the split is counted.
  const std::string trace = python_dir + "/bindings.trace";
  const ProcessResult j =
      run({viewer_path(), "bindings", "--json", "--for", "twocopies.so", trace});
  INFO(j.err);
  REQUIRE(j.exit_code == 0);
  const nlohmann::json doc = nlohmann::json::parse(j.out, nullptr, false);
  REQUIRE_FALSE(doc.is_discarded());
  bool marked = false;
  for (const auto& b : doc["bindings"])
    if (b["symbol"] == "PyModule_Create2")
      marked = b["other_copy"].is_string() && b["other_copy"].get<std::string>().find(
                                                  "/libpython" + ldversion) != std::string::npos;
  CHECK(marked);
  REQUIRE(doc["copies"].size() == 1);
  CHECK(real(doc["copies"][0]["first"], dir) == exe);
  CHECK(doc["copies"][0]["bound_to_first"].get<int>() >= 1);  // PyModule_Create2 at least
  CHECK(doc["copies"][0]["bound_to_second"].get<int>() == 0);
  const ProcessResult t = run({viewer_path(), "bindings", "--for", "twocopies.so", trace});
  REQUIRE(t.exit_code == 0);
  CHECK(t.out.find("two copies: ") != std::string::npos);
  CHECK(t.out.find("/libpython" + ldversion) != std::string::npos);
  // A reference to a name with one definition names no other copy.
  for (const auto& b : doc["bindings"])
    if (b["symbol"] == "__cxa_finalize") CHECK(b["other_copy"].is_null());
}

// Two copies of one API in one process, each built for real, recorded and explained, and each
// fix applied: (a) a CPython extension module linked against libpython3.11.so, imported by
// Debian's /usr/bin/python3.11, which has the interpreter in the executable; (b) an -rdynamic
// executable exporting stateful functions that a library opened RTLD_LOCAL also defines; (c) a
// plugin carrying its own static libstdc++ (and a musl-static one when musl-gcc is installed).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

namespace {

const char* const kPython = "/usr/bin/python3";

std::string first_line(std::string s) {
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

nlohmann::json explain_json(const std::string& trace) {
  const ProcessResult j = run({viewer_path(), "explain", "--json", trace});
  const nlohmann::json doc = nlohmann::json::parse(j.out, nullptr, false);
  INFO(j.out << j.err);
  REQUIRE_FALSE(doc.is_discarded());
  return doc;
}

std::vector<nlohmann::json> findings_of(const nlohmann::json& doc, const std::string& kind) {
  std::vector<nlohmann::json> out;
  for (const auto& f : doc["findings"])
    if (f["kind"] == kind) out.push_back(f);
  return out;
}

bool has_evidence(const nlohmann::json& f, const std::string& needle) {
  for (const auto& e : f["evidence"])
    if (e.get<std::string>().find(needle) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE(
    "two copies: an extension module linked against libpython maps a second copy of the C API "
    "in /usr/bin/python3; linking it without libpython fixes it",
    "[explain][two-copies][api-copy][python]") {
  if (access(kPython, X_OK) != 0) {
    WARN("no " << kPython << "; skipped");
    return;
  }
  const std::string include = first_line(
      run({kPython, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"}).out);
  const std::string libdir = first_line(
      run({kPython, "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"}).out);
  const std::string ldlibrary = first_line(
      run({kPython, "-c", "import sysconfig; print(sysconfig.get_config_var('LDVERSION'))"}).out);
  const std::string exe = first_line(
      run({kPython, "-c", "import os, sys; print(os.path.realpath(sys.executable))"}).out);
  if (access((include + "/Python.h").c_str(), R_OK) != 0 ||
      access((libdir + "/libpython" + ldlibrary + ".so").c_str(), R_OK) != 0) {
    WARN("no Python.h or libpython" << ldlibrary << ".so (python3-dev); skipped");
    return;
  }
  // The interpreter must be in the executable (Debian's), or there is no second copy.
  if (run({"nm", "-D", "--defined-only", exe}).out.find(" Py_Initialize\n") == std::string::npos) {
    WARN(exe << " does not contain the interpreter; skipped");
    return;
  }
  const std::string dir = temp_dir("api-copy-python");
  std::ofstream(dir + "/twocopies.c")
      << "#define PY_SSIZE_T_CLEAN\n#include <Python.h>\n"
         "static PyObject* answer(PyObject* self, PyObject* args) { return PyLong_FromLong(42); }\n"
         "static PyMethodDef methods[] = {{\"answer\", answer, METH_NOARGS, NULL}, {NULL}};\n"
         "static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, \"twocopies\", NULL, -1, "
         "methods};\n"
         "PyMODINIT_FUNC PyInit_twocopies(void) { return PyModule_Create(&module); }\n";
  auto build_module = [&](bool with_libpython) {
    std::vector<std::string> cmd{
        "-shared", "-fPIC", "-I" + include, "-o", dir + "/twocopies.so", dir + "/twocopies.c"};
    if (with_libpython) {
      cmd.push_back("-L" + libdir);
      cmd.push_back("-lpython" + ldlibrary);
    }
    build("cc", cmd);
  };
  build_module(true);
  std::ofstream(dir + "/app.py") << "import twocopies\nprint(twocopies.answer())\n";
  RunOptions opts;
  opts.cwd = dir;
  const std::string trace = dir + "/run.trace";
  const ProcessResult program = run_traced({kPython, "app.py"}, trace, opts);
  INFO(describe(program));
  REQUIRE(program.exit_code == 0);
  REQUIRE(program.out == "42\n");

  // tree shows the second libpython, a system library a dlopen brought in that duplicates the
  // executable, even without --all.
  const ProcessResult tree = run({viewer_path(), "tree", "--color=never", trace});
  INFO(tree.out);
  CHECK(tree.out.find("libpython" + ldlibrary + ".so.1.0") != std::string::npos);
  CHECK(tree.out.find("[second copy of " + exe + "]") != std::string::npos);

  const nlohmann::json doc = explain_json(trace);
  INFO(doc.dump(2));
  const auto copies = findings_of(doc, "api-copy");
  REQUIRE(copies.size() == 1);
  const nlohmann::json& f = copies.front();
  CHECK(f["severity"] == "warning");
  CHECK(f["first"] == exe);
  const std::string second = f["second"];
  CHECK(second.ends_with("/libpython" + ldlibrary + ".so.1.0"));
  CHECK(f["needed_by"] == dir + "/twocopies.so");
  // Both copies export the C API: every name counted is defined by both files.
  const int copies_count = std::stoi(f["copies"].get<std::string>());
  CHECK(copies_count > 1000);
  const std::string symbol = f["symbol"];
  CHECK(run({"nm", "-D", "--defined-only", exe}).out.find(" " + symbol + "\n") !=
        std::string::npos);
  CHECK(run({"nm", "-D", "--defined-only", second}).out.find(" " + symbol + "\n") !=
        std::string::npos);
  // The module's references bind to the executable's copy; libpython's own relocated ones too,
  // while the rest of libpython's code reaches its own copy directly.
  const std::string python_name = exe.substr(exe.rfind('/') + 1);
  CHECK(has_evidence(f,
                     "twocopies.so's 2 references to them (PyLong_FromLong, PyModule_Create2) "
                     "bind to " +
                         python_name + "'s copy"));
  CHECK(std::stoi(f["bound_to_first"].get<std::string>()) > 2);
  CHECK(std::stoi(f["direct_in_second"].get<std::string>()) > 0);
  CHECK(has_evidence(f, "reaches its own copy directly, not through the scope"));
  CHECK(has_evidence(f, "two copies are two sets of state"));
  REQUIRE(f["fixes"].size() == 1);
  CHECK(f["fixes"][0]["text"].get<std::string>().find(
            "do not link the extension module twocopies.so against libpython" + ldlibrary) == 0);

  // The fix: the module without libpython imports and works, with one copy of the C API.
  build_module(false);
  const std::string fixed_trace = dir + "/fixed.trace";
  const ProcessResult fixed = run_traced({kPython, "app.py"}, fixed_trace, opts);
  INFO(describe(fixed));
  REQUIRE(fixed.exit_code == 0);
  CHECK(fixed.out == "42\n");
  const nlohmann::json fixed_doc = explain_json(fixed_trace);
  INFO(fixed_doc.dump(2));
  CHECK(findings_of(fixed_doc, "api-copy").empty());
  CHECK(find_object(export_json(fixed_trace), "libpython" + ldlibrary + ".so.1.0") == nullptr);
}

TEST_CASE(
    "two copies: an -rdynamic executable and a library opened RTLD_LOCAL define the same "
    "stateful functions; the library's calls and the host's dlsym reach different copies",
    "[explain][two-copies][api-copy]") {
  const std::string dir = temp_dir("api-copy-rdynamic");
  const std::string counter =
      "static int count;\n"
      "int counter_increment(void) { return ++count; }\n"
      "int counter_value(void) { return count; }\n";
  std::ofstream(dir + "/counter.c") << counter;
  // The library's own code counts through counter_increment, as its users would.
  std::ofstream(dir + "/plugin.c")
      << counter << "int plugin_bump(void) { return counter_increment(); }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libcounter.so", dir + "/plugin.c"});
  std::ofstream(dir + "/host.c")
      << "#include <dlfcn.h>\n#include <stdio.h>\n"
         "int counter_increment(void); int counter_value(void);\n"
         "int main(int argc, char** argv) {\n"
         "  counter_increment();\n"
         "  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);\n"
         "  if (!h) { puts(dlerror()); return 1; }\n"
         "  int (*bump)(void) = (int (*)(void))dlsym(h, \"plugin_bump\");\n"
         "  int (*value)(void) = (int (*)(void))dlsym(h, \"counter_value\");\n"
         "  bump(); bump();\n"
         "  printf(\"host %d library %d\\n\", counter_value(), value());\n"
         "  return 0;\n}\n";
  auto build_host = [&](bool rdynamic) {
    std::vector<std::string> cmd{"-o", dir + "/host", dir + "/host.c", dir + "/counter.c", "-ldl"};
    if (rdynamic) cmd.push_back("-rdynamic");
    build("cc", cmd);
  };
  build_host(true);
  const std::string trace = dir + "/run.trace";
  const ProcessResult program = run_traced({dir + "/host", dir + "/libcounter.so"}, trace);
  INFO(describe(program));
  REQUIRE(program.exit_code == 0);
  // The library's two bumps went to the executable's counter; its own counter_value says 0.
  CHECK(program.out == "host 3 library 0\n");

  const nlohmann::json doc = explain_json(trace);
  INFO(doc.dump(2));
  const auto copies = findings_of(doc, "api-copy");
  REQUIRE(copies.size() == 1);
  const nlohmann::json& f = copies.front();
  CHECK(f["severity"] == "warning");
  CHECK(f["first"] == dir + "/host");
  CHECK(f["second"] == dir + "/libcounter.so");
  CHECK(f["copies"] == "2");
  CHECK(f["title"].get<std::string>().find("counter_increment, counter_value") !=
        std::string::npos);
  CHECK(f["bound_to_first"] == "1");  // libcounter.so's own counter_increment
  CHECK(f["dlsym_second"] == "1");    // the host's dlsym(h, "counter_value")
  CHECK(has_evidence(f,
                     "libcounter.so's 1 reference to them (counter_increment) binds to host's "
                     "copy"));
  CHECK(has_evidence(f, "dlsym(\"counter_value\") from main()"));
  CHECK(has_evidence(f, "returned libcounter.so's copy"));
  CHECK_FALSE(has_evidence(f, "dlsym(\"plugin_bump\")"));  // not a copied name
  REQUIRE(f["fixes"].size() == 1);
  CHECK(f["fixes"][0]["text"].get<std::string>().find(
            "stop exporting counter_increment, counter_value from host: link it without "
            "-rdynamic") == 0);

  // The fix: the executable without -rdynamic; the library's state is one state again.
  build_host(false);
  const std::string fixed_trace = dir + "/fixed.trace";
  const ProcessResult fixed = run_traced({dir + "/host", dir + "/libcounter.so"}, fixed_trace);
  INFO(describe(fixed));
  REQUIRE(fixed.exit_code == 0);
  CHECK(fixed.out == "host 1 library 2\n");
  CHECK(findings_of(explain_json(fixed_trace), "api-copy").empty());
}

TEST_CASE(
    "two copies: a plugin built with -static-libstdc++ carries its own libstdc++ next to the "
    "process's libstdc++.so.6; --exclude-libs,ALL hides it",
    "[explain][two-copies][runtime-copy]") {
  const std::string dir = temp_dir("runtime-copy");
  std::ofstream(dir + "/plugin.cpp")
      << "#include <stdexcept>\n#include <string>\n"
         "extern \"C\" int plugin_run(int n) {\n"
         "  try { if (n > 1) throw std::runtime_error(std::to_string(n)); }\n"
         "  catch (const std::exception& e) { return (int)std::string(e.what()).size(); }\n"
         "  return 0;\n}\n";
  std::ofstream(dir + "/host.cpp") << "#include <dlfcn.h>\n#include <cstdio>\n#include <string>\n"
                                      "int main(int argc, char** argv) {\n"
                                      "  std::string s(\"host\");\n"
                                      "  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);\n"
                                      "  if (!h) { std::puts(dlerror()); return 1; }\n"
                                      "  auto run = (int (*)(int))dlsym(h, \"plugin_run\");\n"
                                      "  std::printf(\"%s %d\\n\", s.c_str(), run(123));\n"
                                      "  return 0;\n}\n";
  build("c++", {"-o", dir + "/host", dir + "/host.cpp", "-ldl"});
  auto build_plugin = [&](bool hidden) {
    std::vector<std::string> cmd{
        "-shared", "-fPIC", "-o", dir + "/plugin.so", dir + "/plugin.cpp", "-static-libstdc++"};
    if (hidden) cmd.push_back("-Wl,--exclude-libs,ALL");
    build("c++", cmd);
  };
  build_plugin(false);
  const std::string trace = dir + "/run.trace";
  const ProcessResult program = run_traced({dir + "/host", dir + "/plugin.so"}, trace);
  INFO(describe(program));
  REQUIRE(program.exit_code == 0);
  REQUIRE(program.out == "host 3\n");

  const nlohmann::json doc = explain_json(trace);
  INFO(doc.dump(2));
  const auto copies = findings_of(doc, "runtime-copy");
  REQUIRE(copies.size() == 1);
  const nlohmann::json& f = copies.front();
  CHECK(f["severity"] == "warning");
  CHECK(f["runtime"] == "libstdc++");
  CHECK(f["object"] == dir + "/plugin.so");
  const std::string libstdcxx = f["first"];
  CHECK(libstdcxx.ends_with("/libstdc++.so.6"));
  // Every counted name is exported by both files: check the example against nm.
  const std::string symbol = f["symbol"];
  CHECK(run({"nm", "-D", "--defined-only", dir + "/plugin.so"}).out.find(" " + symbol + "\n") !=
        std::string::npos);
  CHECK(run({"nm", "-D", "--defined-only", libstdcxx}).out.find(" " + symbol) != std::string::npos);
  CHECK(std::stoi(f["copies"].get<std::string>()) > 10);
  CHECK(has_evidence(f, "plugin.so's "));
  CHECK(has_evidence(f, "bind to libstdc++.so.6's copy"));
  CHECK(has_evidence(f, "exception-handling runtimes"));
  CHECK(findings_of(doc, "api-copy").empty());
  REQUIRE(f["fixes"].size() == 1);
  CHECK(f["fixes"][0]["text"].get<std::string>().find(
            "link plugin.so with -static-libstdc++ -Wl,--exclude-libs,ALL") == 0);

  // The fix: the same static runtime, kept private.
  build_plugin(true);
  const std::string fixed_trace = dir + "/fixed.trace";
  const ProcessResult fixed = run_traced({dir + "/host", dir + "/plugin.so"}, fixed_trace);
  INFO(describe(fixed));
  REQUIRE(fixed.exit_code == 0);
  CHECK(fixed.out == "host 3\n");
  const nlohmann::json fixed_doc = explain_json(fixed_trace);
  INFO(fixed_doc.dump(2));
  CHECK(findings_of(fixed_doc, "runtime-copy").empty());
  CHECK(findings_of(fixed_doc, "api-copy").empty());
}

TEST_CASE(
    "two copies: a plugin linked with musl's static C library carries a second C library next "
    "to glibc; building it against glibc fixes it",
    "[explain][two-copies][runtime-copy]") {
  if (access("/usr/bin/musl-gcc", X_OK) != 0) {
    WARN("no musl-gcc (musl-tools); skipped");
    return;
  }
  const std::string dir = temp_dir("runtime-copy-musl");
  std::ofstream(dir + "/plugin.c") << "#include <stdio.h>\n#include <stdlib.h>\n"
                                      "int plugin_run(int n) {\n"
                                      "  char* p = malloc(16);\n  snprintf(p, 16, \"%d\", n);\n"
                                      "  int r = atoi(p);\n  free(p);\n  return r;\n}\n";
  std::ofstream(dir + "/host.c") << "#include <dlfcn.h>\n#include <stdio.h>\n"
                                    "int main(int argc, char** argv) {\n"
                                    "  void* h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);\n"
                                    "  if (!h) { puts(dlerror()); return 1; }\n"
                                    "  int (*run)(int) = (int (*)(int))dlsym(h, \"plugin_run\");\n"
                                    "  printf(\"%d\\n\", run(123));\n  return 0;\n}\n";
  build("cc", {"-o", dir + "/host", dir + "/host.c", "-ldl"});
  build("musl-gcc",
        {"-shared", "-fPIC", "-o", dir + "/plugin.so", dir + "/plugin.c", "-Wl,-Bstatic", "-lc"});
  const std::string trace = dir + "/run.trace";
  const ProcessResult program = run_traced({dir + "/host", dir + "/plugin.so"}, trace);
  INFO(describe(program));
  REQUIRE(program.exit_code == 0);
  REQUIRE(program.out == "123\n");

  const nlohmann::json doc = explain_json(trace);
  INFO(doc.dump(2));
  const auto copies = findings_of(doc, "runtime-copy");
  REQUIRE(copies.size() == 1);
  const nlohmann::json& f = copies.front();
  CHECK(f["runtime"] == "the C library");
  CHECK(f["object"] == dir + "/plugin.so");
  const std::string libc = f["first"];
  CHECK(libc.ends_with("/libc.so.6"));
  const std::string plugin_symbols = run({"nm", "-D", "--defined-only", dir + "/plugin.so"}).out;
  CHECK(plugin_symbols.find(" " + f["symbol"].get<std::string>() + "\n") != std::string::npos);
  CHECK(plugin_symbols.find(" T free\n") != std::string::npos);
  CHECK(has_evidence(f, "bind to libc.so.6's copy"));
  CHECK(has_evidence(f, "two malloc heaps"));
  REQUIRE(f["fixes"].size() == 1);
  CHECK(f["fixes"][0]["text"].get<std::string>().find(
            "build plugin.so against this system's C library") == 0);

  // The fix: the same plugin built against glibc.
  build("cc", {"-shared", "-fPIC", "-o", dir + "/plugin.so", dir + "/plugin.c"});
  const std::string fixed_trace = dir + "/fixed.trace";
  const ProcessResult fixed = run_traced({dir + "/host", dir + "/plugin.so"}, fixed_trace);
  INFO(describe(fixed));
  REQUIRE(fixed.exit_code == 0);
  CHECK(fixed.out == "123\n");
  CHECK(findings_of(explain_json(fixed_trace), "runtime-copy").empty());
}

TEST_CASE(
    "two copies: what is shared by design stays quiet — C++ vague linkage shared with an "
    "-rdynamic executable, and a few utility functions two sibling libraries both export",
    "[explain][two-copies][api-copy]") {
  const std::string dir = temp_dir("api-copy-quiet");
  // Vague linkage: an inline function with a static, a template instance, a polymorphic class
  // (vtable, typeinfo) in both the -rdynamic executable and the plugin.
  const std::string shared_header =
      "struct Shape { virtual ~Shape() {} virtual int area() const { return 1; } };\n"
      "inline int next_id() { static int id; return ++id; }\n"
      "template <typename T> T twice(T v) { return v + v; }\n";
  std::ofstream(dir + "/shapes.h") << shared_header;
  std::ofstream(dir + "/plugin.cpp") << "#include \"shapes.h\"\n"
                                        "extern \"C\" int plugin_run() {\n"
                                        "  Shape s; return s.area() + next_id() + twice(2);\n}\n";
  build("c++", {"-shared", "-fPIC", "-o", dir + "/plugin.so", dir + "/plugin.cpp"});
  // Sibling libraries: libserver (needed by the host) and libclient (opened RTLD_LOCAL) both
  // export the project's util_* helpers; libclient's API is mostly its own. Its calls of util_add
  // and util_twice bind to libserver's, while util_square, which it never calls through its PLT,
  // is its own: a split, but of a few helpers (like libwayland-client and -server).
  const std::string util =
      "int util_add(int a, int b) { return a + b; }\n"
      "int util_twice(int a) { return util_add(a, a); }\n"
      "int util_square(int a) { return a * a; }\n";
  std::ofstream(dir + "/server.c") << util << "int server_start(void) { return util_twice(1); }\n";
  std::ofstream(dir + "/client.c") << util
                                   << "int client_connect(void) { return util_twice(2); }\n"
                                      "int client_send(void) { return util_add(1, 2); }\n"
                                      "int client_receive(void) { return 4; }\n"
                                      "int client_close(void) { return 5; }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libserver.so", dir + "/server.c"});
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libclient.so", dir + "/client.c"});
  std::ofstream(dir + "/host.cpp")
      << "#include <dlfcn.h>\n#include <cstdio>\n#include \"shapes.h\"\n"
         "extern \"C\" int server_start(void);\n"
         "int main(int argc, char** argv) {\n"
         "  Shape s; int here = s.area() + next_id() + twice(3) + server_start();\n"
         "  void* p = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);\n"
         "  void* c = dlopen(argv[2], RTLD_NOW | RTLD_LOCAL);\n"
         "  if (!p || !c) { std::puts(dlerror()); return 1; }\n"
         "  auto run = (int (*)())dlsym(p, \"plugin_run\");\n"
         "  auto connect = (int (*)())dlsym(c, \"client_connect\");\n"
         "  std::printf(\"%d %d %d\\n\", here, run(), connect());\n  return 0;\n}\n";
  build("c++", {"-rdynamic", "-o", dir + "/host", dir + "/host.cpp", "-L" + dir, "-lserver",
                "-Wl,-rpath," + dir, "-ldl"});
  // The plugin does share them with the executable (else this test proves nothing).
  const std::string exported = run({"nm", "-D", "--defined-only", dir + "/host"}).out;
  CHECK(exported.find(" _ZTV5Shape\n") != std::string::npos);
  CHECK(exported.find(" _Z7next_idv\n") != std::string::npos);

  const std::string trace = dir + "/run.trace";
  const ProcessResult program =
      run_traced({dir + "/host", dir + "/plugin.so", dir + "/libclient.so"}, trace);
  INFO(describe(program));
  REQUIRE(program.exit_code == 0);
  CHECK(program.out == "10 7 4\n");  // the plugin's next_id() is the executable's (unique)
  const nlohmann::json doc = explain_json(trace);
  INFO(doc.dump(2));
  CHECK(findings_of(doc, "api-copy").empty());
  CHECK(findings_of(doc, "runtime-copy").empty());
  CHECK(doc["problems"] == 0);
}

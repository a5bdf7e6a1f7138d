// explain on a real CPython extension module built for another Python: compiled against
// /usr/bin/python3's headers (python3-dev), it calls PyLong_AsInt, a C-API function of CPython
// 3.13 that 3.11 does not have. The import fails with an undefined symbol; explain must say
// "built for another Python", name the running version from the trace, give no RTLD_GLOBAL or
// libpython advice, and its fix (rebuild it for this interpreter) must make the import work.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "harness.h"

using namespace dltrace::test;

namespace {

const char* const kPython = "/usr/bin/python3";

std::string python_output(const std::string& code) {
  const ProcessResult r = run({kPython, "-c", code});
  REQUIRE(r.exit_code == 0);
  std::string out = r.out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

TEST_CASE(
    "python: an extension module built for another Python is explained as such, and "
    "rebuilding it for this interpreter fixes the import",
    "[explain][python][near-miss]") {
  if (access(kPython, X_OK) != 0) {
    WARN("no " << kPython << "; skipped");
    return;
  }
  const std::string include =
      python_output("import sysconfig; print(sysconfig.get_paths()['include'])");
  if (access((include + "/Python.h").c_str(), R_OK) != 0) {
    WARN("no Python.h (python3-dev); skipped");
    return;
  }
  const std::string version = python_output("import sys; print('%d.%d' % sys.version_info[:2])");
  const std::string exported = run({"nm", "-D", "--defined-only",
                                    python_output("import sys, os; "
                                                  "print(os.path.realpath("
                                                  "sys.executable))")})
                                   .out;
  if (exported.find(" PyLong_AsInt\n") != std::string::npos) {
    WARN("this Python has PyLong_AsInt; skipped");
    return;
  }
  const std::string dir = temp_dir("py-abi");
  std::ofstream(dir + "/newmod.c")
      << "#define PY_SSIZE_T_CLEAN\n#include <Python.h>\n"
         "#ifdef FOR_CPYTHON_313\n"
         "PyAPI_FUNC(int) PyLong_AsInt(PyObject*);  /* CPython 3.13's C API */\n"
         "#define AS_INT(o) PyLong_AsInt(o)\n"
         "#else\n#define AS_INT(o) ((int)PyLong_AsLong(o))\n#endif\n"
         "static PyObject* twice(PyObject* self, PyObject* arg) {\n"
         "  return PyLong_FromLong(2L * AS_INT(arg));\n}\n"
         "static PyMethodDef methods[] = {{\"twice\", twice, METH_O, NULL}, {NULL, NULL, 0, "
         "NULL}};\n"
         "static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, \"newmod\", NULL, -1, "
         "methods};\n"
         "PyMODINIT_FUNC PyInit_newmod(void) { return PyModule_Create(&module); }\n";
  auto build = [&](bool for_newer) {
    std::vector<std::string> cmd{"cc", "-shared",          "-fPIC",          "-I" + include,
                                 "-o", dir + "/newmod.so", dir + "/newmod.c"};
    if (for_newer) cmd.push_back("-DFOR_CPYTHON_313");
    const ProcessResult r = run(cmd);
    INFO(describe(r));
    REQUIRE(r.exit_code == 0);
  };
  build(true);
  std::ofstream(dir + "/app.py") << "import newmod\nprint(newmod.twice(21))\n";
  RunOptions opts;
  opts.cwd = dir;
  const std::string trace = dir + "/run.trace";
  const ProcessResult program = run_traced({kPython, dir + "/app.py"}, trace, opts);
  INFO(describe(program));
  REQUIRE(program.exit_code == 1);
  REQUIRE(program.err.find("undefined symbol: PyLong_AsInt") != std::string::npos);

  const ProcessResult text = run({viewer_path(), "explain", "--color=never", trace});
  const ProcessResult j = run({viewer_path(), "explain", "--json", trace});
  INFO(text.out);
  const nlohmann::json doc = nlohmann::json::parse(j.out, nullptr, false);
  REQUIRE_FALSE(doc.is_discarded());
  nlohmann::json f;
  for (const auto& x : doc["findings"])
    if (x["kind"] == "python-abi-mismatch") f = x;
  REQUIRE(f.is_object());
  CHECK(f["severity"] == "error");
  CHECK(f["symbol"] == "PyLong_AsInt");
  CHECK(f["python_version"] == version);
  CHECK(f["needed_by"] == dir + "/newmod.so");
  CHECK(f["title"].get<std::string>().find("newmod.so was built for another Python") == 0);
  CHECK(f["title"].get<std::string>().find("Python " + version) != std::string::npos);
  for (const auto& fix : f["fixes"]) {
    CHECK(fix["text"].get<std::string>().find("RTLD_GLOBAL") == std::string::npos);
    CHECK(fix["config"].is_null());
  }
  CHECK(f["fixes"][0]["text"].get<std::string>().find("rebuild newmod.so for Python " + version +
                                                      " (this interpreter)") == 0);
  // The fix: rebuilt with this interpreter's C API only.
  build(false);
  const ProcessResult fixed = run({kPython, dir + "/app.py"}, opts);
  INFO(describe(fixed));
  CHECK(fixed.exit_code == 0);
  CHECK(fixed.out == "42\n");
}

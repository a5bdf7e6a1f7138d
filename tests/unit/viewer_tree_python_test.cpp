// `dltrace tree` on a Python process: loads under the script statement that caused them, with
// the import inside the package and the dlopen caller on each load's second line
// (synthetic trace with CPython 3.11-shaped stacks: viewer_python_trace.h).
#include <catch2/catch.hpp>
#include <string>

#include "commands/tree_command.h"
#include "viewer_python_trace.h"
#include "viewer_test_trace.h"

using namespace dltrace;
using test::has;
using test::PythonFixture;

TEST_CASE("tree: loads from Python under the statement that caused them",
          "[viewer][python][tree]") {
  PythonFixture fx;
  const std::string out = test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::tree_trace(*fx.reader, {}, false, f).ok()); });
  INFO(out);
  // numpy's two extension modules under `import numpy` (main.py:2), with their total time (the
  // nested libgomp load is inside _umath's 2 ms); each with the import inside numpy.
  CHECK(has(
      out,
      "├── python /app/main.py:2  (2 loads, 3.000 ms incl. constructors)\n"
      "│   ├── /usr/lib/python3/dist-packages/numpy/core/_umath.so  dlopen(RTLD_NOW|RTLD_LOCAL) "
      "2.000 ms incl. constructors (local)\n"
      "│   │   │ caller python3.11; import at "
      "/usr/lib/python3/dist-packages/numpy/core/overrides.py:6\n"
      "│   │   └── /opt/lib/libgomp.so  dlopen(RTLD_NOW|RTLD_LOCAL) 500.0 us incl. constructors "
      "(local)\n"
      "│   │         caller _umath.so; import at "
      "/usr/lib/python3/dist-packages/numpy/core/overrides.py:6; top-level /app/main.py:2\n"
      "│   └── /usr/lib/python3/dist-packages/numpy/random/_pcg64.so  dlopen(RTLD_NOW|RTLD_LOCAL) "
      "1.000 ms incl. constructors (local)\n"
      "│         caller python3.11; import at "
      "/usr/lib/python3/dist-packages/numpy/random/_pickle.py:3\n"));
  // An import in a function: grouped under the call, the function's line on the module.
  CHECK(has(out, "├── python /app/main.py:5  (1 load, 300.0 us incl. constructors)\n"));
  CHECK(has(out, "caller python3.11; import at /app/main.py:4 in load_decimal\n"));
  // ctypes: the CDLL line is the statement; nothing more to say on the library's own line.
  CHECK(has(out,
            "├── python /app/main.py:7  (1 load, 12.0 us incl. constructors)\n"
            "│   └── /usr/lib/x86_64-linux-gnu/libm.so.6  dlopen(RTLD_NOW|RTLD_LOCAL) 12.0 us "
            "incl. constructors (local)\n"
            "│         caller python3.11\n"));
  CHECK(has(out, "├── python /app/main.py:10 in body  (1 load, 40.0 us incl. constructors)\n"));
  // A failed import: counted in its group, the red leaf under it.
  CHECK(has(out,
            "├── python /app/main.py:8  (1 load, 20.0 us incl. constructors, 1 failed)\n"
            "│   └── ✗ dlopen(\"/app/_broken.so\", RTLD_NOW|RTLD_LOCAL) failed: "));
  // No Python stack: directly under its caller, as before.
  CHECK(has(out,
            "└── /opt/lib/libnative.so  dlopen(RTLD_NOW|RTLD_LOCAL) 70.0 us incl. "
            "constructors (local)\n"
            "      caller python3.11\n"));
  // Load order of the groups: main.py:1 (seq 1) before main.py:2 (seq 2) before main.py:5.
  CHECK(out.find("python /app/main.py:1 ") < out.find("python /app/main.py:2 "));
  CHECK(out.find("python /app/main.py:2 ") < out.find("python /app/main.py:5 "));
}

TEST_CASE("tree: statement lines in colour: dim label, bold file:line", "[viewer][python][tree]") {
  test::ScratchDir dir;
  const std::string path = dir.file("py.trace");
  REQUIRE(test::write_python_trace(path) == "");
  std::string error;
  auto reader = TraceReader::open(path, &error);
  REQUIRE(reader);
  const std::string out = test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::tree_trace(*reader, {}, true, f).ok()); });
  CHECK(has(out, "\x1b[2mpython\x1b[0m \x1b[1m/app/main.py:2\x1b[0m  \x1b[2m(2 loads"));
}

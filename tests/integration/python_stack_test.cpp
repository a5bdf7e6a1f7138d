// Python stacks: dl* calls made by a thread that holds the GIL carry the interpreter's stack
// (innermost first); calls from other threads carry none; a process without Python has none.
// Fixtures: tests/fixtures/python_stacks (the expected lines are found by their MARK comments).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "dltrace/format.h"
#include "harness.h"

using namespace dltrace::test;
using nlohmann::json;

namespace {

const char* const kPython = "/usr/bin/python3";

std::string dir() {
  return fixture("python_stacks");
}

// 1-based line of the first line of `path` containing "MARK:<marker>"; 0 if none.
int marker_line(const std::string& path, const std::string& marker) {
  std::ifstream in(path);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n)
    if (line.find("MARK:" + marker) != std::string::npos) return n;
  return 0;
}

std::string frame_text(const json& f) {
  std::ostringstream s;
  s << f["file"].get<std::string>() << ":" << f["line"].get<int>() << ":"
    << f["function"].get<std::string>();
  return s.str();
}

// "file:line:function" for `file` (relative to the fixture dir) at its `marker` line.
std::string expected(const std::string& file, const std::string& marker,
                     const std::string& function) {
  const std::string path = dir() + "/" + file;
  const int line = marker_line(path, marker);
  REQUIRE(line > 0);
  return path + ":" + std::to_string(line) + ":" + function;
}

// The frames of an event's python_stack that are in the fixture's own files, innermost first
// (importlib's and ctypes' frames sit inside them).
std::vector<std::string> fixture_frames(const json& event) {
  std::vector<std::string> out;
  const json& ps = event["python_stack"];
  if (!ps.is_array()) return out;
  for (const json& f : ps)
    if (f["file"].get<std::string>().rfind(dir() + "/", 0) == 0) out.push_back(frame_text(f));
  return out;
}

// The only dlopen event whose file contains `needle`.
const json* dlopen_of(const json& trace, const std::string& needle) {
  const json* found = nullptr;
  for (const json& e : trace["events"]) {
    if (e["call"] != "dlopen" || !e["file"].is_string()) continue;
    if (e["file"].get<std::string>().find(needle) == std::string::npos) continue;
    if (found != nullptr) {
      FAIL_CHECK("more than one dlopen of " << needle);
      return nullptr;
    }
    found = &e;
  }
  return found;
}

uint32_t recorder_flags(const std::string& trace_path) {
  dltrace::format::FileHeader h{};
  std::FILE* f = std::fopen(trace_path.c_str(), "rb");
  REQUIRE(f != nullptr);
  const size_t n = std::fread(&h, sizeof h, 1, f);
  std::fclose(f);
  REQUIRE(n == 1);
  return h.recorder_flags;
}

bool has_python() {
  if (access(kPython, X_OK) == 0) return true;
  WARN("no " << kPython << "; skipped");
  return false;
}

}  // namespace

TEST_CASE("dlopen from Python code records the Python stack at the calling line", "[python]") {
  if (!has_python()) return;
  settle_fixtures();
  DifferentialResult d = run_differential({kPython, dir() + "/main.py"});
  INFO("untraced:\n" << describe(d.plain) << "\ntraced:\n" << describe(d.traced));
  REQUIRE(d.plain.exit_code == 0);
  CHECK(d.plain.out.find("native held 1\n") != std::string::npos);
  CHECK(d.same());
  const json j = export_json(d.trace_path);
  CHECK((recorder_flags(d.trace_path) & dltrace::format::kRecorderPythonStacks) != 0);

  SECTION("nested package import: inner module, outer module, script") {
    const json* e = dlopen_of(j, "/_json.");
    REQUIRE(e != nullptr);
    INFO(e->dump());
    const std::vector<std::string> frames = fixture_frames(*e);
    REQUIRE(frames.size() >= 3);
    CHECK(frames[0] == expected("pystack_pkg/inner.py", "inner-import", "<module>"));
    CHECK(frames[1] == expected("pystack_pkg/outer.py", "outer-import", "<module>"));
    CHECK(frames[2] == expected("main.py", "main-import", "<module>"));
    // importlib's own frames are there too, innermost of all.
    CHECK((*e)["python_stack"][0]["file"].get<std::string>().find("importlib") !=
          std::string::npos);
    // The extension's init lookup happens under the same stack.
    bool init_lookup = false;
    for (const json& s : j["events"])
      if (s["call"] == "dlsym" && s["symbol"] == "PyInit__json") {
        init_lookup = true;
        const std::vector<std::string> sf = fixture_frames(s);
        REQUIRE(!sf.empty());
        CHECK(sf[0] == frames[0]);
      }
    CHECK(init_lookup);
  }
  SECTION("ctypes.CDLL inside a function: the function's line, then its caller") {
    const json* e = dlopen_of(j, "libm.so.6");
    REQUIRE(e != nullptr);
    INFO(e->dump());
    const std::vector<std::string> frames = fixture_frames(*e);
    REQUIRE(frames.size() == 2);
    CHECK(frames[0] == expected("main.py", "ctypes-load", "load_libm"));
    // ctypes' CDLL.__init__ is the innermost frame.
    CHECK((*e)["python_stack"][0]["function"] == "__init__");
  }
  SECTION("an import inside a function") {
    const json* e = dlopen_of(j, "/_decimal.");
    REQUIRE(e != nullptr);
    INFO(e->dump());
    const std::vector<std::string> frames = fixture_frames(*e);
    REQUIRE(frames.size() == 2);
    CHECK(frames[0] == expected("main.py", "local-import", "local_import"));
  }
  SECTION("a threading.Thread has its own stack, starting at the thread's function") {
    const json* e = dlopen_of(j, "libresolv.so.2");
    const json* m = dlopen_of(j, "libm.so.6");
    REQUIRE(e != nullptr);
    REQUIRE(m != nullptr);
    INFO(e->dump());
    CHECK((*e)["tid"] != (*m)["tid"]);
    const std::vector<std::string> frames = fixture_frames(*e);
    REQUIRE(frames.size() == 1);
    CHECK(frames[0] == expected("main.py", "thread-load", "thread_body"));
    const std::string outer = (*e)["python_stack"].back()["file"].get<std::string>();
    CHECK(outer.find("threading.py") != std::string::npos);
  }
  SECTION("a native thread has no Python stack, with or without the GIL held elsewhere") {
    for (const char* name : {"libanl.so.1", "libBrokenLocale.so.1"}) {
      const json* e = dlopen_of(j, name);
      REQUIRE(e != nullptr);
      INFO(e->dump());
      CHECK((*e)["ok"] == true);
      CHECK(((*e)["python_stack"].is_null() || (*e)["python_stack"].empty()));
      CHECK((*e)["stack"].is_array());  // the native stack is still there
    }
    // The library itself was loaded from Python.
    for (const json& e : j["events"])
      if (e["call"] == "dlopen" && e["file"].is_string() &&
          e["file"].get<std::string>().find("libpystack_native.so") != std::string::npos)
        CHECK(fixture_frames(e).size() == 1);
  }
}

TEST_CASE("import numpy under the preload: same output, extension loads carry Python stacks",
          "[python][differential]") {
  if (!has_python()) return;
  DifferentialResult d =
      run_differential({kPython, "-c",
                        "import numpy\nprint(numpy.__version__, numpy.arange(10).sum(), "
                        "numpy.linalg.det(numpy.eye(3)))"});
  INFO("untraced:\n" << describe(d.plain) << "\ntraced:\n" << describe(d.traced));
  if (d.plain.exit_code != 0) {
    WARN("numpy not importable here; skipped");
    return;
  }
  CHECK(d.same());
  const json j = export_json(d.trace_path);
  int numpy_loads = 0;
  for (const json& e : j["events"]) {
    if (e["call"] != "dlopen" || !e["file"].is_string()) continue;
    if (e["file"].get<std::string>().find("/numpy/") == std::string::npos) continue;
    ++numpy_loads;
    INFO(e.dump());
    REQUIRE(e["python_stack"].is_array());
    REQUIRE(!e["python_stack"].empty());
    CHECK(e["python_stack"].back()["file"] == "<string>");
    CHECK(e["python_stack"].back()["line"] == 1);
  }
  CHECK(numpy_loads > 0);
}

TEST_CASE("an embedded libpython dlopen'ed later is found: its imports carry Python stacks",
          "[python]") {
  const std::string host = fixture("embedded_python/embedpy_host");
  if (access(host.c_str(), X_OK) != 0) {
    WARN("no embedded_python fixture; skipped");
    return;
  }
  const std::string tmp = temp_dir("pystack_embed");
  const std::string trace = tmp + "/t.trace";
  // The host does not link libpython: the first events happen before Python exists.
  ProcessResult r = run_traced({host, "import _json"}, trace);
  INFO(describe(r));
  const json j = export_json(trace);
  const json* e = dlopen_of(j, "/_json.");
  REQUIRE(e != nullptr);
  INFO(e->dump());
  REQUIRE((*e)["python_stack"].is_array());
  REQUIRE(!(*e)["python_stack"].empty());
  CHECK((*e)["python_stack"].back()["file"] == "<string>");
  const json* lib = dlopen_of(j, "libembedpy.so");
  REQUIRE(lib != nullptr);
  CHECK(((*lib)["python_stack"].is_null() || (*lib)["python_stack"].empty()));
  CHECK((recorder_flags(trace) & dltrace::format::kRecorderPythonStacks) != 0);
}

TEST_CASE("a process without Python records no Python stacks", "[python]") {
  const std::string tmp = temp_dir("pystack_none");
  const std::string trace = tmp + "/t.trace";
  ProcessResult r = run_traced({fixture("rt_dlopen_loop"), "3"}, trace);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  const json j = export_json(trace);
  int events = 0;
  for (const json& e : j["events"]) {
    ++events;
    CHECK((e["python_stack"].is_null() || e["python_stack"].empty()));
  }
  CHECK(events >= 9);
  CHECK((recorder_flags(trace) & dltrace::format::kRecorderPythonStacks) == 0);
}

// Other CPython versions (3.7/3.8 through the fixed frame layout, 3.9+ through the accessors):
// DLTRACE_TEST_EXTRA_PYTHONS=/path/to/python3.8:/path/to/python3.13 (full paths to interpreters,
// not pyenv shims). Skipped when unset.
TEST_CASE("other CPython versions: same stacks for the fixture script", "[python]") {
  const char* extra = getenv("DLTRACE_TEST_EXTRA_PYTHONS");
  if (extra == nullptr || *extra == '\0') return;
  settle_fixtures();
  std::stringstream list(extra);
  std::string python;
  while (std::getline(list, python, ':')) {
    if (python.empty()) continue;
    INFO("interpreter " << python);
    DifferentialResult d = run_differential({python, dir() + "/main.py"});
    INFO("untraced:\n" << describe(d.plain) << "\ntraced:\n" << describe(d.traced));
    REQUIRE(d.plain.exit_code == 0);
    CHECK(d.same());
    const json j = export_json(d.trace_path);
    const json* e = dlopen_of(j, "/_json.");
    REQUIRE(e != nullptr);
    std::vector<std::string> frames = fixture_frames(*e);
    REQUIRE(frames.size() >= 3);
    CHECK(frames[0] == expected("pystack_pkg/inner.py", "inner-import", "<module>"));
    CHECK(frames[1] == expected("pystack_pkg/outer.py", "outer-import", "<module>"));
    e = dlopen_of(j, "libm.so.6");
    REQUIRE(e != nullptr);
    frames = fixture_frames(*e);
    REQUIRE(!frames.empty());
    CHECK(frames[0] == expected("main.py", "ctypes-load", "load_libm"));
    e = dlopen_of(j, "libresolv.so.2");
    REQUIRE(e != nullptr);
    frames = fixture_frames(*e);
    REQUIRE(!frames.empty());
    CHECK(frames[0] == expected("main.py", "thread-load", "thread_body"));
    for (const char* name : {"libanl.so.1", "libBrokenLocale.so.1"}) {
      e = dlopen_of(j, name);
      REQUIRE(e != nullptr);
      CHECK(((*e)["python_stack"].is_null() || (*e)["python_stack"].empty()));
    }
    CHECK((recorder_flags(d.trace_path) & dltrace::format::kRecorderPythonStacks) != 0);
  }
}

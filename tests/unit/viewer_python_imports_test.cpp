// Import attribution: which Python line caused each load (analysis/python_imports), and how
// stats shows it, on a synthetic trace with CPython 3.11-shaped stacks (viewer_python_trace.h).
// The tree's side: viewer_tree_python_test.cpp.
#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/python_imports.h"
#include "commands/stats_command.h"
#include "model/trace_model.h"
#include "viewer_python_trace.h"
#include "viewer_test_trace.h"

using namespace dltrace;
using test::has;
using viewer::PyLine;

using test::PythonFixture;

namespace {

constexpr size_t kAll = std::numeric_limits<size_t>::max();

const viewer::PyLoad* load_at(const viewer::PythonLoads& loads, uint64_t seq) {
  for (const auto& l : loads.slowest)
    if (l.seq == seq) return &l;
  return nullptr;
}

}  // namespace

TEST_CASE("python frames: import machinery and the standard library", "[viewer][python]") {
  using viewer::is_import_machinery;
  using viewer::is_stdlib_file;
  CHECK(is_import_machinery("<frozen importlib._bootstrap>", "_find_and_load"));
  CHECK(is_import_machinery("<frozen importlib._bootstrap_external>", "create_module"));
  CHECK(is_import_machinery("/usr/lib/python3.11/importlib/_bootstrap.py", "_load"));
  CHECK(is_import_machinery("/usr/lib/python3.11/importlib/__init__.py", "import_module"));
  CHECK_FALSE(is_import_machinery("/usr/lib/python3.11/importlib/__init__.py", "reload"));
  CHECK(is_import_machinery("/usr/lib/python3.11/ctypes/__init__.py", "__init__"));
  CHECK(is_import_machinery("/usr/lib/python3.11/ctypes/__init__.py", "LoadLibrary"));
  // ctypes' module body imports _ctypes: a real import statement.
  CHECK_FALSE(is_import_machinery("/usr/lib/python3.11/ctypes/__init__.py", "<module>"));
  CHECK_FALSE(is_import_machinery("/app/main.py", "<module>"));
  CHECK_FALSE(is_import_machinery("<frozen runpy>", "_run_code"));

  CHECK(is_stdlib_file("/usr/lib/python3.11/threading.py"));
  CHECK(is_stdlib_file("/usr/local/lib/python3.13/multiprocessing/process.py"));
  CHECK_FALSE(is_stdlib_file("/usr/lib/python3/dist-packages/numpy/__init__.py"));
  CHECK_FALSE(is_stdlib_file("/home/u/venv/lib/python3.12/site-packages/scipy/__init__.py"));
  CHECK_FALSE(is_stdlib_file("/home/u/python3.11/app.py"));  // a directory that only looks like it
  CHECK_FALSE(is_stdlib_file("/app/main.py"));
  CHECK_FALSE(is_stdlib_file("<string>"));
}

TEST_CASE("python loads: the import statement and the top-level statement of each load",
          "[viewer][python]") {
  PythonFixture fx;
  viewer::TraceModel model(*fx.reader);
  const viewer::PythonLoads loads = viewer::collect_python_loads(*fx.reader, model, kAll);
  CHECK(loads.count == 8);  // seq 9 has no Python stack
  REQUIRE(loads.slowest.size() == 8);
  CHECK(load_at(loads, 9) == nullptr);

  const auto* json = load_at(loads, 1);
  REQUIRE(json);
  CHECK(json->where.via_import);
  CHECK(json->where.site == PyLine{"/usr/lib/python3.11/json/scanner.py", 5, "<module>"});
  CHECK(json->where.top == PyLine{"/app/main.py", 1, "<module>"});
  CHECK(json->duration_ns == 150000);

  const auto* umath = load_at(loads, 2);
  REQUIRE(umath);
  CHECK(umath->where.site ==
        PyLine{"/usr/lib/python3/dist-packages/numpy/core/overrides.py", 6, "<module>"});
  CHECK(umath->where.top == PyLine{"/app/main.py", 2, "<module>"});
  CHECK(umath->new_objects == 2);
  CHECK_FALSE(umath->nested);
  const auto* gomp = load_at(loads, 3);
  REQUIRE(gomp);
  CHECK(gomp->nested);

  const auto* dec = load_at(loads, 5);
  REQUIRE(dec);
  CHECK(dec->where.site == PyLine{"/app/main.py", 4, "load_decimal"});
  CHECK(dec->where.top == PyLine{"/app/main.py", 5, "<module>"});
  CHECK(viewer::py_line_text(*dec->where.site) == "/app/main.py:4 in load_decimal");
  CHECK(viewer::py_line_text(*dec->where.top) == "/app/main.py:5");

  const auto* m = load_at(loads, 6);  // ctypes: the CDLL line, not ctypes' own code
  REQUIRE(m);
  CHECK_FALSE(m->where.via_import);
  CHECK(m->where.site == PyLine{"/app/main.py", 7, "<module>"});
  CHECK(m->where.top == m->where.site);

  const auto* z = load_at(loads, 7);  // threading's bootstrap is not the top-level statement
  REQUIRE(z);
  CHECK(z->where.top == PyLine{"/app/main.py", 10, "body"});

  const auto* broken = load_at(loads, 8);
  REQUIRE(broken);
  CHECK_FALSE(broken->ok);
  CHECK(broken->object == format::kNoId);

  SECTION("native load time per top-level statement, most first; nested loads count once") {
    REQUIRE(loads.top_level.size() == 6);
    const auto& numpy = loads.top_level[0];
    CHECK(numpy.line == PyLine{"/app/main.py", 2, "<module>"});
    CHECK(numpy.total_ns == 3000000);  // 2 ms + 1 ms; the nested 500 us is inside the 2 ms
    CHECK(numpy.loads == 3);
    CHECK(numpy.objects == 4);
    std::vector<int> order;
    for (const auto& t : loads.top_level) order.push_back(t.line.line);
    CHECK(order == std::vector<int>{2, 5, 1, 10, 8, 7});
    CHECK(loads.top_level[4].failed == 1);
    CHECK(loads.top_level[4].total_ns == 20000);
  }
}

TEST_CASE("python loads: a stack at the recorder's frame limit is marked truncated",
          "[viewer][python]") {
  PythonFixture fx;
  std::optional<format::EventSlot> e = fx.reader->event(1);
  REQUIRE(e);
  const auto frames = fx.reader->py_stack(e->py_stack);
  REQUIRE(!frames.empty());
  std::vector<format::PyFrame> deep;
  while (deep.size() < viewer::kRecordedPythonFrames)
    deep.push_back(frames[deep.size() % frames.size()]);
  CHECK(viewer::attribute_python_stack(*fx.reader, deep).truncated);
  CHECK_FALSE(viewer::attribute_python_stack(*fx.reader, frames).truncated);
  CHECK_FALSE(viewer::attribute_python_stack(*fx.reader, {}).site);
}

TEST_CASE(
    "python loads: a cut stack gets its top-level statement from a complete stack through "
    "a module frame they share",
    "[viewer][python]") {
  PythonFixture fx;
  // numpy's _umath load (seq 2): importlib x4, overrides.py <module>, importlib,
  // numpy/__init__.py <module>, importlib, main.py:2.
  const auto umath = fx.reader->py_stack(fx.reader->event(2)->py_stack);
  REQUIRE(umath.size() == 9);
  // A deeper import under numpy/__init__.py, cut at the limit below main.py.
  std::vector<format::PyFrame> cut(viewer::kRecordedPythonFrames - 4, umath[0]);
  cut.insert(cut.end(), {umath[4], umath[5], umath[6], umath[7]});
  viewer::PyAttribution a = viewer::attribute_python_stack(*fx.reader, cut);
  REQUIRE(a.truncated);
  CHECK(a.anchor == "/usr/lib/python3/dist-packages/numpy/__init__.py");
  CHECK(a.top->file != "/app/main.py");

  viewer::TopLevelResolver resolver;
  CHECK_FALSE(resolver.resolve(a));  // nothing known yet
  resolver.add(*fx.reader, cut, a);  // a cut stack teaches nothing
  CHECK_FALSE(resolver.resolve(a));
  resolver.add(*fx.reader, umath, viewer::attribute_python_stack(*fx.reader, umath));
  CHECK(resolver.resolve(a));
  CHECK(a.top == PyLine{"/app/main.py", 2, "<module>"});
  CHECK_FALSE(a.truncated);

  // A cut stack under a module no complete stack holds stays cut.
  std::vector<format::PyFrame> other(viewer::kRecordedPythonFrames - 1, umath[0]);
  other.push_back(umath[4]);  // overrides.py <module>: in umath's stack too...
  viewer::PyAttribution b = viewer::attribute_python_stack(*fx.reader, other);
  CHECK(resolver.resolve(b));  // ...so it resolves
  std::vector<format::PyFrame> unknown(viewer::kRecordedPythonFrames, umath[0]);
  viewer::PyAttribution c = viewer::attribute_python_stack(*fx.reader, unknown);
  CHECK(c.anchor.empty());
  CHECK_FALSE(resolver.resolve(c));
  CHECK(c.truncated);
}

TEST_CASE("python loads: summed per stack while streaming; the N slowest, ties to the earlier call",
          "[viewer][python]") {
  // 3000 imports from two stacks: a cut one (first used before the complete stack that tells
  // its top-level statement) and a complete one, 10/20/30 us in turn.
  test::ScratchDir dir;
  const std::string path = dir.file("many.trace");
  {
    preload::TraceWriter w;
    REQUIRE(test::open_writer(w, path, 4 << 20, 8) == "");
    const char* argv[] = {"python3", "main.py"};
    w.write_process("/usr/bin/python3.11", "/app", 2, argv);
    auto frame = [&](const char* file, int line, const char* function) {
      return format::PyFrame{w.intern_string(file), w.intern_string(function), line, 0};
    };
    const format::PyFrame import = frame("<frozen importlib._bootstrap>", 241, "_call");
    const format::PyFrame pkg = frame("/app/pkg/__init__.py", 4, "<module>");
    const std::vector<format::PyFrame> complete = {import, frame("/app/pkg/fast.py", 2, "<module>"),
                                                   import, pkg,
                                                   import, frame("/app/main.py", 3, "<module>")};
    std::vector<format::PyFrame> cut(viewer::kRecordedPythonFrames - 2,
                                     frame("/app/pkg/deep.py", 9, "<module>"));
    cut.insert(cut.end(), {import, pkg});
    const uint32_t cut_id = w.intern_py_stack(cut.data(), uint32_t(cut.size()));
    const uint32_t complete_id = w.intern_py_stack(complete.data(), uint32_t(complete.size()));
    const uint32_t name = w.intern_string("_fast.so");
    for (int i = 0; i < 3000; ++i) {
      format::EventSlot e = test::make_event(w.reserve_seq(), name);
      e.call = uint16_t(format::CallKind::kDlopen);
      e.duration_ns = 10000 * uint64_t(1 + i % 3);
      e.py_stack = i % 2 ? complete_id : cut_id;
      w.commit(e);
    }
    w.set_end(format::EndKind::kExit, 0);
  }
  std::string error;
  auto reader = TraceReader::open(path, &error);
  REQUIRE(reader);
  viewer::TraceModel model(*reader);
  const viewer::PythonLoads loads = viewer::collect_python_loads(*reader, model, 4);
  CHECK(loads.count == 3000);
  REQUIRE(loads.top_level.size() == 1);
  CHECK(loads.top_level[0].line == PyLine{"/app/main.py", 3, "<module>"});
  CHECK_FALSE(loads.top_level[0].truncated);  // the cut stack resolved through pkg/__init__.py
  CHECK(loads.top_level[0].loads == 3000);
  CHECK(loads.top_level[0].total_ns == 1000 * (10000 + 20000 + 30000));
  std::vector<uint64_t> seqs;
  for (const auto& l : loads.slowest) {
    CHECK(l.duration_ns == 30000);
    CHECK(l.where.top == PyLine{"/app/main.py", 3, "<module>"});
    seqs.push_back(l.seq);
  }
  CHECK(seqs == std::vector<uint64_t>{3, 6, 9, 12});
  CHECK(loads.slowest[0].where.site == PyLine{"/app/pkg/deep.py", 9, "<module>"});
  CHECK(loads.slowest[1].where.site == PyLine{"/app/pkg/fast.py", 2, "<module>"});
  CHECK(viewer::collect_python_loads(*reader, model, 0).slowest.empty());
}

TEST_CASE("source lines: read once, trimmed; pseudo-files and missing lines give nothing",
          "[viewer][python]") {
  test::ScratchDir dir;
  { std::ofstream(dir.file("app.py")) << "import os\n    import numpy  # top\n\n"; }
  viewer::SourceLines lines(dir.path());
  CHECK(lines.line(dir.file("app.py"), 2) == "import numpy  # top");
  CHECK(lines.line("app.py", 1) == "import os");  // relative to the process's cwd
  CHECK_FALSE(lines.line("app.py", 3));           // blank
  CHECK_FALSE(lines.line("app.py", 9));
  CHECK_FALSE(lines.line("<string>", 1));
  CHECK_FALSE(lines.line(dir.file("missing.py"), 1));
}

TEST_CASE("stats: native load time per top-level import, and the slowest loads from Python",
          "[viewer][python][stats]") {
  PythonFixture fx;
  const std::string out = test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::stats_trace(*fx.reader, {}, f).ok()); });
  INFO(out);
  CHECK(has(out,
            "native load time per top-level import: 6 of 6 statement(s), 8 dlopen call(s) from "
            "Python\n"));
  CHECK(has(out,
            "         total  calls  objects  statement\n"
            "      3.000 ms      3        4  /app/main.py:2\n"
            "      300.0 us      1        1  /app/main.py:5\n"
            "      150.0 us      1        1  /app/main.py:1\n"
            "       40.0 us      1        1  /app/main.py:10 in body\n"
            "       20.0 us      1        0  /app/main.py:8 (1 failed)\n"
            "       12.0 us      1        1  /app/main.py:7\n"));
  CHECK(has(out, "slowest 8 load(s) from Python (of 8), with the import that caused each\n"));
  CHECK(has(out,
            "      2.000 ms        2  _umath.so  <- import at "
            "/usr/lib/python3/dist-packages/numpy/core/overrides.py:6 <- /app/main.py:2\n"));
  CHECK(has(out, "       12.0 us        6  libm.so.6  <- /app/main.py:7\n"));
  CHECK(has(out, "       20.0 us        8  _broken.so (failed)  <- import at /app/main.py:8\n"));
  CHECK_FALSE(has(out, "libnative.so  <-"));  // no Python stack: not a load from Python

  viewer::StatsOptions top2;
  top2.top = 2;
  const std::string two = test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::stats_trace(*fx.reader, top2, f).ok()); });
  CHECK(has(two, "native load time per top-level import: 2 of 6 statement(s)"));
  CHECK_FALSE(has(two, "/app/main.py:1\n"));

  viewer::StatsOptions json;
  json.json = true;
  const auto j = nlohmann::json::parse(test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::stats_trace(*fx.reader, json, f).ok()); }));
  CHECK(j["python_loads"] == 8);
  REQUIRE(j["top_level_imports"].size() == 6);
  CHECK(j["top_level_imports"][0]["statement"]["file"] == "/app/main.py");
  CHECK(j["top_level_imports"][0]["statement"]["line"] == 2);
  CHECK(j["top_level_imports"][0]["total_ns"] == 3000000);
  CHECK(j["top_level_imports"][0]["loads"] == 3);
  const auto& slowest = j["slowest_python_loads"][0];
  CHECK(slowest["seq"] == 2);
  CHECK(slowest["via_import"] == true);
  CHECK(slowest["import"]["file"] == "/usr/lib/python3/dist-packages/numpy/core/overrides.py");
  CHECK(slowest["top_level"]["line"] == 2);
}

TEST_CASE("stats: a process without Python code has no Python sections",
          "[viewer][python][stats]") {
  test::ScratchDir dir;
  const std::string path = dir.file("c.trace");
  {
    preload::TraceWriter w;
    REQUIRE(test::open_writer(w, path, 1 << 20, 8) == "");
    const char* argv[] = {"host"};
    w.write_process("/usr/bin/host", "/", 1, argv);
    format::EventSlot e = test::make_event(w.reserve_seq(), w.intern_string("libplugin.so"));
    e.call = uint16_t(format::CallKind::kDlopen);
    e.flags = e.effective_flags = RTLD_NOW;
    w.commit(e);
    w.set_end(format::EndKind::kExit, 0);
  }
  std::string error;
  auto reader = TraceReader::open(path, &error);
  REQUIRE(reader);
  const std::string out =
      test::rendered_text([&](std::FILE* f) { CHECK(viewer::stats_trace(*reader, {}, f).ok()); });
  INFO(out);
  CHECK(has(out, "dlopen(\"libplugin.so\")"));
  CHECK_FALSE(has(out, "Python"));
  CHECK_FALSE(has(out, "top-level import"));
}

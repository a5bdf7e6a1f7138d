// A synthetic trace of a Python process for the import-attribution tests, written with the
// recorder's own TraceWriter. The Python stacks have the shape CPython 3.11 really records
// (innermost first, importlib's frozen bootstrap frames between the import statements):
//
//   seq 1  _json.so      import at json/scanner.py:5       <- /app/main.py:1   150 us
//   seq 2  _umath.so     import at numpy/core/overrides.py:6 <- /app/main.py:2 2 ms, needs libblas
//   seq 3  libgomp.so    dlopen'ed by _umath.so's constructor (nested in seq 2), 500 us
//   seq 4  _pcg64.so     import at numpy/random/_pickle.py:3 <- /app/main.py:2 1 ms
//   seq 5  _decimal.so   import at /app/main.py:4 in load_decimal <- /app/main.py:5  300 us
//   seq 6  libm.so.6     ctypes.CDLL at /app/main.py:7                             12 us
//   seq 7  libz.so.1     ctypes.CDLL in a threading.Thread: /app/main.py:10 in body 40 us
//   seq 8  _broken.so    import at /app/main.py:8 fails (undefined symbol)         20 us
//   seq 9  libnative.so  no Python stack (a native thread)                         70 us
#pragma once

#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <initializer_list>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "trace_test_support.h"

namespace dltrace::test {

inline std::string write_python_trace(const std::string& path) {
  preload::TraceWriter w;
  if (std::string err = open_writer(w, path, 1 << 20, 8); !err.empty()) return err;
  const char* argv[] = {"/usr/bin/python3", "main.py"};
  w.write_process("/usr/bin/python3.11", "/app", 2, argv);

  auto object = [&](const char* p, format::ObjectCause cause, uint32_t parent, uint64_t seq) {
    const uint32_t flags =
        cause == format::ObjectCause::kDlopen ? 0u : uint32_t{format::kObjectGlobal};
    return test::add_object(w, p, cause, flags, parent, seq);
  };
  using C = format::ObjectCause;
  using Frames = std::initializer_list<std::tuple<const char*, int, const char*>>;
  // What importlib puts between an import statement and the dlopen of an extension module.
  auto import_frames = [](const char* file, int line, const char* function, Frames outer) {
    std::vector<std::tuple<const char*, int, const char*>> v = {
        {"<frozen importlib._bootstrap>", 241, "_call_with_frames_removed"},
        {"<frozen importlib._bootstrap_external>", 1233, "create_module"},
        {"<frozen importlib._bootstrap>", 573, "module_from_spec"},
        {"<frozen importlib._bootstrap>", 1178, "_find_and_load"},
        {file, line, function}};
    for (const auto& f : outer) v.push_back(f);
    return v;
  };
  auto py_v = [&](const std::vector<std::tuple<const char*, int, const char*>>& frames) {
    std::vector<format::PyFrame> v;
    for (const auto& [file, line, function] : frames) {
      v.push_back({w.intern_string(file), w.intern_string(function), line, 0});
    }
    return w.intern_py_stack(v.data(), uint32_t(v.size()));
  };
  auto py = [&](Frames frames) { return py_v({frames.begin(), frames.end()}); };
  auto open_event = [&](uint64_t seq, const char* file, uint64_t ns, uint32_t py_stack,
                        uint32_t caller, uint32_t opened) {
    format::EventSlot e = make_event(seq, w.intern_string(file));
    e.call = uint16_t(format::CallKind::kDlopen);
    e.flags = e.effective_flags = RTLD_NOW;
    e.duration_ns = ns;
    e.py_stack = py_stack;
    e.caller_object = caller;
    e.object = opened;
    e.handle = 0x5000 + seq;
    return e;
  };

  const uint32_t exe = object("/usr/bin/python3.11", C::kStartup, format::kNoId, 0);
  object("/lib/x86_64-linux-gnu/libc.so.6", C::kNeeded, exe, 0);

  // seq 1: import json -> json/decoder.py -> json/scanner.py imports _json.
  const uint64_t json_seq = w.reserve_seq();
  const uint32_t json =
      object("/usr/lib/python3.11/lib-dynload/_json.so", C::kDlopen, exe, json_seq);
  const auto json_stack =
      py_v(import_frames("/usr/lib/python3.11/json/scanner.py", 5, "<module>",
                         {{"<frozen importlib._bootstrap>", 1178, "_find_and_load"},
                          {"/usr/lib/python3.11/json/__init__.py", 106, "<module>"},
                          {"<frozen importlib._bootstrap>", 1178, "_find_and_load"},
                          {"/app/main.py", 1, "<module>"}}));
  format::EventSlot json_open = open_event(json_seq, "/usr/lib/python3.11/lib-dynload/_json.so",
                                           150000, json_stack, exe, json);
  w.commit(json_open);

  // seq 2 (+ nested seq 3): import numpy -> numpy/core/overrides.py imports _umath.
  const uint64_t umath_seq = w.reserve_seq();
  const uint32_t umath =
      object("/usr/lib/python3/dist-packages/numpy/core/_umath.so", C::kDlopen, exe, umath_seq);
  object("/usr/lib/x86_64-linux-gnu/libblas.so.3", C::kNeeded, umath, umath_seq);
  const auto umath_stack =
      py_v(import_frames("/usr/lib/python3/dist-packages/numpy/core/overrides.py", 6, "<module>",
                         {{"<frozen importlib._bootstrap>", 1178, "_find_and_load"},
                          {"/usr/lib/python3/dist-packages/numpy/__init__.py", 141, "<module>"},
                          {"<frozen importlib._bootstrap>", 1178, "_find_and_load"},
                          {"/app/main.py", 2, "<module>"}}));
  const uint64_t gomp_seq = w.reserve_seq();
  const uint32_t gomp = object("/opt/lib/libgomp.so", C::kDlopen, umath, gomp_seq);
  format::EventSlot gomp_open =
      open_event(gomp_seq, "libgomp.so", 500000, umath_stack, umath, gomp);
  gomp_open.parent_seq = umath_seq;
  gomp_open.bits |= format::kEventNested;
  w.commit(gomp_open);
  format::EventSlot umath_open =
      open_event(umath_seq, "/usr/lib/python3/dist-packages/numpy/core/_umath.so", 2000000,
                 umath_stack, exe, umath);
  w.commit(umath_open);

  // seq 4: numpy/random/_pickle.py imports _pcg64, still under main.py:2.
  const uint64_t pcg_seq = w.reserve_seq();
  const uint32_t pcg =
      object("/usr/lib/python3/dist-packages/numpy/random/_pcg64.so", C::kDlopen, exe, pcg_seq);
  const auto pcg_stack =
      py_v(import_frames("/usr/lib/python3/dist-packages/numpy/random/_pickle.py", 3, "<module>",
                         {{"<frozen importlib._bootstrap>", 1178, "_find_and_load"},
                          {"/usr/lib/python3/dist-packages/numpy/__init__.py", 152, "<module>"},
                          {"<frozen importlib._bootstrap>", 1178, "_find_and_load"},
                          {"/app/main.py", 2, "<module>"}}));
  format::EventSlot pcg_open =
      open_event(pcg_seq, "/usr/lib/python3/dist-packages/numpy/random/_pcg64.so", 1000000,
                 pcg_stack, exe, pcg);
  w.commit(pcg_open);

  // seq 5: `import _decimal` inside load_decimal(), called at main.py:5.
  const uint64_t dec_seq = w.reserve_seq();
  const uint32_t dec =
      object("/usr/lib/python3.11/lib-dynload/_decimal.so", C::kDlopen, exe, dec_seq);
  const auto dec_stack =
      py_v(import_frames("/app/main.py", 4, "load_decimal", {{"/app/main.py", 5, "<module>"}}));
  format::EventSlot dec_open = open_event(dec_seq, "/usr/lib/python3.11/lib-dynload/_decimal.so",
                                          300000, dec_stack, exe, dec);
  w.commit(dec_open);

  // seq 6: ctypes.CDLL('libm.so.6') at main.py:7; the caller is _ctypes' code.
  const uint64_t m_seq = w.reserve_seq();
  const uint32_t m = object("/usr/lib/x86_64-linux-gnu/libm.so.6", C::kDlopen, exe, m_seq);
  const auto m_stack = py({{"/usr/lib/python3.11/ctypes/__init__.py", 376, "__init__"},
                           {"/app/main.py", 7, "<module>"}});
  format::EventSlot m_open = open_event(m_seq, "libm.so.6", 12000, m_stack, exe, m);
  w.commit(m_open);

  // seq 7: ctypes.CDLL in a threading.Thread: threading's bootstrap frames are outermost.
  const uint64_t z_seq = w.reserve_seq();
  const uint32_t z = object("/usr/lib/x86_64-linux-gnu/libz.so.1", C::kDlopen, exe, z_seq);
  const auto z_stack = py({{"/usr/lib/python3.11/ctypes/__init__.py", 376, "__init__"},
                           {"/app/main.py", 10, "body"},
                           {"/usr/lib/python3.11/threading.py", 975, "run"},
                           {"/usr/lib/python3.11/threading.py", 1038, "_bootstrap_inner"},
                           {"/usr/lib/python3.11/threading.py", 995, "_bootstrap"}});
  format::EventSlot z_open = open_event(z_seq, "libz.so.1", 40000, z_stack, exe, z);
  z_open.tid = 43;
  w.commit(z_open);

  // seq 8: an extension module that fails to load.
  const auto broken_stack = py_v(import_frames("/app/main.py", 8, "<module>", {}));
  format::EventSlot broken =
      open_event(w.reserve_seq(), "/app/_broken.so", 20000, broken_stack, exe, format::kNoId);
  broken.bits = 0;
  broken.handle = 0;
  broken.error = w.intern_string("/app/_broken.so: undefined symbol: PyFoo");
  w.commit(broken);

  // seq 9: a native thread's dlopen: no Python stack.
  const uint64_t native_seq = w.reserve_seq();
  const uint32_t native = object("/opt/lib/libnative.so", C::kDlopen, exe, native_seq);
  format::EventSlot native_open =
      open_event(native_seq, "/opt/lib/libnative.so", 70000, format::kNoId, exe, native);
  native_open.tid = 44;
  w.commit(native_open);

  w.set_end(format::EndKind::kExit, 0);
  return {};
}

// The trace above, written and opened.
struct PythonFixture {
  ScratchDir dir;
  std::unique_ptr<TraceReader> reader;
  PythonFixture() {
    const std::string path = dir.file("py.trace");
    REQUIRE(write_python_trace(path) == "");
    std::string error;
    reader = TraceReader::open(path, &error);
    REQUIRE(reader);
  }
};

}  // namespace dltrace::test

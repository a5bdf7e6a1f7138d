// A synthetic trace for the load-graph tests (dot, html), written with the recorder's own
// TraceWriter.
#pragma once

#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>

#include "render/dot_load_graph.h"
#include "viewer_test_trace.h"

namespace dltrace::test {

// /usr/bin/app needs /opt/app/libcore.so and libc (libdltrace.so preloaded, the loader at
// start-up). libcore.so dlopens libplug.so (RTLD_LAZY, overridden to add RTLD_GLOBAL), which
// needs libhelper.so and libm; libplug's constructor dlopens libdeep.so. libcore.so fails to
// dlopen "libnope<x>.so" twice; the executable dlopens libplug.so again (already loaded).
inline std::string write_graph_trace(const std::string& path) {
  preload::TraceWriter w;
  if (std::string err = open_writer(w, path, 1 << 20, 8); !err.empty()) return err;
  const char* argv[] = {"app"};
  w.write_process("/usr/bin/app", "/", 1, argv);
  w.set_config_path("/etc/dltrace.toml");
  auto object = [&](const char* p, format::ObjectCause cause, uint32_t flags, uint32_t parent,
                    uint64_t seq) { return test::add_object(w, p, cause, flags, parent, seq); };
  using C = format::ObjectCause;
  const uint32_t exe = object("/usr/bin/app", C::kStartup, format::kObjectGlobal, format::kNoId, 0);
  object("/opt/dltrace/lib/libdltrace.so", C::kPreload,
         format::kObjectGlobal | format::kObjectRecorder, format::kNoId, 0);
  const uint32_t core = object("/opt/app/libcore.so", C::kNeeded, format::kObjectGlobal, exe, 0);
  object("/lib/x86_64-linux-gnu/libc.so.6", C::kNeeded, format::kObjectGlobal, exe, 0);
  object("/lib64/ld-linux-x86-64.so.2", C::kStartup, format::kObjectGlobal, format::kNoId, 0);

  auto open_event = [&](uint64_t seq, const char* file, int flags, int effective, uint32_t caller,
                        uint32_t opened, uint64_t parent) {
    format::EventSlot e = make_event(seq, w.intern_string(file));
    e.call = uint16_t(format::CallKind::kDlopen);
    e.flags = flags;
    e.effective_flags = effective;
    if (flags != effective) {
      e.bits |= format::kEventOverridden;
      e.override_line = 4;
    }
    e.caller_object = caller;
    e.object = opened;
    e.parent_seq = parent;
    e.handle = 0x5000 + seq;
    return e;
  };
  const uint64_t plug_seq = w.reserve_seq();  // 1
  const uint32_t plug =
      object("/opt/app/plugins/libplug.so", C::kDlopen, format::kObjectGlobal, core, plug_seq);
  object("/opt/app/libhelper.so", C::kNeeded, format::kObjectGlobal, plug, plug_seq);
  object("/usr/lib/x86_64-linux-gnu/libm.so.6", C::kNeeded, format::kObjectGlobal, plug, plug_seq);
  const uint64_t deep_seq = w.reserve_seq();  // 2
  const uint32_t deep = object("/opt/app/plugins/libdeep.so", C::kDlopen, 0, plug, deep_seq);
  format::EventSlot deep_open =
      open_event(deep_seq, "libdeep.so", RTLD_NOW, RTLD_NOW, plug, deep, plug_seq);
  w.commit(deep_open);
  format::EventSlot plug_open =
      open_event(plug_seq, "plugins/libplug.so", RTLD_LAZY, RTLD_LAZY | RTLD_GLOBAL, core, plug, 0);
  w.commit(plug_open);
  for (int i = 0; i < 2; ++i) {
    format::EventSlot nope = open_event(w.reserve_seq(), "libnope<x>.so", RTLD_NOW, RTLD_NOW, core,
                                        format::kNoId, 0);  // 3, 4
    nope.bits = 0;
    nope.handle = 0;
    nope.error = w.intern_string("libnope<x>.so: cannot open shared object file: \"No\" such file");
    w.commit(nope);
  }
  format::EventSlot again = open_event(w.reserve_seq(), "/opt/app/plugins/libplug.so", RTLD_NOW,
                                       RTLD_NOW, exe, plug, 0);  // 5
  again.bits |= format::kEventNoLoad;
  w.commit(again);
  w.set_end(format::EndKind::kExit, 0);
  return {};
}

struct GraphFixture {
  ScratchDir dir;
  std::unique_ptr<TraceReader> reader;
  GraphFixture() {
    const std::string path = dir.file("g.trace");
    REQUIRE(write_graph_trace(path) == "");
    std::string error;
    reader = TraceReader::open(path, &error);
    REQUIRE(reader);
  }
  std::string dot(const viewer::LoadGraphOptions& options = {}) const {
    auto text = viewer::load_graph_dot(*reader, options);
    REQUIRE(text.ok());
    return *text;
  }
};

}  // namespace dltrace::test

// A small synthetic trace for the viewer tests, written with the recorder's own TraceWriter:
// a dlopen that an override promoted to RTLD_GLOBAL (bringing in two objects), a nested dlsym
// from its constructor, a dlsym, a failing dlvsym on RTLD_DEFAULT and a dlclose that unloads.
#pragma once

#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <random>
#include <string>

#include "trace_test_support.h"

namespace dltrace::test {

// What a renderer wrote to a FILE*: `render(f)` writes into a temporary file, read back whole.
template <typename Render>
std::string rendered_text(Render&& render) {
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  render(f);
  std::string out;
  std::rewind(f);
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  std::fclose(f);
  return out;
}

inline bool has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

struct ViewerTrace {
  static constexpr uint64_t kLibBase = 0x7f0000000000;
  static constexpr uint64_t kDepBase = 0x7f0000100000;
  static constexpr uint64_t kHandle = 0x5000;
};

// Writes the trace to `path`; `clean_end`: record an exit status (else: "killed").
inline std::string write_viewer_trace(const std::string& path, bool clean_end = true) {
  preload::TraceWriter w;
  if (std::string err = open_writer(w, path, 1 << 20, 8); !err.empty()) return err;
  const char* argv[] = {"host", "--x"};
  w.write_process("/usr/bin/host", "/home/u", 2, argv);
  w.set_config_path("/etc/dl.toml");

  auto object = [&](const char* p, const char* soname, format::ObjectCause cause, uint32_t flags,
                    uint32_t parent, uint64_t opened_by, uint64_t base) {
    return add_object(w, p, cause, flags, parent, opened_by,
                      {base, 0x10000, opened_by ? ViewerTrace::kHandle : 0, soname});
  };
  const uint32_t exe = object("/usr/bin/host", nullptr, format::ObjectCause::kStartup,
                              format::kObjectGlobal, format::kNoId, 0, 0x400000);
  object("/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6", format::ObjectCause::kNeeded,
         format::kObjectGlobal, exe, 0, 0x7e0000000000);

  const uint64_t open_seq = w.reserve_seq();  // 1
  const uint32_t lib =
      object("/opt/plugins/libplugin.so", "libplugin.so", format::ObjectCause::kDlopen, 0, exe,
             open_seq, ViewerTrace::kLibBase);
  const uint32_t dep = object("/opt/plugins/libdep.so", nullptr, format::ObjectCause::kNeeded, 0,
                              lib, open_seq, ViewerTrace::kDepBase);

  // seq 2: dlsym from libplugin.so's constructor, while the dlopen runs.
  format::EventSlot nested = make_event(w.reserve_seq(), w.intern_string("helper"));
  nested.handle = 0;
  nested.object = dep;
  nested.address = ViewerTrace::kDepBase + 0x40;
  nested.parent_seq = open_seq;
  nested.bits = format::kEventOk | format::kEventNested;
  w.commit(nested);

  format::EventSlot open = make_event(open_seq, w.intern_string("libplugin.so"));
  open.call = uint16_t(format::CallKind::kDlopen);
  open.flags = RTLD_NOW;
  open.effective_flags = RTLD_NOW | RTLD_GLOBAL;
  open.bits = format::kEventOk | format::kEventOverridden;
  open.override_line = 3;
  open.handle = ViewerTrace::kHandle;
  open.object = lib;
  open.address = 0;
  open.caller_ip = 0x400000 + 0x1234;
  open.caller_object = exe;
  const uint64_t ips[] = {0x400000 + 0x1234, 0x7e0000000000 + 0x9d90, 0xdead};
  open.stack = w.intern_stack(ips, 3);
  format::PyFrame py{w.intern_string("app.py"), w.intern_string("<module>"), 3, 0};
  open.py_stack = w.intern_py_stack(&py, 1);
  format::OverrideEntry ov{open_seq, 3, RTLD_NOW, RTLD_NOW | RTLD_GLOBAL, 0};
  w.add_override(ov);
  w.commit(open);

  // seq 3: dlsym(handle, "plugin_init"), defined in libdep.so; the handle's object is libplugin.
  format::EventSlot sym = make_event(w.reserve_seq(), w.intern_string("plugin_init"));
  sym.handle = ViewerTrace::kHandle;
  sym.handle_object = lib;
  sym.object = dep;
  sym.address = ViewerTrace::kDepBase + 0x1234;
  w.commit(sym);
  w.object_promoted(lib, sym.seq);

  // seq 4: dlvsym(RTLD_DEFAULT, "missing", "V1") fails.
  format::EventSlot vsym = make_event(w.reserve_seq(), w.intern_string("missing"));
  vsym.call = uint16_t(format::CallKind::kDlvsym);
  vsym.version = w.intern_string("V1");
  vsym.handle = 0;
  vsym.address = 0;
  vsym.bits = 0;
  vsym.error = w.intern_string("/usr/bin/host: undefined symbol: missing, version V1");
  w.commit(vsym);

  // seq 5: dlclose(handle) unloads both.
  format::EventSlot close = make_event(w.reserve_seq());
  close.call = uint16_t(format::CallKind::kDlclose);
  close.handle = ViewerTrace::kHandle;
  close.handle_object = lib;
  close.object = lib;
  close.address = 0;
  close.result = 0;
  close.bits = format::kEventOk | format::kEventUnloaded;
  w.commit(close);
  w.object_unloaded(lib, close.seq);
  w.object_unloaded(dep, close.seq);

  if (clean_end) w.set_end(format::EndKind::kExit, 0);
  return {};
}

// Writes the viewer trace, garbles a few bytes of it (header counters, catalog or ring) in 300
// seeded rounds and calls `use(reader)` for every variant the reader accepts. Returns how many it
// accepted, so a caller can check the garbling did not just make every variant unreadable.
template <typename Use>
int for_each_garbled_trace(uint32_t seed, Use&& use) {
  ScratchDir dir;
  const std::string path = dir.file("g.trace");
  REQUIRE(write_viewer_trace(path) == "");
  const auto original = read_file(path);
  const auto& h = *reinterpret_cast<const format::FileHeader*>(original.data());
  // The header, the catalog's chunk and the ring's first 8 slots: the file's first bytes.
  const size_t used = file_offset_of(h, h.ring_offset + 8 * format::kSlotSize);
  REQUIRE(used < original.size());
  std::mt19937 rng(seed);
  int opened = 0;
  for (int round = 0; round < 300; ++round) {
    auto bytes = original;
    for (int k = 0; k < 4; ++k) {
      size_t at = (round % 3 == 0) ? 64 + rng() % 112 : rng() % used;
      bytes[at] = static_cast<unsigned char>(rng());
    }
    std::string error;
    auto reader = TraceReader::open_bytes(bytes.data(), bytes.size(), &error);
    if (!reader) continue;
    ++opened;
    use(*reader);
  }
  return opened;
}

}  // namespace dltrace::test

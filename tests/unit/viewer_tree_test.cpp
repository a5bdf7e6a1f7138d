// `dltrace tree`: who loaded whom, on synthetic traces written with the real TraceWriter.
#include <dlfcn.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "commands/tree_command.h"
#include "viewer_test_trace.h"

using namespace dltrace;
using test::has;

namespace {

std::string tree_text(const TraceReader& reader, const viewer::TreeOptions& options = {},
                      bool color = false) {
  return test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::tree_trace(reader, options, color, f).ok()); });
}

// /usr/bin/app needs /opt/app/libcore.so (which needs libc) and libc; the recorder is preloaded.
// libcore.so's code dlopens /opt/app/plugins/libplug.so (RTLD_LAZY, overridden to add
// RTLD_GLOBAL, 2.5 ms), which needs /opt/app/libhelper.so and libm; libplug's constructor
// dlopens libdeep.so (RTLD_NOW|RTLD_LOCAL); then libcore.so fails to dlopen libnope.so;
// libplug.so is dlclosed (unloading it and libhelper.so).
std::string write_tree_trace(const std::string& path) {
  preload::TraceWriter w;
  if (std::string err = test::open_writer(w, path, 1 << 20, 8); !err.empty()) return err;
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
  object("/lib/x86_64-linux-gnu/libc.so.6", C::kNeeded, format::kObjectGlobal, core, 0);
  object("/lib64/ld-linux-x86-64.so.2", C::kStartup, format::kObjectGlobal, format::kNoId, 0);

  auto open_event = [&](uint64_t seq, const char* file, int flags, int effective, uint64_t ns,
                        uint32_t caller, uint64_t parent) {
    format::EventSlot e = test::make_event(seq, w.intern_string(file));
    e.call = uint16_t(format::CallKind::kDlopen);
    e.flags = flags;
    e.effective_flags = effective;
    if (flags != effective) {
      e.bits |= format::kEventOverridden;
      e.override_line = 4;
    }
    e.duration_ns = ns;
    e.caller_object = caller;
    e.parent_seq = parent;
    e.handle = 0x5000 + seq;
    return e;
  };
  const uint64_t plug_seq = w.reserve_seq();  // 1
  const uint32_t plug =
      object("/opt/app/plugins/libplug.so", C::kDlopen, format::kObjectGlobal, core, plug_seq);
  const uint32_t helper =
      object("/opt/app/libhelper.so", C::kNeeded, format::kObjectGlobal, plug, plug_seq);
  object("/usr/lib/x86_64-linux-gnu/libm.so.6", C::kNeeded, format::kObjectGlobal, plug, plug_seq);
  const uint64_t deep_seq = w.reserve_seq();  // 2
  object("/opt/app/plugins/libdeep.so", C::kDlopen, 0, plug, deep_seq);
  format::EventSlot deep_open =
      open_event(deep_seq, "libdeep.so", RTLD_NOW, RTLD_NOW, 300000, plug, plug_seq);
  w.commit(deep_open);
  format::EventSlot plug_open = open_event(plug_seq, "plugins/libplug.so", RTLD_LAZY,
                                           RTLD_LAZY | RTLD_GLOBAL, 2500000, core, 0);
  w.commit(plug_open);
  format::EventSlot nope =
      open_event(w.reserve_seq(), "libnope.so", RTLD_NOW, RTLD_NOW, 40000, core, 0);  // 3
  nope.bits = 0;
  nope.handle = 0;
  nope.error =
      w.intern_string("libnope.so: cannot open shared object file: No such file or directory");
  w.commit(nope);
  format::EventSlot close = test::make_event(w.reserve_seq());  // 4
  close.call = uint16_t(format::CallKind::kDlclose);
  close.handle_object = plug;
  close.object = plug;
  close.bits = format::kEventOk | format::kEventUnloaded;
  w.commit(close);
  w.object_unloaded(plug, close.seq);
  w.object_unloaded(helper, close.seq);
  w.set_end(format::EndKind::kExit, 0);
  return {};
}

struct TreeFixture {
  test::ScratchDir dir;
  std::unique_ptr<TraceReader> reader;
  TreeFixture() {
    const std::string path = dir.file("t.trace");
    REQUIRE(write_tree_trace(path) == "");
    std::string error;
    reader = TraceReader::open(path, &error);
    REQUIRE(reader);
  }
};

}  // namespace

TEST_CASE("tree hangs needed and dlopen'ed objects under who loaded them", "[viewer][tree]") {
  TreeFixture fx;
  const std::string out = tree_text(*fx.reader);
  INFO(out);
  const std::string expected =
      "/usr/bin/app [executable]\n"
      "└── /opt/app/libcore.so\n"
      "    ├── /opt/app/plugins/libplug.so  dlopen(\"plugins/libplug.so\", RTLD_LAZY|RTLD_LOCAL → "
      "RTLD_LAZY|RTLD_GLOBAL [override dltrace.toml:4]) 2.500 ms incl. constructors (global) "
      "unloaded at seq 4\n"
      "    │   │ caller libcore.so\n"
      "    │   ├── /opt/app/libhelper.so unloaded at seq 4\n"
      // The requested name is left out when it is the resolved file's basename.
      "    │   └── /opt/app/plugins/libdeep.so  dlopen(RTLD_NOW|RTLD_LOCAL) "
      "300.0 us incl. constructors (local)\n"
      "    │         caller libplug.so\n"
      "    └── ✗ dlopen(\"libnope.so\", RTLD_NOW|RTLD_LOCAL) failed: libnope.so: cannot open "
      "shared object file: No such file or directory [seq 3]\n"
      "          caller libcore.so\n"
      "3 system libraries hidden (--all to show)\n";
  CHECK(out == expected);
  CHECK_FALSE(has(out, "libdltrace.so"));  // the recorder is hidden
}

TEST_CASE("tree --all shows system libraries and the recorder; --depth cuts", "[viewer][tree]") {
  TreeFixture fx;
  viewer::TreeOptions all;
  all.all = true;
  const std::string out = tree_text(*fx.reader, all);
  INFO(out);
  CHECK_FALSE(has(out, "hidden"));
  CHECK(has(out, "/opt/dltrace/lib/libdltrace.so [preload] [dltrace recorder]\n"));
  CHECK(has(out, "/lib64/ld-linux-x86-64.so.2 [startup]\n"));
  CHECK(has(out, "└── /opt/app/libcore.so\n    ├── /lib/x86_64-linux-gnu/libc.so.6\n"));
  CHECK(has(out, "    │   ├── /usr/lib/x86_64-linux-gnu/libm.so.6\n"));  // libm under libplug
  CHECK(out.find("libhelper.so") < out.find("libm.so.6"));               // load order
  CHECK(out.find("libm.so.6") < out.find("libdeep.so"));

  viewer::TreeOptions shallow;
  shallow.depth = 1;
  const std::string cut = tree_text(*fx.reader, shallow);
  INFO(cut);
  CHECK(has(cut, "└── /opt/app/libcore.so\n    └── … 4 more below (raise --depth)\n"));
  CHECK_FALSE(has(cut, "libplug.so"));
  viewer::TreeOptions none;
  none.depth = 0;
  CHECK(has(tree_text(*fx.reader, none), "/usr/bin/app [executable]\n└── … 5 more below"));
}

TEST_CASE("tree colours only when asked to", "[viewer][tree]") {
  TreeFixture fx;
  const std::string plain = tree_text(*fx.reader, {}, false);
  CHECK_FALSE(has(plain, "\x1b["));
  const std::string colored = tree_text(*fx.reader, {}, true);
  CHECK(has(colored, "\x1b[2m/opt/app/\x1b[0m\x1b[1mlibcore.so\x1b[0m"));  // dim dir, bold name
  CHECK(has(colored, "\x1b[31m✗ dlopen(\"libnope.so\""));                  // failed: red

  using viewer::ColorMode;
  CHECK(viewer::use_color(ColorMode::kAlways, false));
  CHECK_FALSE(viewer::use_color(ColorMode::kNever, true));
  CHECK_FALSE(viewer::use_color(ColorMode::kAuto, false));  // not a terminal
  const char* saved = std::getenv("NO_COLOR");
  const std::string saved_value = saved ? saved : "";
  ::unsetenv("NO_COLOR");
  CHECK(viewer::use_color(ColorMode::kAuto, true));
  ::setenv("NO_COLOR", "1", 1);
  CHECK_FALSE(viewer::use_color(ColorMode::kAuto, true));
  CHECK(viewer::use_color(ColorMode::kAlways, true));  // explicit --color=always wins
  if (saved)
    ::setenv("NO_COLOR", saved_value.c_str(), 1);
  else
    ::unsetenv("NO_COLOR");
}

TEST_CASE("tree survives a truncated trace and says so", "[viewer][tree]") {
  test::ScratchDir dir;
  const std::string path = dir.file("t.trace");
  REQUIRE(write_tree_trace(path) == "");
  auto bytes = test::read_file(path);
  const auto& h = *reinterpret_cast<const format::FileHeader*>(bytes.data());
  std::string error;
  auto reader = TraceReader::open_bytes(
      bytes.data(), test::file_offset_of(h, h.ring_offset + format::kSlotSize + 8), &error);
  REQUIRE(reader);
  const std::string out = tree_text(*reader);
  INFO(out);
  CHECK(has(out, "/usr/bin/app [executable]\n"));
  CHECK(has(out, "note: "));
  // The failed dlopen's event is lost, the objects (from the catalog) are not.
  CHECK_FALSE(has(out, "libnope.so"));
  CHECK(has(out, "libdeep.so"));
}

TEST_CASE("tree folds identical failed dlopens into one line with a count", "[viewer][tree]") {
  test::ScratchDir dir;
  const std::string path = dir.file("f.trace");
  {
    preload::TraceWriter w;
    REQUIRE(test::open_writer(w, path, 1 << 20, 8) == "");
    const char* argv[] = {"app"};
    w.write_process("/usr/bin/app", "/", 1, argv);
    format::ObjectLoadEntry exe{};
    exe.path = w.intern_string("/usr/bin/app");
    exe.soname = format::kNoId;
    exe.parent = format::kNoId;
    const uint32_t app = w.add_object(exe);
    auto fail = [&](const char* file, int flags) {
      format::EventSlot e = test::make_event(w.reserve_seq(), w.intern_string(file));
      e.call = uint16_t(format::CallKind::kDlopen);
      e.flags = e.effective_flags = flags;
      e.bits = 0;
      e.handle = 0;
      e.caller_object = app;
      e.error = w.intern_string((std::string(file) + ": cannot open shared object file").c_str());
      w.commit(e);
    };
    fail("libretry.so", RTLD_NOW);   // 1
    fail("libretry.so", RTLD_NOW);   // 2
    fail("libretry.so", RTLD_LAZY);  // 3: other flags, its own line
    fail("libretry.so", RTLD_NOW);   // 4
    w.set_end(format::EndKind::kExit, 0);
  }
  std::string error;
  auto reader = TraceReader::open(path, &error);
  REQUIRE(reader);
  const std::string out = tree_text(*reader);
  INFO(out);
  CHECK(has(out,
            "├── ✗ dlopen(\"libretry.so\", RTLD_NOW|RTLD_LOCAL) failed: libretry.so: "
            "cannot open shared object file [seq 1, 3 times, the last at seq 4]\n"));
  CHECK(has(out,
            "└── ✗ dlopen(\"libretry.so\", RTLD_LAZY|RTLD_LOCAL) failed: libretry.so: "
            "cannot open shared object file [seq 3]\n"));
}

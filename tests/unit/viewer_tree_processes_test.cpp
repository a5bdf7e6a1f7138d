// `dltrace tree T1 T2 ... | DIR`: the process tree of several traces, each process with its load
// tree under it; a fork child's objects from before the fork folded unless --all.
#include <dlfcn.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "commands/tree_command.h"
#include "viewer_test_trace.h"

using namespace dltrace;
using test::has;

namespace {

// A Python process's trace: the executable, if `inherited_module` an extension module that was
// dlopen'ed before the fork (in the parent: load_seq 0) and, if `later`, a dlopen of it at seq 1.
std::string write_process_trace(const std::string& path, int32_t pid, int32_t ppid, uint64_t start,
                                std::vector<const char*> argv, bool inherited_module,
                                const char* later) {
  preload::TraceWriter w;
  if (std::string err = test::open_writer(w, path, 1 << 20, 8); !err.empty()) return err;
  w.write_process("/usr/bin/python3.11", "/app", int(argv.size()), argv.data());
  w.header()->pid = pid;
  w.header()->ppid = ppid;
  w.header()->start_monotonic_ns = start;
  auto object = [&](const char* p, format::ObjectCause cause, uint32_t parent, uint64_t seq) {
    return test::add_object(w, p, cause, 0, parent, seq);
  };
  const uint32_t exe =
      object("/usr/bin/python3.11", format::ObjectCause::kStartup, format::kNoId, 0);
  if (inherited_module) {
    object("/usr/lib/python3.11/lib-dynload/_json.so", format::ObjectCause::kDlopen, exe, 0);
  }
  if (later) {
    const uint64_t seq = w.reserve_seq();
    const uint32_t lib = object(later, format::ObjectCause::kDlopen, exe, seq);
    format::EventSlot e = test::make_event(seq, w.intern_string(later));
    e.call = uint16_t(format::CallKind::kDlopen);
    e.flags = e.effective_flags = RTLD_NOW;
    e.duration_ns = 5000;
    e.object = lib;
    e.caller_object = exe;
    e.handle = 0x5000;
    w.commit(e);
  }
  w.set_end(format::EndKind::kExit, 0);
  return {};
}

}  // namespace

TEST_CASE("tree of several traces: the process tree with each process's loads",
          "[viewer][process][tree]") {
  test::ScratchDir dir;
  REQUIRE(write_process_trace(dir.file("dltrace.python3.11.100.trace"), 100, 1, 1000,
                              {"python3", "mp.py"}, false, "/opt/libparent.so") == "");
  REQUIRE(write_process_trace(dir.file("dltrace.python3.11.101.trace"), 101, 100, 2000,
                              {"python3", "mp.py"}, true, "/opt/libforked.so") == "");
  REQUIRE(write_process_trace(dir.file("dltrace.python3.11.102.trace"), 102, 100, 3000,
                              {"python3", "-c", "import _json"}, false, nullptr) == "");

  auto paths = viewer::expand_trace_paths({dir.path()});
  REQUIRE(paths.ok());
  REQUIRE(paths->size() == 3);
  std::vector<std::unique_ptr<TraceReader>> readers;
  std::vector<viewer::NamedTrace> traces;
  for (const auto& p : *paths) {
    std::string error;
    readers.push_back(TraceReader::open(p, &error));
    REQUIRE(readers.back());
    traces.push_back({p, readers.back().get()});
  }
  std::reverse(traces.begin(), traces.end());  // the order of the arguments does not matter
  auto render = [&](const viewer::TreeOptions& options) {
    return test::rendered_text(
        [&](std::FILE* f) { CHECK(viewer::process_tree_trace(traces, options, false, f).ok()); });
  };
  const std::string out = render({});
  INFO(out);
  const std::string expected =
      "pid 100 python3 mp.py  [exit 0] dltrace.python3.11.100.trace\n"
      "│   /usr/bin/python3.11 [executable]\n"
      "│   └── /opt/libparent.so  dlopen(RTLD_NOW|RTLD_LOCAL) 5.0 us incl. constructors (local)\n"
      "│         caller python3.11\n"
      "├── pid 101 (fork) python3 mp.py  [exit 0] dltrace.python3.11.101.trace\n"
      "│       /usr/bin/python3.11 [executable]\n"
      "│       └── /opt/libforked.so  dlopen(RTLD_NOW|RTLD_LOCAL) 5.0 us incl. constructors "
      "(local)\n"
      "│             caller python3.11\n"
      "│       1 object loaded before the fork hidden (--all to show)\n"
      "└── pid 102 python3 -c import _json  [exit 0] dltrace.python3.11.102.trace\n"
      "        /usr/bin/python3.11 [executable]\n";
  CHECK(out == expected);

  viewer::TreeOptions all;
  all.all = true;
  const std::string everything = render(all);
  INFO(everything);
  CHECK(has(everything,
            "│       ├── /usr/lib/python3.11/lib-dynload/_json.so [dlopen'ed before the fork]\n"));
  CHECK_FALSE(has(everything, "hidden"));
}

TEST_CASE("tree of several traces: directories expand to their traces", "[viewer][process][tree]") {
  test::ScratchDir dir;
  CHECK_FALSE(viewer::expand_trace_paths({dir.path()}).ok());  // no traces in it
  REQUIRE(write_process_trace(dir.file("b.trace"), 5, 1, 1, {"b"}, false, nullptr) == "");
  REQUIRE(write_process_trace(dir.file("a.trace"), 6, 1, 2, {"a"}, false, nullptr) == "");
  test::write_file(dir.file("notes.txt"), "x", 1);
  auto paths = viewer::expand_trace_paths({dir.path(), "/some/file.trace"});
  REQUIRE(paths.ok());
  CHECK(*paths ==
        std::vector<std::string>{dir.file("a.trace"), dir.file("b.trace"), "/some/file.trace"});
}

// JsonWriter's output to a FILE*: large cached fragments (raw_stable) go out with writev from where
// they are, small ones and everything else through the writer's buffer. Whatever the path (in
// memory, a descriptor, a FILE* without one), the bytes must be the same, in the same order.
#include <dlfcn.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "render/json_export.h"
#include "render/json_writer.h"
#include "viewer_test_trace.h"

using namespace dltrace;
using viewer::JsonWriter;

namespace {

// What `write(w)` gives when the writer streams to `f` (read back whole).
std::string through_file(std::FILE* f, const std::function<void(JsonWriter&)>& write) {
  uint64_t written = 0;
  {
    JsonWriter w(f);
    write(w);
    REQUIRE(w.finish().ok());
    written = w.bytes_written();
  }
  std::string out;
  std::rewind(f);
  char buf[65536];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  CHECK(written == out.size());
  return out;
}

// The same through a FILE* that has no descriptor: one fwrite per piece.
std::string through_cookie(const std::function<void(JsonWriter&)>& write) {
  std::string out;
  cookie_io_functions_t io{};
  io.write = [](void* cookie, const char* data, size_t n) -> ssize_t {
    static_cast<std::string*>(cookie)->append(data, n);
    return ssize_t(n);
  };
  std::FILE* f = fopencookie(&out, "w", io);
  REQUIRE(f);
  REQUIRE(fileno(f) < 0);
  {
    JsonWriter w(f);
    write(w);
    REQUIRE(w.finish().ok());
  }
  std::fclose(f);
  return out;
}

std::string in_memory(const std::function<void(JsonWriter&)>& write) {
  JsonWriter w;
  write(w);
  return std::string(w.str());
}

// Where `a` and `b` first differ (npos: nowhere), rather than Catch printing megabytes.
size_t first_difference(const std::string& a, const std::string& b) {
  const auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  return ia == a.end() && ib == b.end() ? std::string::npos : size_t(ia - a.begin());
}

void check_same_everywhere(const std::function<void(JsonWriter&)>& write) {
  const std::string expected = in_memory(write);
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  REQUIRE(fileno(f) >= 0);
  const std::string file = through_file(f, write);
  std::fclose(f);
  CHECK(file.size() == expected.size());
  CHECK(first_difference(file, expected) == std::string::npos);
  const std::string cookie = through_cookie(write);
  CHECK(cookie.size() == expected.size());
  CHECK(first_difference(cookie, expected) == std::string::npos);
}

}  // namespace

TEST_CASE("json writer: stable fragments come out in place, across flushes", "[viewer][json]") {
  // Fragments of every size class (copied, referenced, larger than the buffer). Whenever the
  // writer's generation changes, the old ones are overwritten and freed, as the exporter does
  // with stale stacks: output that still pointed at them would differ from the in-memory one.
  std::vector<std::string> fragments;  // must outlive each writer's finish()
  check_same_everywhere([&](JsonWriter& w) {
    fragments.clear();
    uint64_t generation = w.generation();
    int serial = 0;
    auto fragment = [&](size_t size) -> const std::string& {
      if (w.generation() != generation) {
        generation = w.generation();
        for (std::string& old : fragments) std::fill(old.begin(), old.end(), '#');
        fragments.clear();
      }
      std::string s = "[\"" + std::to_string(serial++) + ":";
      s.resize(size - 2, char('a' + size % 26));
      s += "\"]";
      fragments.push_back(std::move(s));
      return fragments.back();
    };
    const size_t sizes[] = {2, 100, 255, 256, 257, 3000, 20000};
    w.begin_array();
    for (int i = 0; i < 6000; ++i) {
      w.begin_object();
      w.key("i").value(i);
      w.key("s").raw_stable(fragment(sizes[i % 7]));
      if (i % 1000 == 0) w.key("big").raw_stable(fragment(3 << 20));  // more than the buffer
      w.key("t").value("x\"y");
      w.key("a").raw_stable(fragment(300));
      w.key("c").raw_stable(fragment(255));  // copied: fills the buffer past its flush mark
      w.key("h").hex(uint64_t(i) << 20);
      w.end_object();
    }
    w.end_array();
    w.end_line();
  });
}

TEST_CASE("json writer: output to a FILE* keeps its place after what was printed before",
          "[viewer][json]") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  const std::string big(5000, 'x');
  const std::string fragment = "\"" + big + "\"";  // lives until finish(): the writer points at it
  std::fputs("before ", f);  // still in the FILE's buffer when the writer starts
  {
    JsonWriter w(f);
    w.begin_array();
    w.raw_stable(fragment);
    w.end_array();
    REQUIRE(w.finish().ok());
  }
  std::fputs(" after", f);
  std::fflush(f);
  std::string out;
  std::rewind(f);
  char buf[8192];
  while (size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  std::fclose(f);
  CHECK(out == "before [\"" + big + "\"] after");
}

TEST_CASE("json writer: a failed write is reported with its reason", "[viewer][json]") {
  std::FILE* f = std::fopen("/dev/full", "w");
  if (!f) {
    WARN("no /dev/full");
    return;
  }
  const std::string number(1000, '1');
  JsonWriter w(f);
  w.begin_array();
  for (int i = 0; i < 1000; ++i) w.raw_stable(number);
  w.end_array();
  const absl::Status status = w.finish();
  std::fclose(f);
  CHECK(status.code() == absl::StatusCode::kDataLoss);
  CHECK(status.message().find("No space left") != absl::string_view::npos);
}

namespace {

// Thousands of events sharing stacks and Python stacks, with errors and null members, and a
// plugin unloaded and loaded again at the same base every 400 events: the stacks that point into
// it (or at an address no object covers) are rendered again while the writer may still point at
// the old rendering.
std::string write_sink_trace(const std::string& path) {
  preload::TraceWriter w;
  if (std::string err = test::open_writer(w, path, 8 << 20, 16); !err.empty()) return err;
  const char* argv[] = {"host"};
  w.write_process("/usr/bin/host", "/", 1, argv);

  auto object = [&](const char* p, format::ObjectCause cause, uint32_t parent, uint64_t seq,
                    uint64_t base) {
    return test::add_object(w, p, cause, format::kObjectGlobal, parent, seq,
                            {base, 0x100000, base + 0x10});
  };
  constexpr uint64_t kExe = 0x400000, kPlugin = 0x7f0000000000;
  const uint32_t exe =
      object("/nonexistent/host", format::ObjectCause::kStartup, format::kNoId, 0, kExe);

  std::vector<uint64_t> ips;
  for (uint64_t i = 0; i < 14; ++i)
    ips.push_back((i % 3 == 0 ? kPlugin : kExe) + 0x1000 + i * 0x40);
  ips.push_back(0xdead);  // no object: rendered again after every load
  ips.push_back(0);
  const uint32_t stacks[] = {w.intern_stack(ips.data(), uint32_t(ips.size())),
                             w.intern_stack(ips.data() + 1, 9), w.intern_stack(ips.data() + 3, 1)};
  std::vector<format::PyFrame> py;
  for (uint32_t i = 0; i < 6; ++i) {
    py.push_back({w.intern_string(("pkg/module_" + std::to_string(i) + ".py").c_str()),
                  w.intern_string(i % 2 ? "<module>" : "load \"\xff\" plugin"), int32_t(10 + i),
                  0});
  }
  const uint32_t py_stack = w.intern_py_stack(py.data(), uint32_t(py.size()));
  const uint32_t error = w.intern_string("libx.so: cannot open shared object file:\tNo such file");

  uint32_t plugin = format::kNoId;
  for (int i = 0; i < 5000; ++i) {
    const uint64_t seq = w.reserve_seq();
    if (i % 400 == 0) {  // dlopen: the plugin comes (back) at the same base
      plugin = object("/nonexistent/libplugin.so", format::ObjectCause::kDlopen, exe, seq, kPlugin);
      format::EventSlot e = test::make_event(seq, w.intern_string("libplugin.so"));
      e.call = uint16_t(format::CallKind::kDlopen);
      e.flags = e.effective_flags = RTLD_NOW | RTLD_GLOBAL;
      e.handle = kPlugin + 0x10;
      e.object = plugin;
      e.address = 0;
      e.stack = stacks[i % 3];
      e.caller_ip = kExe + 0x2000;
      w.commit(e);
    } else if (i % 400 == 399) {  // dlclose that unloads it
      format::EventSlot e = test::make_event(seq);
      e.call = uint16_t(format::CallKind::kDlclose);
      e.handle = kPlugin + 0x10;
      e.handle_object = e.object = plugin;
      e.address = 0;
      e.bits = format::kEventOk | format::kEventUnloaded;
      e.stack = stacks[(i + 1) % 3];
      w.commit(e);
      w.object_unloaded(plugin, seq);
    } else {
      format::EventSlot e =
          test::make_event(seq, w.intern_string(("sym" + std::to_string(i % 37)).c_str()));
      e.handle = i % 5 ? kPlugin + 0x10 : 0;
      e.handle_object = plugin;
      if (i % 7 == 0) {
        e.bits = 0;
        e.address = 0;
        e.error = error;
      } else {
        e.object = plugin;
        e.address = kPlugin + 0x3000 + uint64_t(i % 37) * 16;
      }
      e.stack = i % 11 == 0 ? format::kNoId : stacks[i % 3];
      if (i % 8 == 0) e.py_stack = py_stack;
      e.caller_ip = i % 2 ? kExe + 0x2000 : kPlugin + 0x1000;
      w.commit(e);
    }
  }
  w.set_end(format::EndKind::kExit, 0);
  return {};
}

}  // namespace

TEST_CASE("json export: the same bytes in memory, to a file and to a FILE* without descriptor",
          "[viewer][export]") {
  test::ScratchDir dir;
  const std::string path = dir.file("sink.trace");
  REQUIRE(write_sink_trace(path) == "");
  std::string error;
  auto reader = TraceReader::open(path, &error);
  INFO(error);
  REQUIRE(reader);
  for (auto flavor : {viewer::JsonFlavor::kJson, viewer::JsonFlavor::kJsonl}) {
    viewer::JsonExportOptions options;
    options.flavor = flavor;
    auto write = [&](JsonWriter& w) {
      REQUIRE(viewer::write_json_export(*reader, options, w).ok());
    };
    check_same_everywhere(write);

    if (flavor == viewer::JsonFlavor::kJson) {
      // And it is what it should be: every event, stacks that follow the plugin's reloads.
      const auto doc = nlohmann::json::parse(in_memory(write));
      REQUIRE(doc["events"].size() == 5000);
      CHECK(doc["events"][3]["stack"].size() == 16);
      CHECK(doc["events"][1]["python_stack"].is_null());
      CHECK(doc["events"][8]["python_stack"].size() == 6);
      CHECK(doc["events"][7]["error"] == "libx.so: cannot open shared object file:\tNo such file");
      CHECK(doc["events"][11]["stack"].is_null());
      // Frame 0 is in the plugin: its object id changes with each load.
      for (int i : {3, 402}) {
        INFO(i);
        CHECK(doc["events"][i]["stack"][0]["object"] == doc["events"][i]["object"]);
      }
      CHECK(doc["events"][3]["object"] != doc["events"][402]["object"]);
    }
  }
}

// `dltrace export --format chrome`: the Trace Event JSON of a synthetic trace with nested loads,
// two threads, a failed dlopen and an override, parsed back with nlohmann-json.
#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "render/chrome_export.h"
#include "viewer_test_trace.h"

using namespace dltrace;
using nlohmann::json;

namespace {

constexpr uint64_t kStart = 1'000'000;  // the trace's CLOCK_MONOTONIC origin

// Main thread: dlopen libouter.so (1 ms after start, 500 us, RTLD_NOW overridden to add
// RTLD_GLOBAL; brings in libouter and libdep); inside it, libouter's constructor dlopens
// libinner.so at +100 us for a recorded 450 us (50 us past its parent's end: a clock-conversion
// rounding the exporter must clamp), and inside that a dlsym. Then a dlsym, a failed dlopen on a
// second thread, and a dlclose that unloads both.
std::string write_chrome_trace(const std::string& path, int32_t* pid) {
  preload::TraceWriter w;
  if (std::string err = test::open_writer(w, path, 1 << 20, 8); !err.empty()) return err;
  const char* argv[] = {"app", "-v"};
  w.write_process("/usr/bin/app", "/", 2, argv);
  w.set_config_path("/etc/dl.toml");
  w.header()->start_monotonic_ns = kStart;
  *pid = w.header()->pid;
  const uint32_t main_tid = uint32_t(*pid), other_tid = uint32_t(*pid) + 1;

  auto object = [&](const char* p, format::ObjectCause cause, uint32_t parent, uint64_t seq) {
    return test::add_object(w, p, cause, 0, parent, seq);
  };
  using C = format::ObjectCause;
  const uint32_t exe = object("/usr/bin/app", C::kStartup, format::kNoId, 0);
  auto event = [&](uint64_t seq, format::CallKind call, const char* name, uint64_t at, uint64_t dur,
                   uint32_t tid, uint64_t parent) {
    format::EventSlot e = test::make_event(seq, name ? w.intern_string(name) : format::kNoId);
    e.call = uint16_t(call);
    e.time_ns = kStart + at;
    e.duration_ns = dur;
    e.tid = tid;
    e.parent_seq = parent;
    return e;
  };

  const uint64_t outer_seq = w.reserve_seq();  // 1
  const uint32_t outer = object("/opt/app/libouter.so", C::kDlopen, exe, outer_seq);
  const uint32_t dep = object("/opt/app/libdep.so", C::kNeeded, outer, outer_seq);
  const uint64_t inner_seq = w.reserve_seq();  // 2
  const uint32_t inner = object("/opt/app/libinner.so", C::kDlopen, outer, inner_seq);
  format::EventSlot sym = event(w.reserve_seq(), format::CallKind::kDlsym, "inner_init", 1'150'000,
                                1'000, main_tid, inner_seq);  // 3
  sym.object = inner;
  w.commit(sym);
  format::EventSlot in = event(inner_seq, format::CallKind::kDlopen, "libinner.so", 1'100'000,
                               450'000, main_tid, outer_seq);
  in.flags = in.effective_flags = RTLD_NOW;
  in.object = inner;
  in.handle = 0x6000;
  w.commit(in);
  format::EventSlot out = event(outer_seq, format::CallKind::kDlopen, "/opt/app/libouter.so",
                                1'000'000, 500'000, main_tid, 0);
  out.flags = RTLD_NOW;
  out.effective_flags = RTLD_NOW | RTLD_GLOBAL;
  out.bits |= format::kEventOverridden;
  out.override_line = 3;
  out.object = outer;
  out.handle = 0x5000;
  w.commit(out);
  format::EventSlot sym2 = event(w.reserve_seq(), format::CallKind::kDlsym, "outer_value",
                                 2'000'000, 2'000, main_tid, 0);  // 4
  sym2.handle = 0x5000;
  sym2.handle_object = outer;
  sym2.object = outer;
  sym2.address = 0;  // no mapping in this trace: just the recorded object
  w.commit(sym2);
  format::EventSlot fail = event(w.reserve_seq(), format::CallKind::kDlopen, "libmissing.so",
                                 2'500'000, 30'000, other_tid, 0);  // 5
  fail.flags = fail.effective_flags = RTLD_LAZY;
  fail.bits = 0;
  fail.handle = 0;
  fail.error = w.intern_string("libmissing.so: cannot open shared object file");
  w.commit(fail);
  format::EventSlot close = event(w.reserve_seq(), format::CallKind::kDlclose, nullptr, 3'000'000,
                                  50'000, main_tid, 0);  // 6
  close.handle = 0x5000;
  close.handle_object = outer;
  close.object = outer;
  close.result = 0;
  close.bits = format::kEventOk | format::kEventUnloaded;
  w.commit(close);
  w.object_unloaded(outer, close.seq);
  w.object_unloaded(dep, close.seq);
  w.set_end(format::EndKind::kExit, 0);
  w.header()->end_monotonic_ns = kStart + 4'000'000;
  return {};
}

const json* find_event(const json& events, const std::string& name) {
  for (const auto& e : events) {
    if (e.value("name", "") == name) return &e;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("chrome export: spans, instants, threads, nesting and args", "[viewer][chrome]") {
  test::ScratchDir dir;
  const std::string path = dir.file("c.trace");
  int32_t pid = 0;
  REQUIRE(write_chrome_trace(path, &pid) == "");
  std::string error;
  auto reader = TraceReader::open(path, &error);
  REQUIRE(reader);
  viewer::JsonWriter writer;
  REQUIRE(viewer::write_chrome_export(*reader, writer).ok());
  const std::string text(writer.str());
  INFO(text);
  const json doc = json::parse(text);  // throws (fails the test) on invalid JSON
  REQUIRE(doc["traceEvents"].is_array());
  const json& events = doc["traceEvents"];
  CHECK(doc["otherData"]["exe"] == "/usr/bin/app");

  // Metadata: the process and both threads are named.
  int thread_names = 0;
  bool process_named = false;
  for (const auto& e : events) {
    if (e["ph"] != "M") continue;
    CHECK(e["pid"] == pid);
    if (e["name"] == "process_name") {
      process_named = e["args"]["name"] == "app";
    } else if (e["name"] == "thread_name") {
      ++thread_names;
      CHECK(e["args"]["name"] ==
            (e["tid"] == pid ? std::string("main thread") : "thread " + std::to_string(pid + 1)));
    }
  }
  CHECK(process_named);
  CHECK(thread_names == 2);

  const json* outer = find_event(events, "dlopen libouter.so");
  REQUIRE(outer);
  CHECK((*outer)["ph"] == "X");
  CHECK((*outer)["cat"] == "dlopen");
  CHECK((*outer)["ts"].get<double>() == Approx(1000.0));  // us since the process started
  CHECK((*outer)["dur"].get<double>() == Approx(500.0));
  CHECK((*outer)["tid"] == pid);
  const json& args = (*outer)["args"];
  CHECK(args["file"] == "/opt/app/libouter.so");
  CHECK(args["flags_text"] == "RTLD_NOW|RTLD_LOCAL");
  CHECK(args["effective_flags_text"] == "RTLD_NOW|RTLD_GLOBAL");
  CHECK(args["override"] == "/etc/dl.toml:3");
  CHECK(args["result"] == "0x5000");
  CHECK(args["object"] == "libouter.so");
  CHECK(args["new_objects"] == json::array({"libouter.so", "libdep.so"}));
  CHECK(args["ok"] == true);
  CHECK_FALSE(args.contains("parent_seq"));

  // The nested dlopen is clamped into its parent's span (its recorded end was 50 us past it).
  const json* inner = find_event(events, "dlopen libinner.so");
  REQUIRE(inner);
  CHECK((*inner)["args"]["parent_seq"] == 1);
  CHECK((*inner)["ts"].get<double>() == Approx(1100.0));
  CHECK((*inner)["dur"].get<double>() == Approx(400.0));
  CHECK_FALSE((*inner)["args"].contains("effective_flags_text"));

  const json* init = find_event(events, "dlsym inner_init");
  REQUIRE(init);
  CHECK((*init)["ph"] == "i");
  CHECK((*init)["s"] == "t");
  CHECK_FALSE(init->contains("dur"));
  CHECK((*init)["ts"].get<double>() == Approx(1150.0));
  CHECK((*init)["args"]["symbol"] == "inner_init");
  CHECK((*init)["args"]["handle"] == "RTLD_DEFAULT");

  const json* lookup = find_event(events, "dlsym outer_value");
  REQUIRE(lookup);
  CHECK((*lookup)["args"]["handle"] == "0x5000");
  CHECK((*lookup)["args"]["handle_object"] == "libouter.so");
  CHECK((*lookup)["args"]["ok"] == true);

  const json* failed = find_event(events, "dlopen libmissing.so");
  REQUIRE(failed);
  CHECK((*failed)["tid"] == pid + 1);
  CHECK((*failed)["cname"] == "terrible");
  CHECK((*failed)["args"]["ok"] == false);
  CHECK((*failed)["args"]["error"] == "libmissing.so: cannot open shared object file");
  CHECK((*failed)["args"]["flags_text"] == "RTLD_LAZY|RTLD_LOCAL");
  CHECK_FALSE((*failed)["args"].contains("result"));

  const json* close = find_event(events, "dlclose libouter.so");
  REQUIRE(close);
  CHECK((*close)["ph"] == "X");
  CHECK((*close)["ts"].get<double>() == Approx(3000.0));
  CHECK((*close)["dur"].get<double>() == Approx(50.0));
  CHECK((*close)["args"]["unloaded"] == json::array({"libouter.so", "libdep.so"}));

  const json* end = find_event(events, "exit 0");
  REQUIRE(end);
  CHECK((*end)["ph"] == "i");
  CHECK((*end)["s"] == "p");
  CHECK((*end)["ts"].get<double>() == Approx(4000.0));
}

TEST_CASE("chrome export of a damaged trace is still valid JSON", "[viewer][chrome]") {
  const int opened = test::for_each_garbled_trace(5, [](const TraceReader& reader) {
    viewer::JsonWriter writer;
    CHECK(viewer::write_chrome_export(reader, writer).ok());
    const json doc = json::parse(writer.str(), nullptr, /*allow_exceptions=*/false);
    CHECK_FALSE(doc.is_discarded());
    CHECK(doc["traceEvents"].is_array());
  });
  CHECK(opened > 10);
}

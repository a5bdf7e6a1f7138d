// `dltrace stats`: counts per call and thread, top symbols, self time of a nested dlopen,
// completeness lines and the JSON form, on synthetic traces written with the real TraceWriter.
#include <dlfcn.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "commands/stats_command.h"
#include "commands/tree_command.h"
#include "viewer_test_trace.h"

using namespace dltrace;
using test::has;

namespace {

std::string stats_text(const TraceReader& reader, const viewer::StatsOptions& options = {}) {
  return test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::stats_trace(reader, options, f).ok()); });
}

// A host dlopens libouter.so (1000 ns), whose constructor dlopens libinner.so (600 ns) and
// dlsyms "inner_init" (50 ns); then thread 43 looks "inner_init" up twice more (one fails) and
// "other" once; a dlopen of a missing library fails.
std::string write_nested_trace(const std::string& path) {
  preload::TraceWriter w;
  if (std::string err = test::open_writer(w, path, 1 << 20, 8); !err.empty()) return err;
  const char* argv[] = {"host"};
  w.write_process("/usr/bin/host", "/", 1, argv);
  auto object = [&](const char* p, format::ObjectCause cause, uint32_t parent, uint64_t seq) {
    return test::add_object(w, p, cause, 0, parent, seq);
  };
  const uint32_t exe = object("/usr/bin/host", format::ObjectCause::kStartup, format::kNoId, 0);
  auto open_event = [&](uint64_t seq, const char* file, uint64_t duration, uint64_t parent) {
    format::EventSlot e = test::make_event(seq, w.intern_string(file));
    e.call = uint16_t(format::CallKind::kDlopen);
    e.flags = e.effective_flags = RTLD_NOW;
    e.duration_ns = duration;
    e.parent_seq = parent;
    e.handle = 0x5000 + seq;
    return e;
  };
  const uint64_t outer_seq = w.reserve_seq();  // 1
  const uint32_t outer = object("/opt/libouter.so", format::ObjectCause::kDlopen, exe, outer_seq);
  const uint64_t inner_seq = w.reserve_seq();  // 2
  object("/opt/libinner.so", format::ObjectCause::kDlopen, outer, inner_seq);
  format::EventSlot inner_open = open_event(inner_seq, "libinner.so", 600, outer_seq);
  w.commit(inner_open);
  format::EventSlot nested_sym = test::make_event(w.reserve_seq(), w.intern_string("inner_init"));
  nested_sym.duration_ns = 50;
  nested_sym.parent_seq = outer_seq;  // 3
  w.commit(nested_sym);
  format::EventSlot outer_open = open_event(outer_seq, "libouter.so", 1000, 0);
  w.commit(outer_open);

  for (int i = 0; i < 2; ++i) {  // 4, 5
    format::EventSlot s = test::make_event(w.reserve_seq(), w.intern_string("inner_init"));
    s.tid = 43;
    if (i == 1) {
      s.bits = 0;
      s.address = 0;
      s.error = w.intern_string("undefined symbol: inner_init");
    }
    w.commit(s);
  }
  format::EventSlot other = test::make_event(w.reserve_seq(), w.intern_string("other"));  // 6
  other.tid = 43;
  w.commit(other);
  format::EventSlot missing = open_event(w.reserve_seq(), "libmissing.so", 20, 0);  // 7
  missing.bits = 0;
  missing.handle = 0;
  missing.error = w.intern_string("libmissing.so: cannot open shared object file");
  w.commit(missing);
  w.set_end(format::EndKind::kSignal, 11);
  return {};
}

}  // namespace

TEST_CASE("stats counts calls per kind and per thread, and ranks symbols", "[viewer][stats]") {
  test::ScratchDir dir;
  const std::string path = dir.file("n.trace");
  REQUIRE(write_nested_trace(path) == "");
  std::string error;
  auto reader = TraceReader::open(path, &error);
  REQUIRE(reader);
  const std::string out = stats_text(*reader);
  INFO(out);
  CHECK(has(out, "  end:       killed by signal 11 (SIGSEGV)\n"));
  CHECK(has(out, "  trace:     complete (not truncated, nothing damaged)\n"));
  CHECK(has(out, "  events:    7 recorded, 7 readable, 0 dropped\n"));
  CHECK(has(out, "  failed:    2 call(s)\n"));
  CHECK(has(out, "  dlopen            3          1\n"));
  CHECK(has(out, "  dlsym             4          1\n"));
  CHECK(has(out, "  dlclose           0          0\n"));
  // Threads: 42 made 3 dlopens and 1 dlsym (1 failed), 43 made 3 dlsyms (1 failed).
  CHECK(has(out, "        42          4        1        3        0        1        0        0\n"));
  CHECK(has(out, "        43          3        1        0        0        3        0        0\n"));
  // inner_init: 3 lookups, 1 failed, ahead of "other".
  CHECK(has(out, "top 2 symbol(s) looked up (of 2)\n"));
  const size_t inner = out.find("       3        1  inner_init\n");
  const size_t other = out.find("       1        0  other\n");
  CHECK(inner != std::string::npos);
  CHECK(other != std::string::npos);
  CHECK(inner < other);

  viewer::StatsOptions top1;
  top1.top = 1;
  const std::string one = stats_text(*reader, top1);
  CHECK(has(one, "top 1 symbol(s) looked up (of 2)\n"));
  CHECK_FALSE(has(one, "  other\n"));
  CHECK(has(one, "slowest 1 load(s)"));
  CHECK(has(one, "dlopen(\"libouter.so\")"));
  CHECK_FALSE(has(one, "dlopen(\"libinner.so\")"));
}

TEST_CASE("stats: self time of a load excludes its nested traced calls", "[viewer][stats]") {
  test::ScratchDir dir;
  const std::string path = dir.file("n.trace");
  REQUIRE(write_nested_trace(path) == "");
  std::string error;
  auto reader = TraceReader::open(path, &error);
  REQUIRE(reader);
  const std::string out = stats_text(*reader);
  INFO(out);
  // libouter: 1000 ns total, minus the nested dlopen (600) and dlsym (50) = 350 ns self.
  CHECK(has(out, "        1.0 us       350 ns        1  dlopen(\"libouter.so\") +1 object(s)\n"));
  CHECK(has(out, "        600 ns       600 ns        2  dlopen(\"libinner.so\") +1 object(s)\n"));
  CHECK(has(out,
            "         20 ns        20 ns        7  dlopen(\"libmissing.so\") failed: "
            "libmissing.so: cannot open shared object file\n"));
  CHECK(out.find("libouter.so") < out.find("libinner.so"));  // slowest first

  viewer::StatsOptions json;
  json.json = true;
  const auto j = nlohmann::json::parse(stats_text(*reader, json));
  CHECK(j["format"] == "dltrace-stats");
  CHECK(j["calls"]["dlopen"]["total"] == 3);
  CHECK(j["calls"]["dlopen"]["failed"] == 1);
  CHECK(j["failed_calls"] == 2);
  CHECK(j["events"]["dropped"] == 0);
  CHECK(j["process"]["signal"] == 11);
  CHECK(j["completeness"]["complete"] == true);
  REQUIRE(j["slowest_loads"].size() == 3);
  CHECK(j["slowest_loads"][0]["file"] == "libouter.so");
  CHECK(j["slowest_loads"][0]["duration_ns"] == 1000);
  CHECK(j["slowest_loads"][0]["self_ns"] == 350);
  CHECK(j["top_symbols"][0]["symbol"] == "inner_init");
  CHECK(j["top_symbols"][0]["lookups"] == 3);
  CHECK(j["top_symbols"][0]["failed"] == 1);
  REQUIRE(j["threads"].size() == 2);
  CHECK(j["threads"][1]["tid"] == 43);
  CHECK(j["threads"][1]["dlsym"] == 3);
}

TEST_CASE("stats says how complete the trace is", "[viewer][stats]") {
  test::ScratchDir dir;
  std::string error;
  {
    const std::string path = dir.file("clean.trace");
    REQUIRE(test::write_viewer_trace(path, true) == "");
    auto reader = TraceReader::open(path, &error);
    REQUIRE(reader);
    const std::string out = stats_text(*reader);
    INFO(out);
    CHECK(has(out, "  end:       exited with status 0\n"));
    CHECK(has(out, "  trace:     complete"));
    // The viewer trace: dlsym "helper", "plugin_init" and dlvsym "missing"@"V1" (failed).
    CHECK(has(out, "       1        1  missing@V1\n"));
    CHECK(has(out, "  dlvsym            1          1\n"));
    CHECK(has(out, "  dlclose           1          0\n"));
  }
  const std::string path = dir.file("killed.trace");
  REQUIRE(test::write_viewer_trace(path, false) == "");
  {
    auto reader = TraceReader::open(path, &error);
    REQUIRE(reader);
    const std::string out = stats_text(*reader);
    INFO(out);
    CHECK(
        has(out, "  end:       no recorded end: killed by SIGKILL, vanished, or still running\n"));
  }
  // Cut inside the ring: truncated, some events lost.
  auto bytes = test::read_file(path);
  const auto& h = *reinterpret_cast<const format::FileHeader*>(bytes.data());
  const size_t cut = test::file_offset_of(h, h.ring_offset + 2 * format::kSlotSize + 40);
  auto reader = TraceReader::open_bytes(bytes.data(), cut, &error);
  REQUIRE(reader);
  const std::string out = stats_text(*reader);
  INFO(out);
  CHECK(has(out, "  trace:     truncated or damaged"));
  CHECK(has(out, "truncated"));
  CHECK(has(out, "  events:    5 recorded, 2 readable, 3 dropped\n"));
  viewer::StatsOptions json;
  json.json = true;
  const auto j = nlohmann::json::parse(stats_text(*reader, json));
  CHECK(j["completeness"]["truncated"] == true);
  CHECK(j["completeness"]["complete"] == false);
  CHECK(j["events"]["readable"] == 2);
}

TEST_CASE("stats and tree survive garbled traces", "[viewer][stats][tree]") {
  const int opened = test::for_each_garbled_trace(4321, [](const TraceReader& reader) {
    std::FILE* sink = std::tmpfile();
    REQUIRE(sink);
    viewer::StatsOptions json;
    json.json = true;
    CHECK(viewer::stats_trace(reader, {}, sink).ok());
    CHECK(viewer::stats_trace(reader, json, sink).ok());
    viewer::TreeOptions all;
    all.all = true;
    CHECK(viewer::tree_trace(reader, {}, true, sink).ok());
    CHECK(viewer::tree_trace(reader, all, false, sink).ok());
    std::fclose(sink);
  });
  CHECK(opened > 0);
}

// Threads: many threads calling dlsym at once lose nothing while the ring is big enough, and when
// it wraps the trace says exactly how many events were overwritten and keeps the object table.
#include <catch2/catch.hpp>
#include <set>
#include <sstream>
#include <string>

#include "dltrace/reader.h"
#include "harness.h"

using nlohmann::json;
using namespace dltrace::test;

namespace {

constexpr int kThreads = 8;
constexpr int kCallsPerThread = 20000;
constexpr uint64_t kProgramCalls = 2 + uint64_t{kThreads} * kCallsPerThread;  // 2 dlopen + dlsyms

struct Run {
  std::string trace_path;
  json trace;
};

Run run_threads(const std::string& name, RunOptions opts) {
  settle_fixtures();
  std::string dir = temp_dir(name);
  Run r;
  r.trace_path = dir + "/threads.trace";
  ProcessResult p =
      run_traced({fixture("rt_threads"), std::to_string(kThreads), std::to_string(kCallsPerThread)},
                 r.trace_path, opts);
  INFO("stderr: " << p.err);
  REQUIRE(p.exit_code == 0);
  REQUIRE(p.out == "calls " + std::to_string(kProgramCalls) + "\n");
  r.trace = export_json(r.trace_path);
  return r;
}

}  // namespace

TEST_CASE("8 threads x 20000 dlsym: every call recorded once", "[runtime][threads]") {
  RunOptions opts;
  opts.env["DLTRACE_STACK_DEPTH"] =
      "0";  // keeps the 160k-event export small; the wrap test has stacks
  Run r = run_threads("threads", opts);
  const json& events = r.trace["events"];

  uint64_t dlsyms = 0;
  std::set<uint64_t> seqs;
  std::set<uint64_t> tids;
  bool seqs_unique = true;
  for (const auto& e : events) {
    if (!seqs.insert(e["seq"].get<uint64_t>()).second) seqs_unique = false;
    if (e["call"] == "dlsym" && e.contains("symbol") && e["symbol"] == "rt_plugin_fn") {
      ++dlsyms;
      tids.insert(e["tid"].get<uint64_t>());
    }
  }
  CHECK(dlsyms == uint64_t{kThreads} * kCallsPerThread);
  CHECK(seqs_unique);
  CHECK(r.trace["dropped_events"] == 0);
  CHECK(tids.size() == kThreads);
  // One event per traced call: seqs 1..N with nothing missing.
  CHECK(events.size() == kProgramCalls);
  if (!seqs.empty()) {
    CHECK(*seqs.begin() == 1);
    CHECK(*seqs.rbegin() == kProgramCalls);
  }

  // The reader agrees with the export.
  std::string error;
  auto reader = dltrace::TraceReader::open(r.trace_path, &error);
  INFO("reader: " << error);
  REQUIRE(reader != nullptr);
  CHECK(reader->last_seq() == kProgramCalls);
  CHECK(reader->recovery().dropped_events == 0);
  CHECK(reader->recovery().torn_events == 0);
}

TEST_CASE("a small ring wraps: dropped_events is exact, objects survive", "[runtime][threads]") {
  RunOptions opts;
  opts.env["DLTRACE_BUFFER_SIZE"] = "1M";
  Run r = run_threads("threads-wrap", opts);
  const json& events = r.trace["events"];

  std::string error;
  auto reader = dltrace::TraceReader::open(r.trace_path, &error);
  INFO("reader: " << error);
  REQUIRE(reader != nullptr);
  const uint64_t slots = reader->header().slot_count;
  INFO("slot_count " << slots << ", events present " << events.size() << ", dropped "
                     << r.trace["dropped_events"]);
  REQUIRE(slots > 0);
  REQUIRE(slots < kProgramCalls);  // 1M really wraps

  // Every traced call got a seq.
  CHECK(reader->last_seq() == kProgramCalls);

  std::set<uint64_t> seqs;
  bool seqs_unique = true;
  for (const auto& e : events)
    if (!seqs.insert(e["seq"].get<uint64_t>()).second) seqs_unique = false;
  CHECK(seqs_unique);
  REQUIRE_FALSE(events.empty());
  CHECK(events.size() <= slots);
  // The ring keeps the newest events (format.h: "the oldest events are overwritten"): nothing
  // older than one ring's worth, and the last call. A writer preempted between reserving its seq
  // and committing must not overwrite a slot that already holds a newer event.
  uint64_t stale = 0;
  for (uint64_t s : seqs) stale += s <= kProgramCalls - slots ? 1 : 0;
  INFO(stale << " events older than the last " << slots
             << " seqs survived (a newer event in the "
                "same slot was overwritten by a late commit)");
  CHECK(*seqs.begin() > kProgramCalls - slots);
  CHECK(*seqs.rbegin() == kProgramCalls);
  // dropped_events is exactly (seqs handed out) - (events present).
  CHECK(r.trace["dropped_events"].get<uint64_t>() == reader->last_seq() - events.size());
  CHECK(r.trace["dropped_events"].get<uint64_t>() == kProgramCalls - events.size());
  CHECK(reader->recovery().dropped_events == kProgramCalls - events.size());

  // The objects loaded by the first two (long overwritten) dlopen events are still in the table.
  const json* plugin = find_object(r.trace, "librt_plugin.so");
  const json* libm = find_object(r.trace, "libm.so.6");
  REQUIRE(plugin != nullptr);
  REQUIRE(libm != nullptr);
  CHECK((*plugin)["cause"] == "dlopen");
  CHECK((*plugin)["opened_by"] == 1);
  CHECK((*plugin)["load_seq"] == 1);
  CHECK((*libm)["cause"] == "dlopen");
  CHECK((*libm)["opened_by"] == 2);
  CHECK((*libm)["load_seq"] == 2);
  REQUIRE(find_object(r.trace, "rt_threads") != nullptr);
  CHECK((*find_object(r.trace, "rt_threads"))["cause"] == "startup");
  // The surviving dlsym events still resolve to the plugin object.
  for (const auto& e : events)
    if (e["call"] == "dlsym") {
      CHECK(e["object"] == (*plugin)["id"]);
      break;
    }
}

TEST_CASE("a small ring wraps inside one long dlopen: the newest events are kept",
          "[runtime][threads]") {
  // Deterministic form of the late-commit case above: the outer dlopen reserves seq 1 when it
  // starts and commits when it returns, after its library's constructor made 10001 calls. With a
  // 1M buffer (a few thousand slots) seq 1 is far older than the ring's window, so committing it
  // must not overwrite the newer event that now lives in its slot.
  settle_fixtures();
  std::string dir = temp_dir("ctor-wrap");
  std::string trace_path = dir + "/ctor.trace";
  RunOptions opts;
  opts.env["DLTRACE_BUFFER_SIZE"] = "1M";
  opts.env["DLTRACE_STACK_DEPTH"] = "0";
  ProcessResult p = run_traced({fixture("rt_ctor_wrap")}, trace_path, opts);
  INFO("stderr: " << p.err);
  REQUIRE(p.exit_code == 0);
  const uint64_t calls = 1 + 10001 + 1;
  REQUIRE(p.out == "calls " + std::to_string(calls) + "\n");

  std::string error;
  auto reader = dltrace::TraceReader::open(trace_path, &error);
  INFO("reader: " << error);
  REQUIRE(reader != nullptr);
  const uint64_t slots = reader->header().slot_count;
  REQUIRE(slots < calls);
  CHECK(reader->last_seq() == calls);

  json t = export_json(trace_path);
  std::set<uint64_t> seqs;
  for (const auto& e : t["events"]) seqs.insert(e["seq"].get<uint64_t>());
  REQUIRE_FALSE(seqs.empty());
  INFO("slot_count " << slots << ", events present " << seqs.size() << ", oldest seq present "
                     << *seqs.begin() << ", newest " << *seqs.rbegin());
  CHECK(seqs.size() == t["events"].size());
  CHECK(*seqs.rbegin() == calls);
  CHECK(*seqs.begin() > calls - slots);  // seq 1 (the outer dlopen) is outside the window
  CHECK(t["dropped_events"].get<uint64_t>() == calls - seqs.size());
  // The object the overwritten dlopen loaded is still fully described.
  bool found = false;
  for (const auto& o : t["objects"])
    if (o["path"].is_string() &&
        o["path"].get<std::string>().find("librt_ctor_many.so") != std::string::npos) {
      found = true;
      CHECK(o["opened_by"] == 1);
      CHECK(o["cause"] == "dlopen");
    }
  CHECK(found);
}

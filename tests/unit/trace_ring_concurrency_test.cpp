// Many threads committing events and interning strings and stacks at once: every event must be
// readable exactly once and every count exact. Also built under ThreadSanitizer (tests/tsan).
#include <catch2/catch.hpp>
#include <set>
#include <thread>

#include "trace_test_support.h"

using namespace dltrace;
using dltrace::test::open_writer;
using dltrace::test::ScratchDir;

TEST_CASE("8 threads x 100k commits with interning: every event readable exactly once",
          "[trace][concurrency]") {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100000;
  constexpr int kShared = 50;
  ScratchDir dir;
  preload::TraceWriter w;
  // Room for all 800k events without wrapping (the ring is the largest power of two that fits).
  REQUIRE(open_writer(w, dir.file("mt.trace"), 192ull << 20) == "");
  REQUIRE(w.header()->slot_count >= uint64_t(kThreads) * kPerThread);

  std::vector<std::string> shared;
  for (int i = 0; i < kShared; ++i) shared.push_back("shared_symbol_" + std::to_string(i));

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string own = "thread_" + std::to_string(t);
      for (int i = 0; i < kPerThread; ++i) {
        format::EventSlot e{};
        e.seq = w.reserve_seq();
        e.call = uint16_t(format::CallKind::kDlsym);
        e.tid = uint32_t(t);
        e.result = i;
        e.name = w.intern_string(shared[size_t(i % kShared)].c_str());
        e.version = w.intern_string(own.c_str());
        uint64_t ips[2] = {uint64_t(t), uint64_t(i % 10)};
        e.stack = w.intern_stack(ips, 2);
        w.commit(e);
      }
    });
  }
  for (auto& th : threads) th.join();
  w.close();

  std::string error;
  auto r = TraceReader::open(dir.file("mt.trace"), &error);
  INFO(error);
  REQUIRE(r);
  const uint64_t total = uint64_t(kThreads) * kPerThread;
  CHECK(r->last_seq() == total);
  CHECK(r->recovery().dropped_events == 0);
  CHECK(r->recovery().torn_events == 0);
  CHECK(r->recovery().clean());

  std::vector<std::vector<bool>> seen(kThreads, std::vector<bool>(kPerThread));
  uint64_t count = 0, expected_seq = 1, bad = 0;
  std::set<uint32_t> name_ids;
  r->for_each_event([&](const format::EventSlot& e) {
    if (e.seq != expected_seq++ || e.tid >= kThreads || e.result < 0 || e.result >= kPerThread ||
        seen[e.tid][size_t(e.result)]) {
      ++bad;
      return true;
    }
    seen[e.tid][size_t(e.result)] = true;
    ++count;
    // Spot-check the interned payloads (checking all 800k would dominate the run time).
    if (e.result % 97 == 0) {
      if (r->string(e.name) != shared[size_t(e.result % kShared)]) ++bad;
      if (r->string(e.version) != "thread_" + std::to_string(e.tid)) ++bad;
      auto s = r->stack(e.stack);
      if (s.size() != 2 || s[0] != e.tid || s[1] != uint64_t(e.result % 10)) ++bad;
    }
    name_ids.insert(e.name);
    return true;
  });
  CHECK(bad == 0);
  CHECK(count == total);
  // Racing first interns may give a string more than one id, but never many.
  CHECK(name_ids.size() >= size_t(kShared));
  CHECK(name_ids.size() <= size_t(kShared) * kThreads);
  CHECK(r->header().next_string_id <= kShared * kThreads + kThreads * kThreads);
}

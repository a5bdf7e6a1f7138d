// ProgressLine: format, the 1 s delay, the 10/s throttle, erasing, and silence off a terminal.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "util/progress.h"
#include "viewer_test_trace.h"

namespace dltrace::viewer {
namespace {

constexpr uint64_t kMs = 1'000'000;

struct Fake {
  uint64_t now = 5'000 * kMs;  // any origin
  std::vector<std::string> writes;

  ProgressLine::Config config(bool tty, uint64_t stride = 1) {
    ProgressLine::Config c;
    c.enabled = tty;
    c.clock = [this] { return now; };
    c.sink = [this](std::string_view s) { writes.emplace_back(s); };
    c.stride = stride;
    return c;
  }
};

TEST_CASE("progress: count and line text", "[viewer][progress]") {
  CHECK(ProgressLine::count_text(0) == "0");
  CHECK(ProgressLine::count_text(999) == "999");
  CHECK(ProgressLine::count_text(1000) == "1.0k");
  CHECK(ProgressLine::count_text(12'345) == "12.3k");
  CHECK(ProgressLine::count_text(999'949) == "999.9k");
  CHECK(ProgressLine::count_text(999'999) == "1.0M");
  CHECK(ProgressLine::count_text(1'200'000) == "1.2M");
  CHECK(ProgressLine::count_text(10'000'000) == "10.0M");
  CHECK(ProgressLine::count_text(3'400'000'000) == "3.4G");
  CHECK(ProgressLine::text("reading events", 1'200'000, 10'000'000) ==
        "dltrace: reading events 1.2M / 10.0M (12%)");
  CHECK(ProgressLine::text("reading events", 10'000'000, 10'000'000) ==
        "dltrace: reading events 10.0M / 10.0M (100%)");
  CHECK(ProgressLine::text("reading events", 7, 0) == "dltrace: reading events 7");
  CHECK(ProgressLine::text("x", 50, 40) == "dltrace: x 50 / 40 (100%)");  // never above 100%
}

TEST_CASE("progress: nothing during the first second, then at most every 100 ms, erased at the end",
          "[viewer][progress]") {
  Fake fake;
  {
    ProgressLine line("reading events", 10'000'000, fake.config(true));
    for (uint64_t done = 1; done <= 100; ++done) {
      fake.now += 9 * kMs;  // 0.9 s in all: still within the first second
      line.update(done);
    }
    CHECK(fake.writes.empty());
    fake.now += 100 * kMs;  // 1.0 s
    line.update(1'200'000);
    REQUIRE(fake.writes.size() == 1);
    CHECK(fake.writes[0] == "\rdltrace: reading events 1.2M / 10.0M (12%)\033[K");
    // 40 ms later and 40 ms after that: throttled.
    fake.now += 40 * kMs;
    line.update(1'300'000);
    fake.now += 40 * kMs;
    line.update(1'400'000);
    CHECK(fake.writes.size() == 1);
    fake.now += 20 * kMs;  // 100 ms after the last draw
    line.update(1'500'000);
    REQUIRE(fake.writes.size() == 2);
    CHECK(fake.writes[1] == "\rdltrace: reading events 1.5M / 10.0M (15%)\033[K");
    // A burst of updates in 1 s of fake time draws at most ~10 lines.
    for (int i = 0; i < 1000; ++i) {
      fake.now += 1 * kMs;
      line.update(1'500'000 + uint64_t(i));
    }
    CHECK(fake.writes.size() >= 2 + 9);
    CHECK(fake.writes.size() <= 2 + 10);
    CHECK(line.drawn());
  }  // the destructor erases it
  CHECK(fake.writes.back() == "\r\033[K");
}

TEST_CASE("progress: work done within a second writes nothing, not even the erase",
          "[viewer][progress]") {
  Fake fake;
  {
    ProgressLine line("reading events", 1000, fake.config(true));
    for (uint64_t done = 1; done <= 1000; ++done) {
      fake.now += kMs / 2;
      line.update(done);
    }
    line.finish();
    line.update(1000);  // after finish: nothing
  }
  CHECK(fake.writes.empty());
}

TEST_CASE("progress: not a terminal: nothing at all, whatever the duration", "[viewer][progress]") {
  Fake fake;
  {
    ProgressLine line("reading events", 1000, fake.config(false));
    for (uint64_t done = 1; done <= 1000; ++done) {
      fake.now += 50 * kMs;
      line.update(done);
    }
    CHECK_FALSE(line.drawn());
  }
  CHECK(fake.writes.empty());
}

TEST_CASE("progress: the clock is read once per stride of work", "[viewer][progress]") {
  Fake fake;
  int reads = 0;
  ProgressLine::Config c = fake.config(true, 4096);
  c.clock = [&] {
    ++reads;
    return fake.now;
  };
  ProgressLine line("reading events", 1 << 20, std::move(c));
  const int at_start = reads;
  for (uint64_t done = 1; done <= (1 << 20); ++done) line.update(done);
  CHECK(reads - at_start == (1 << 20) / 4096);
}

TEST_CASE("progress: with_progress forwards every event and the catalog", "[viewer][progress]") {
  test::ScratchDir dir;
  const std::string path = dir.file("v.trace");
  REQUIRE(test::write_viewer_trace(path) == "");
  std::string error;
  auto reader = TraceReader::open(path, &error);
  REQUIRE(reader);
  auto wrapped = with_progress(*reader);
  std::vector<uint64_t> seqs, wrapped_seqs;
  reader->for_each_event([&](const format::EventSlot& e) {
    seqs.push_back(e.seq);
    return true;
  });
  wrapped->for_each_event([&](const format::EventSlot& e) {
    wrapped_seqs.push_back(e.seq);
    return e.seq < 3;  // stopping early still works
  });
  REQUIRE(seqs.size() == 5);
  CHECK(wrapped_seqs == std::vector<uint64_t>{1, 2, 3});
  CHECK(wrapped->last_seq() == reader->last_seq());
  CHECK(wrapped->objects().size() == reader->objects().size());
  CHECK(wrapped->process().exe == "/usr/bin/host");
  CHECK(wrapped->event(3).has_value());
}

}  // namespace
}  // namespace dltrace::viewer

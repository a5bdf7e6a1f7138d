// A progress line on the terminal for work that takes more than a second:
//
//   dltrace: reading events 1.2M / 10.0M (12%)
//
// drawn on stderr only when stderr is a terminal, at most ~10 times a second, rewritten in place
// ("\r...\033[K") and erased when the work is done. Nothing at all is written when stderr is not a
// terminal or when the work finishes within the first second. The clock, the "is a terminal"
// answer and the output are injectable for tests.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "dltrace/reader.h"

namespace dltrace::viewer {

class ProgressLine {
 public:
  using Clock = std::function<uint64_t()>;             // monotonic nanoseconds
  using Sink = std::function<void(std::string_view)>;  // receives the terminal bytes

  static constexpr uint64_t kDelayNs = 1'000'000'000;   // nothing before the work took 1 s
  static constexpr uint64_t kIntervalNs = 100'000'000;  // then at most one redraw per 100 ms

  struct Config {
    bool enabled = false;  // false: update()/finish() do nothing
    Clock clock;           // default: CLOCK_MONOTONIC
    Sink sink;             // default: write(2) to stderr
    // update() reads the clock only every `stride` units of work (a clock read per event
    // would cost more than the rest of the line's bookkeeping together).
    uint64_t stride = 4096;
  };

  // The real thing: enabled when stderr is a terminal and `enabled` (callers pass false when
  // their own output streams to that same terminal, where the line would interleave with it).
  ProgressLine(std::string what, uint64_t total, bool enabled = true);
  ProgressLine(std::string what, uint64_t total, Config config);
  ~ProgressLine() { finish(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // `done` units of `total` are finished. Cheap when nothing is due: one compare.
  void update(uint64_t done) {
    if (done >= next_check_) tick(done);
  }
  // Erases the line if it was drawn; later updates draw nothing.
  void finish();

  bool drawn() const { return drawn_; }

  // "dltrace: reading events 1.2M / 10.0M (12%)"; without a total: "dltrace: reading events 1.2M".
  static std::string text(std::string_view what, uint64_t done, uint64_t total);
  // 999, 12.3k, 1.2M, 3.4G.
  static std::string count_text(uint64_t n);
  // Whether stderr is a terminal.
  static bool stderr_is_terminal();

 private:
  void tick(uint64_t done);

  std::string what_;
  uint64_t total_;
  Config config_;
  uint64_t start_ns_ = 0;
  uint64_t last_draw_ns_ = 0;
  uint64_t next_check_ = UINT64_MAX;
  bool drawn_ = false;
  bool finished_ = false;
};

// A TraceReader that forwards to `inner` and reports for_each_event's progress on a
// ProgressLine ("reading events N / readable"). Lets a command get a progress line without
// changing how it reads the trace. `streamed_output`: where the command writes while it reads,
// if anywhere (show, export); when that is a terminal too, there is no progress line, which
// would interleave with the output. Commands that print at the end (stats, tree) pass nullptr.
std::unique_ptr<TraceReader> with_progress(const TraceReader& inner,
                                           std::FILE* streamed_output = nullptr);

}  // namespace dltrace::viewer

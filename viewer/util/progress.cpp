#include "util/progress.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <iterator>
#include <utility>

namespace dltrace::viewer {
namespace {

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

void write_stderr(std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // a progress line is not worth an error
    s.remove_prefix(size_t(n));
  }
}

}  // namespace

ProgressLine::ProgressLine(std::string what, uint64_t total, bool enabled)
    : ProgressLine(std::move(what), total,
                   Config{enabled && stderr_is_terminal(), nullptr, nullptr, 4096}) {}

ProgressLine::ProgressLine(std::string what, uint64_t total, Config config)
    : what_(std::move(what)), total_(total), config_(std::move(config)) {
  if (!config_.enabled) return;
  if (!config_.clock) config_.clock = monotonic_ns;
  if (!config_.sink) config_.sink = write_stderr;
  if (config_.stride == 0) config_.stride = 1;
  start_ns_ = config_.clock();
  next_check_ = 0;
}

void ProgressLine::tick(uint64_t done) {
  next_check_ = done + config_.stride;
  const uint64_t now = config_.clock();
  if (now - start_ns_ < kDelayNs) return;
  if (drawn_ && now - last_draw_ns_ < kIntervalNs) return;
  std::string line = "\r";
  line += text(what_, done, total_);
  line += "\033[K";
  config_.sink(line);
  drawn_ = true;
  last_draw_ns_ = now;
}

void ProgressLine::finish() {
  if (finished_) return;
  finished_ = true;
  next_check_ = UINT64_MAX;
  if (drawn_) config_.sink("\r\033[K");
}

std::string ProgressLine::count_text(uint64_t n) {
  char buf[32];
  if (n < 1000) {
    std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(n));
  } else {
    static constexpr struct {
      double scale;
      char suffix;
    } kUnits[] = {{1e3, 'k'}, {1e6, 'M'}, {1e9, 'G'}, {1e12, 'T'}};
    size_t u = 0;
    // One decimal: 999.95k would print as "1000.0k"; step up a unit before that.
    while (u + 1 < std::size(kUnits) && double(n) >= kUnits[u + 1].scale * 0.99995) ++u;
    std::snprintf(buf, sizeof buf, "%.1f%c", double(n) / kUnits[u].scale, kUnits[u].suffix);
  }
  return buf;
}

std::string ProgressLine::text(std::string_view what, uint64_t done, uint64_t total) {
  std::string s = "dltrace: ";
  s += what;
  s += ' ';
  s += count_text(done);
  if (total != 0) {
    s += " / ";
    s += count_text(total);
    const auto pct = done >= total
                         ? 100u
                         : static_cast<unsigned>(total <= UINT64_MAX / 100 ? done * 100 / total
                                                                           : done / (total / 100));
    char buf[16];
    std::snprintf(buf, sizeof buf, " (%u%%)", pct);
    s += buf;
  }
  return s;
}

bool ProgressLine::stderr_is_terminal() {
  return isatty(STDERR_FILENO) == 1;
}

namespace {

class ProgressReader final : public TraceReader {
 public:
  ProgressReader(const TraceReader& inner, bool enabled) : inner_(inner), enabled_(enabled) {}

  const format::FileHeader& header() const override { return inner_.header(); }
  const ProcessInfo& process() const override { return inner_.process(); }
  const Recovery& recovery() const override { return inner_.recovery(); }
  const std::vector<ObjectRecord>& objects() const override { return inner_.objects(); }
  const ObjectRecord* object(uint32_t id) const override { return inner_.object(id); }
  const ObjectRecord* object_at(uint64_t address, uint64_t seq) const override {
    return inner_.object_at(address, seq);
  }
  std::string_view string(uint32_t id) const override { return inner_.string(id); }
  bool has_string(uint32_t id) const override { return inner_.has_string(id); }
  std::span<const uint64_t> stack(uint32_t id) const override { return inner_.stack(id); }
  std::span<const format::PyFrame> py_stack(uint32_t id) const override {
    return inner_.py_stack(id);
  }
  std::vector<OverrideRecord> overrides_for(uint64_t seq) const override {
    return inner_.overrides_for(seq);
  }
  uint64_t last_seq() const override { return inner_.last_seq(); }
  std::optional<format::EventSlot> event(uint64_t seq) const override { return inner_.event(seq); }

  void for_each_event(const std::function<bool(const format::EventSlot&)>& fn) const override {
    const uint64_t last = inner_.last_seq();
    const uint64_t readable = last - std::min(last, inner_.recovery().dropped_events);
    ProgressLine line("reading events", readable, enabled_);
    uint64_t done = 0;
    inner_.for_each_event([&](const format::EventSlot& e) {
      line.update(++done);
      return fn(e);
    });
  }

 private:
  const TraceReader& inner_;
  bool enabled_;
};

}  // namespace

std::unique_ptr<TraceReader> with_progress(const TraceReader& inner, std::FILE* streamed_output) {
  const bool output_on_terminal = streamed_output && isatty(fileno(streamed_output)) == 1;
  return std::make_unique<ProgressReader>(inner, !output_on_terminal);
}

}  // namespace dltrace::viewer

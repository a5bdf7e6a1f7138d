// `dltrace show --color` and `show --follow` on synthetic traces: colour only when asked to (or
// on a terminal without NO_COLOR), and following a trace while its writer is still adding to it.
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "commands/show_command.h"
#include "viewer_test_trace.h"

using namespace dltrace;
using test::has;

namespace {

std::string show_text(const TraceReader& reader, const viewer::ShowOptions& options) {
  return test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::show_trace(reader, options, f).ok()); });
}

std::unique_ptr<TraceReader> viewer_trace(test::ScratchDir& dir) {
  const std::string path = dir.file("v.trace");
  REQUIRE(test::write_viewer_trace(path) == "");
  std::string error;
  auto reader = TraceReader::open(path, &error);
  REQUIRE(reader);
  return reader;
}

// Sets or unsets NO_COLOR for one scope.
class NoColorEnv {
 public:
  explicit NoColorEnv(const char* value) {
    if (const char* old = std::getenv("NO_COLOR")) saved_ = old, had_ = true;
    if (value)
      ::setenv("NO_COLOR", value, 1);
    else
      ::unsetenv("NO_COLOR");
  }
  ~NoColorEnv() {
    if (had_)
      ::setenv("NO_COLOR", saved_.c_str(), 1);
    else
      ::unsetenv("NO_COLOR");
  }

 private:
  std::string saved_;
  bool had_ = false;
};

// show --color=auto written to a real terminal (a pseudo-terminal), as the user would see it.
std::string show_on_terminal(const TraceReader& reader) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  REQUIRE(master >= 0);
  REQUIRE(::grantpt(master) == 0);
  REQUIRE(::unlockpt(master) == 0);
  const int slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
  REQUIRE(slave >= 0);
  std::FILE* f = ::fdopen(slave, "w");
  REQUIRE(f);
  viewer::ShowOptions options;  // color: auto
  std::string text;
  // Read while writing: the terminal's buffer is small.
  std::thread drain([&] {
    char buf[4096];
    pollfd p{master, POLLIN, 0};
    while (::poll(&p, 1, 500) > 0) {
      const ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, size_t(n));
    }
  });
  CHECK(viewer::show_trace(reader, options, f).ok());
  std::fclose(f);
  drain.join();
  ::close(master);
  return text;
}

}  // namespace

TEST_CASE("show --color=always marks failures, call names and overrides", "[viewer][show][color]") {
  test::ScratchDir dir;
  auto reader = viewer_trace(dir);
  viewer::ShowOptions always;
  always.color = viewer::ColorMode::kAlways;
  const std::string colored = show_text(*reader, always);
  INFO(colored);
  CHECK(has(colored, "\x1b[1mdlopen\x1b[0m("));          // call names bold
  CHECK(has(colored, "\x1b[31m\x1b[1mdlvsym\x1b[0m("));  // a failed call: red
  CHECK(has(colored, "= \x1b[31mNULL\x1b[0m"));
  CHECK(has(colored, "\x1b[31merror: /usr/bin/host: undefined symbol: missing, version V1"));
  CHECK(has(colored, "\x1b[33m=> RTLD_NOW|RTLD_GLOBAL [override dl.toml:3]\x1b[0m"));

  viewer::ShowOptions never;
  never.color = viewer::ColorMode::kNever;
  const std::string plain = show_text(*reader, never);
  CHECK_FALSE(has(plain, "\x1b["));
  // The same text without the escapes.
  CHECK(has(plain,
            "dlopen(\"libplugin.so\", RTLD_NOW|RTLD_LOCAL => RTLD_NOW|RTLD_GLOBAL "
            "[override dl.toml:3]) = 0x5000"));
  viewer::ShowOptions automatic;  // a file is not a terminal
  CHECK_FALSE(has(show_text(*reader, automatic), "\x1b["));
}

TEST_CASE("show --color=auto on a terminal: colour unless NO_COLOR", "[viewer][show][color]") {
  test::ScratchDir dir;
  auto reader = viewer_trace(dir);
  {
    NoColorEnv env(nullptr);
    const std::string text = show_on_terminal(*reader);
    INFO(text);
    CHECK(has(text, "dlopen"));
    CHECK(has(text, "\x1b[1mdlopen"));
  }
  {
    NoColorEnv env("1");
    const std::string text = show_on_terminal(*reader);
    INFO(text);
    CHECK(has(text, "dlopen"));
    CHECK_FALSE(has(text, "\x1b["));
  }
}

namespace {

// Reads `fd` until `needle` has appeared in everything read so far, or `seconds` pass.
bool read_until(int fd, std::string& text, const std::string& needle, int seconds = 30) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  char buf[4096];
  while (!has(text, needle)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, int(left.count())) <= 0) return false;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return has(text, needle);
    text.append(buf, size_t(n));
  }
  return true;
}

format::EventSlot open_event(preload::TraceWriter& w, uint64_t seq, const char* file,
                             uint64_t parent) {
  format::EventSlot e = test::make_event(seq, w.intern_string(file));
  e.call = uint16_t(format::CallKind::kDlopen);
  e.flags = e.effective_flags = RTLD_NOW;
  e.handle = 0x5000 + seq;
  e.parent_seq = parent;
  return e;
}

}  // namespace

TEST_CASE("show --follow prints events as they are committed and ends with the process",
          "[viewer][show][follow]") {
  test::ScratchDir dir;
  const std::string path = dir.file("live.trace");
  preload::TraceWriter w;
  REQUIRE(test::open_writer(w, path, 1 << 20, 8) == "");
  const char* argv[] = {"live"};
  w.write_process("/usr/bin/live", "/", 1, argv);
  format::EventSlot first = open_event(w, w.reserve_seq(), "libfirst.so", 0);
  w.commit(first);

  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::FILE* out = ::fdopen(fds[1], "w");
  REQUIRE(out);
  std::atomic<bool> stop{false};
  absl::Status status = absl::UnknownError("not run");
  viewer::ShowOptions options;
  options.trace = path;
  options.color = viewer::ColorMode::kNever;
  viewer::FollowControl control;
  control.poll_interval = std::chrono::milliseconds(20);
  control.hold_back = std::chrono::seconds(20);  // far more than this test needs
  control.stop = [&] { return stop.load(); };
  std::thread follower([&] {
    status = viewer::follow_trace(options, control, out);
    std::fclose(out);
  });

  std::string text;
  CHECK(read_until(fds[0], text, "dlopen(\"libfirst.so\""));
  CHECK(has(text, "end: still running; following the trace"));

  // An outer dlopen still running (reserved, not committed) holds back its nested call.
  const uint64_t outer_seq = w.reserve_seq();
  format::EventSlot nested = open_event(w, w.reserve_seq(), "libnested.so", outer_seq);
  w.commit(nested);
  format::EventSlot outer = open_event(w, outer_seq, "libouter.so", 0);
  w.commit(outer);
  CHECK(read_until(fds[0], text, "dlopen(\"libnested.so\""));
  CHECK(text.find("libouter.so") < text.find("libnested.so"));  // seq order, as `show` prints
  CHECK(has(text, "42  dlopen(\"libouter.so\""));
  CHECK(has(text, "42    dlopen(\"libnested.so\""));  // indented under it

  // A seq that is never committed does not hold back the end.
  w.reserve_seq();
  format::EventSlot last = open_event(w, w.reserve_seq(), "liblast.so", 0);
  w.commit(last);
  w.set_end(format::EndKind::kExit, 3);
  CHECK(read_until(fds[0], text, "exited with status 3"));
  stop = true;  // only so that a failure above cannot hang the test; the footer proves the end
  follower.join();
  ::close(fds[0]);
  INFO(text);
  CHECK(status.ok());
  CHECK(has(text, "dlopen(\"liblast.so\""));
  CHECK(has(text, "-- process "));
  CHECK(text.find("liblast.so") < text.find("-- process "));
}

TEST_CASE("show --follow waits for the file and stops when asked", "[viewer][show][follow]") {
  test::ScratchDir dir;
  viewer::ShowOptions options;
  options.trace = dir.file("not-yet.trace");
  viewer::FollowControl control;
  control.poll_interval = std::chrono::milliseconds(10);
  int polls = 0;
  control.stop = [&] { return ++polls > 5; };
  const std::string text = test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::follow_trace(options, control, f).ok()); });
  CHECK(polls > 5);
  CHECK(text.empty());

  // A file that is there but is not a trace is an error, not something to wait for.
  const std::string junk = dir.file("junk.trace");
  std::string bytes(8192, 'x');
  test::write_file(junk, bytes.data(), bytes.size());
  options.trace = junk;
  polls = 0;
  std::FILE* sink = std::tmpfile();
  CHECK_FALSE(viewer::follow_trace(options, control, sink).ok());
  std::fclose(sink);
}

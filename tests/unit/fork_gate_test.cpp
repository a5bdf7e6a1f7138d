// The fork gate: fork waits for every thread's Section to end, new Sections wait for the fork, a
// prepare handler on the forking thread may still enter Sections, and a child of a threaded
// parent is cautious.
#include "fork_gate.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

namespace fg = dltrace::preload::fork_gate;

namespace {

std::atomic<int> g_child_handler_runs{0};
void child_handler() {
  g_child_handler_runs.fetch_add(1);
}

// Registered before the gate's handlers, so its prepare handler runs after the gate's (LIFO):
// a Section entered there must not wait for the fork it is part of.
std::atomic<int> g_late_prepare_sections{0};
void late_prepare() {
  fg::Section s;
  g_late_prepare_sections.fetch_add(1);
}

void install_once() {
  static bool done = [] {
    pthread_atfork(late_prepare, nullptr, nullptr);
    fg::install(child_handler);
    return true;
  }();
  (void)done;
}

// Forks; the child exits with `code()`'s value. Returns the child's exit status.
template <typename Code>
int fork_and_wait(Code code) {
  const pid_t pid = fork();
  if (pid == 0) _exit(code());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("fork waits until no thread is inside a Section", "[fork_gate]") {
  install_once();
  std::atomic<bool> inside{false}, leave{false};
  std::atomic<int64_t> left_at{0};
  std::thread t([&] {
    fg::Section s;
    inside = true;
    while (!leave) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    left_at = std::chrono::steady_clock::now().time_since_epoch().count();
  });
  while (!inside) std::this_thread::yield();
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    leave = true;
  });
  const int before = g_child_handler_runs.load();
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  const int64_t forked_at = std::chrono::steady_clock::now().time_since_epoch().count();
  waitpid(pid, nullptr, 0);
  release.join();
  t.join();
  // The fork returned only after the other thread had left its Section.
  CHECK(left_at.load() != 0);
  CHECK(forked_at >= left_at.load());
  CHECK(g_child_handler_runs.load() == before);  // the child handler ran in the child only
  CHECK(g_late_prepare_sections.load() > 0);     // and a prepare handler's Section did not hang
}

TEST_CASE("a child of a threaded parent is cautious until proven safe", "[fork_gate]") {
  install_once();
  std::atomic<bool> stop{false};
  std::thread t([&] {
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  const int status = fork_and_wait([] {
    if (!fg::cautious()) return 1;
    fg::proven_safe();
    return fg::cautious() ? 2 : 0;
  });
  stop = true;
  t.join();
  CHECK(status == 0);
  CHECK_FALSE(fg::cautious());  // the parent is not
}

TEST_CASE("threads keep entering Sections while others fork", "[fork_gate]") {
  install_once();
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> sections{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      while (!stop) {
        fg::Section s;
        sections.fetch_add(1, std::memory_order_relaxed);
      }
    });
  int failures = 0;
  for (int i = 0; i < 200; ++i) failures += fork_and_wait([] { return 0; }) != 0;
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(sections.load() > 0);
}

// The ring's growth (issue 16): a process that records thousands of events writes a new page of
// its trace every few calls. Those pages must come in with the chunk that backs them, not one
// page fault each on the recording path. Counted in page faults (the kernel's count, exact
// for a single-threaded loop), not timed.
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

namespace {

// Page faults taken by `rt_dlopen_loop iterations` (perf's software counter: faults the program
// took, not pages the kernel populated for it on request, which getrusage counts too), run with
// the NAME=VALUE settings given; -1 where perf events are not allowed here.
long page_faults(int iterations, const std::vector<std::string>& settings) {
  const std::string loop = fixture("rt_dlopen_loop");
  const std::string count = std::to_string(iterations);
  std::vector<std::string> env_strings = settings;
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  char* argv[] = {const_cast<char*>(loop.c_str()), const_cast<char*>(count.c_str()), nullptr};
  int go[2];
  REQUIRE(::pipe2(go, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    char c;
    ::close(go[1]);
    if (::read(go[0], &c, 1) != 1) ::_exit(126);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::execve(argv[0], argv, envp.data());
    ::_exit(127);
  }
  ::close(go[0]);
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_PAGE_FAULTS;
  attr.disabled = 1;
  attr.enable_on_exec = 1;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  const int fd = int(::syscall(SYS_perf_event_open, &attr, pid, -1, -1, PERF_FLAG_FD_CLOEXEC));
  const char c = 'x';
  REQUIRE(::write(go[1], &c, 1) == 1);
  ::close(go[1]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  if (fd < 0) return -1;
  uint64_t faults = 0;
  const bool read_ok = ::read(fd, &faults, sizeof faults) == sizeof faults;
  ::close(fd);
  REQUIRE(read_ok);
  return long(faults);
}

}  // namespace

TEST_CASE("the ring's new pages come in with their chunk, not one fault per page", "[cost]") {
  const std::string dir = temp_dir("ring-growth");
  const int iterations = 4000;
  const long native = page_faults(iterations, {"PATH=/usr/bin:/bin"});
  if (native < 0) {
    WARN("perf events are not allowed here (kernel.perf_event_paranoid): not measured");
    return;
  }
  const long traced =
      page_faults(iterations, {"LD_PRELOAD=" + preload_path(), "DLTRACE_OUTPUT=" + dir + "/",
                               "DLTRACE_QUIET=1", "DLTRACE_STACK_DEPTH=0"});
  const auto traces = traces_in(dir);
  REQUIRE(traces.size() == 1);
  struct stat st {};
  REQUIRE(::stat(traces[0].c_str(), &st) == 0);
  const long pages = long(st.st_size / 4096);
  INFO("native " << native << " faults, traced " << traced << "; the trace holds " << pages
                 << " pages");
  // ~600 bytes per iteration: the loop writes ~600 pages of trace. Faulting each one in on the
  // recording path cost +600 faults (and ~3 us of kernel time each on a VM).
  REQUIRE(pages > 300);
  CHECK(traced - native < pages / 4);
}

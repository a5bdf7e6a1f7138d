// The ring's growth (issue 16): a process that records thousands of events writes a new page of
// its trace every few calls. Those pages must come in with the chunk that backs them, not one
// page fault each on the recording path. Counted in page faults (the kernel's count, exact
// for a single-threaded loop), not timed.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

namespace {

// Page faults of `rt_dlopen_loop iterations` with the settings given.
long page_faults(int iterations, const std::vector<std::string>& settings) {
  return page_faults_of({fixture("rt_dlopen_loop"), std::to_string(iterations)}, settings);
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

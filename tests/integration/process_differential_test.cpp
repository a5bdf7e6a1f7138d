// Differential tests of a process's life under the recorder: threads, fork, exec and a crash
// behave exactly as untraced (same stdout, stderr, exit status or signal). These programs print
// pids, which differ between any two runs, so pids are compared as "PID" (and checked for what
// they must be: exec keeps the pid, fork does not). Each process image writes its own trace.
#include <signal.h>

#include <catch2/catch.hpp>
#include <regex>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

namespace {

// The output with the pid after "parent ", "child ", "before " and "after " replaced by "PID".
std::string without_pids(const std::string& out) {
  static const std::regex pid_re(R"((^|\n)(parent|child|before|after) [0-9]+)");
  return std::regex_replace(out, pid_re, "$1$2 PID");
}

struct Runs {
  ProcessResult plain;
  ProcessResult traced;
  std::string trace_dir;
};

// Runs argv untraced and traced (one trace per process image in trace_dir) and requires the
// same behaviour up to pids.
Runs same_up_to_pids(const std::vector<std::string>& argv) {
  settle_fixtures();
  Runs r;
  r.trace_dir = temp_dir("procdiff");
  r.plain = run(argv);
  r.traced = run_traced(argv, r.trace_dir + "/");
  INFO("UNTRACED: " << describe(r.plain));
  INFO("TRACED: " << describe(r.traced));
  CHECK(r.traced.exit_code == r.plain.exit_code);
  CHECK(r.traced.signal == r.plain.signal);
  CHECK(without_pids(r.traced.out) == without_pids(r.plain.out));
  CHECK(r.traced.err == r.plain.err);
  return r;
}

}  // namespace

TEST_CASE("fork: the child and the parent behave as untraced, each with its own trace",
          "[differential][process-differential]") {
  Runs r = same_up_to_pids({fixture("rt_fork")});
  REQUIRE(r.plain.exit_code == 0);
  const int parent = number_after(r.traced.out, "parent ");
  const int child = number_after(r.traced.out, "child ");
  CHECK(parent > 0);
  CHECK(child > 0);
  CHECK(parent != child);
  CHECK(r.traced.out.find("parent done ") != std::string::npos);
  CHECK(traces_in(r.trace_dir).size() == 2);
}

TEST_CASE("exec: the new image behaves as untraced, with the same pid and a second trace",
          "[differential][process-differential]") {
  Runs r = same_up_to_pids({fixture("rt_exec")});
  REQUIRE(r.plain.exit_code == 0);
  const int before = number_after(r.traced.out, "before ");
  CHECK(before > 0);
  CHECK(number_after(r.traced.out, "after ") == before);
  CHECK(traces_in(r.trace_dir).size() == 2);
}

TEST_CASE("threads: 4 threads x 500 dlsym behave as untraced",
          "[differential][process-differential]") {
  Runs r = same_up_to_pids({fixture("rt_threads"), "4", "500"});
  REQUIRE(r.plain.exit_code == 0);
  CHECK(number_after(r.plain.out, "calls ") == 2 + 4 * 500);
}

TEST_CASE("a crash: the traced process dies of the same signal after the same output",
          "[differential][process-differential]") {
  for (const auto& [mode, signal] : {std::pair{"segv", SIGSEGV}, std::pair{"abort", SIGABRT}}) {
    SECTION(mode) {
      Runs r = same_up_to_pids({fixture("rt_crash"), mode, "20"});
      CHECK(r.plain.signal == signal);
      CHECK(r.traced.out.find("marker 20\n") != std::string::npos);
      CHECK(traces_in(r.trace_dir).size() == 1);
    }
  }
}

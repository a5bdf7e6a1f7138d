// The preload loaded but recording nothing (a process `dltrace run --only` does not name): each
// dl* call is passed through on the caller's behalf, and that must stay cheap when the program
// also unloads libraries. Counted in instructions (callgrind), per iteration of a
// dlopen+dlsym+dlclose loop over a tiny library (the difference of two loop lengths, so start-up
// cancels); not a timing.
#include <catch2/catch.hpp>
#include <string>

#include "harness.h"

using namespace dltrace::test;

namespace {

// Instructions of `iterations` loop iterations plus the process around them.
long long instructions(const std::string& dir, int iterations, bool preload) {
  std::vector<std::string> argv = {"valgrind", "--tool=callgrind", "--trace-children=yes",
                                   "--callgrind-out-file=/dev/null", "env"};
  if (preload) {
    argv.push_back("LD_PRELOAD=" + preload_path());
    argv.push_back("DLTRACE_ONLY=no-such-program");
    argv.push_back("DLTRACE_OUTPUT=" + dir + "/");
  }
  argv.push_back(fixture("rt_dlopen_loop"));
  argv.push_back(std::to_string(iterations));
  RunOptions opts;
  opts.timeout_seconds = 240;
  const ProcessResult r = run(argv, opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  const auto at = r.err.rfind("Collected : ");
  REQUIRE(at != std::string::npos);
  return std::stoll(r.err.substr(at + 12));
}

long long per_iteration(const std::string& dir, bool preload) {
  return (instructions(dir, 250, preload) - instructions(dir, 50, preload)) / 200;
}

}  // namespace

TEST_CASE("an unselected process passes dlopen through cheaply after a dlclose", "[only]") {
  REQUIRE(run({"valgrind", "--version"}).exit_code == 0);  // scripts/install-deps.sh installs it
  const std::string dir = temp_dir("passthrough");
  const long long native = per_iteration(dir, false);
  const long long passed = per_iteration(dir, true);
  INFO("native " << native << ", passed through " << passed << " instructions per iteration");
  // The caller's return gadget stays cached across the loop's dlclose (it was searched for again
  // after every unload: +9.2k per iteration); the rest is the interposers and the trampoline.
  CHECK(passed - native < 2500);
  CHECK(traces_in(dir).empty());
}

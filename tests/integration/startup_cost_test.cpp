// Process start (issue 16): the syscalls the recorder adds to a process that makes no dl* call,
// as strace sees them. Each one costs every traced process (a build, a test suite's wrapper
// scripts); the counts here are what the start-up is allowed, not timings.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

namespace {

// One line per syscall of /bin/true (strace -qq -o FILE), run with `env` given to it only.
std::vector<std::string> syscalls_of_true(const std::map<std::string, std::string>& env,
                                          const std::string& dir) {
  const std::string out = dir + "/strace.txt";
  std::vector<std::string> argv = {"strace", "-qq", "-s", "4096", "-o", out};
  for (const auto& [k, v] : env) {
    argv.push_back("-E");
    argv.push_back(k + "=" + v);
  }
  argv.push_back("/bin/true");
  const ProcessResult r = run(argv);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  std::vector<std::string> lines;
  std::ifstream in(out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line.rfind("+++", 0) != 0) lines.push_back(line);
  ::unlink(out.c_str());
  return lines;
}

int count_starting(const std::vector<std::string>& lines, const std::string& prefix) {
  int n = 0;
  for (const auto& l : lines) n += l.rfind(prefix, 0) == 0;
  return n;
}

int count_containing(const std::vector<std::string>& lines, const std::string& needle) {
  int n = 0;
  for (const auto& l : lines) n += l.find(needle) != std::string::npos;
  return n;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

bool have_strace() {
  return run({"strace", "-V"}).exit_code == 0;
}

}  // namespace

TEST_CASE("a traced process start makes few syscalls of its own", "[runtime][startup]") {
  if (!have_strace()) {
    WARN("strace is not installed (scripts/install-deps.sh): start-up syscalls not checked");
    return;
  }
  const std::string dir = temp_dir("startup-cost");
  const auto nothing =
      syscalls_of_true({{"LD_PRELOAD", preload_path()}, {"DLTRACE_ONLY", "no-such-program"}}, dir);
  const auto traced = syscalls_of_true(
      {{"LD_PRELOAD", preload_path()}, {"DLTRACE_OUTPUT", dir + "/"}, {"DLTRACE_QUIET", "1"}}, dir);
  INFO("traced /bin/true:\n" << joined(traced));
  REQUIRE(traces_in(dir).size() == 1);

  // The fatal-signal handlers: every signal blocked once around the five changes.
  CHECK(count_starting(traced, "rt_sigprocmask(") == 2);
  CHECK(count_starting(traced, "rt_sigaction(") == 10);
  // The command line is the constructor's arguments; /proc/self/exe is read once.
  CHECK(count_containing(traced, "/proc/self/cmdline") == 0);
  CHECK(count_containing(traced, "readlink(\"/proc/self/exe\"") == 1);
  // The trace: created with no lstat first, backed by one write of zeros, its three intern
  // tables in one mapping; fchmod only where the umask took bits from 0600.
  CHECK(count_containing(traced, ".trace\", O_RDWR|O_CREAT|O_EXCL") == 1);
  CHECK(count_containing(traced, "\"" + dir + "/") == 1);  // that openat, nothing else
  CHECK(count_starting(traced, "pwrite") == 1);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  if ((mask & 0600) == 0) CHECK(count_starting(traced, "fchmod(") == 0);
  // No probe of the shadow stack by syscall (RDSSP answers).
  CHECK(count_starting(traced, "arch_prctl(0x5005") == 0);
  // In all: 55 more than the preload recording nothing before these savings, 32 after.
  CHECK(traced.size() - nothing.size() <= 34);

  const auto t = export_json(traces_in(dir)[0]);
  CHECK(t["process"]["argv"] == nlohmann::json::array({"/bin/true"}));
}

TEST_CASE("a traced process start touches few pages of its own", "[runtime][startup]") {
  const std::string dir = temp_dir("startup-faults");
  const std::vector<std::string> argv = {"/bin/true"};
  const std::string preload = "LD_PRELOAD=" + preload_path();
  const long nothing = page_faults_of(argv, {preload, "DLTRACE_ONLY=no-such-program"});
  if (nothing < 0) {
    WARN("perf events are not allowed here (kernel.perf_event_paranoid): not measured");
    return;
  }
  const long traced =
      page_faults_of(argv, {preload, "DLTRACE_OUTPUT=" + dir + "/", "DLTRACE_QUIET=1"});
  REQUIRE(traces_in(dir).size() == 1);
  INFO("page faults: preload recording nothing " << nothing << ", traced " << traced);
  // Each page a process touches first is a fault (~1.5 us on a VM). The recorder's small
  // variables share a few pages of .bss, its large arrays sit apart (DLTRACE_LARGE_BSS): +47
  // over recording nothing when each small variable sat on a page of its own between two
  // arrays, +36 after.
  CHECK(traced - nothing <= 41);
}

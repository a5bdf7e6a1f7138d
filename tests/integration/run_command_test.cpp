// `dltrace run`: the launcher records how its child ended when the recorder could not (SIGKILL,
// SIGTERM: the recorder leaves those dispositions to the program; ld.so's own fatal _exit), and,
// as a child subreaper, how the orphans it reaped ended.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>

#include "harness.h"

using namespace dltrace::test;

TEST_CASE("dltrace run records a child killed by SIGTERM or SIGKILL", "[runtime][run]") {
  // Paths via std::filesystem: GCC 12 warns falsely (-Wrestrict) on some std::string + literal.
  for (const std::string sig : {"TERM", "KILL"}) {
    DYNAMIC_SECTION("SIG" << sig) {
      const std::string trace =
          (std::filesystem::path(temp_dir("run-end")) / "child.trace").string();
      RunOptions quiet;
      quiet.env.emplace("DLTRACE_QUIET", "1");
      const std::string command = sig == "TERM" ? "kill -TERM $$" : "kill -KILL $$";
      ProcessResult r =
          run({viewer_path(), "run", "-o", trace, "--", "/bin/sh", "-c", command}, quiet);
      INFO(describe(r));
      const int signo = sig == "TERM" ? 15 : 9;
      CHECK(r.exit_code == 128 + signo);  // like a shell
      nlohmann::json j = export_json(trace);
      CHECK(j["process"]["end"] == "signal");
      CHECK(j["process"]["signal"] == signo);
      CHECK(j["process"]["end_monotonic_ns"].get<uint64_t>() >=
            j["process"]["start_monotonic_ns"].get<uint64_t>());
    }
  }
}

TEST_CASE("without the launcher, a SIGTERM end stays unknown rather than guessed",
          "[runtime][run]") {
  const std::string trace = temp_dir("run-end") + "/direct.trace";
  ProcessResult r = run_traced({"/bin/sh", "-c", "kill -TERM $$"}, trace);
  CHECK(r.signal == 15);
  nlohmann::json j = export_json(trace);
  CHECK(j["process"]["end"] == "unknown");
}

namespace {

// The trace of `pid` among the traces in `dir`, or "".
std::string trace_of(const std::string& dir, int pid) {
  const std::string suffix = "." + std::to_string(pid) + ".trace";
  for (const std::string& t : traces_in(dir))
    if (t.size() > suffix.size() && t.compare(t.size() - suffix.size(), suffix.size(), suffix) == 0)
      return t;
  return {};
}

}  // namespace

TEST_CASE("dltrace run reaps an orphan as a subreaper and records how it ended", "[runtime][run]") {
  // rt_orphan returns from main at once; its child, reparented to `dltrace run`, ends with status 7
  // through a raw exit_group that no in-process recorder sees.
  const std::string dir = temp_dir("run-orphan");
  RunOptions quiet;
  quiet.env.emplace("DLTRACE_QUIET", "1");
  ProcessResult r = run({viewer_path(), "run", "-o", dir + "/", "--", fixture("rt_orphan")}, quiet);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  const int parent = number_after(r.out, "parent "), orphan = number_after(r.out, "orphan ");
  REQUIRE(parent > 0);
  REQUIRE(orphan > 0);
  const std::string orphan_trace = trace_of(dir, orphan);
  REQUIRE(orphan_trace != "");
  nlohmann::json o = export_json(orphan_trace);
  INFO(o["process"].dump());
  CHECK(o["process"]["end"] == "exit");
  CHECK(o["process"]["exit_status"] == 7);
  CHECK(o["process"]["end_via"] == "observed");
  CHECK(o["process"]["end_monotonic_ns"].get<uint64_t>() >=
        o["process"]["start_monotonic_ns"].get<uint64_t>());
  // The parent returned from main: the recorder saw that itself; run leaves it alone.
  nlohmann::json p = export_json(trace_of(dir, parent));
  CHECK(p["process"]["end"] == "exit");
  CHECK(p["process"]["exit_status"] == 0);
  CHECK(p["process"]["end_via"] != "observed");
}

TEST_CASE("dltrace run records ld.so's own fatal _exit(127) on a lazy-binding failure",
          "[runtime][run]") {
  const std::string trace = (std::filesystem::path(temp_dir("run-lazy")) / "lazy.trace").string();
  RunOptions quiet;
  quiet.env.emplace("DLTRACE_QUIET", "1");
  ProcessResult r = run({viewer_path(), "run", "-o", trace, "--", fixture("rt_lazy_exit")}, quiet);
  INFO(describe(r));
  CHECK(r.exit_code == 127);
  CHECK(r.err.find("symbol lookup error") != std::string::npos);
  CHECK(r.err.find("rt_undefined_fn") != std::string::npos);
  nlohmann::json j = export_json(trace);
  INFO(j["process"].dump());
  CHECK(j["process"]["end"] == "exit");
  CHECK(j["process"]["exit_status"] == 127);
  CHECK(j["process"]["end_via"] == "observed");
}

TEST_CASE("dltrace run does not wait for a daemon its child leaves running", "[runtime][run]") {
  const std::string dir = temp_dir("run-daemon");
  RunOptions quiet;
  quiet.env.emplace("DLTRACE_QUIET", "1");
  const auto start = std::chrono::steady_clock::now();
  ProcessResult r = run({viewer_path(), "run", "-o", dir + "/", "--", "/bin/sh", "-c",
                         "sleep 30 </dev/null >/dev/null 2>&1 & echo daemon $!"},
                        quiet);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  INFO(describe(r));
  const int daemon = number_after(r.out, "daemon ");
  if (daemon > 0) ::kill(daemon, SIGKILL);
  CHECK(r.exit_code == 0);
  CHECK(elapsed < std::chrono::seconds(10));
}

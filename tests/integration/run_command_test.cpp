// `dltrace run`: the launcher records how its child ended when the recorder could not (SIGKILL,
// SIGTERM: the recorder leaves those dispositions to the program).
#include <filesystem>

#include <catch2/catch.hpp>

#include "harness.h"

using namespace dltrace::test;

TEST_CASE("dltrace run records a child killed by SIGTERM or SIGKILL", "[runtime][run]") {
  // Paths via std::filesystem: GCC 12 warns falsely (-Wrestrict) on some std::string + literal.
  for (const std::string sig : {"TERM", "KILL"}) {
    DYNAMIC_SECTION("SIG" << sig) {
      const std::string trace = (std::filesystem::path(temp_dir("run-end")) / "child.trace").string();
      RunOptions quiet;
      quiet.env.emplace("DLTRACE_QUIET", "1");
      const std::string command = sig == "TERM" ? "kill -TERM $$" : "kill -KILL $$";
      ProcessResult r = run({viewer_path(), "run", "-o", trace, "--", "/bin/sh", "-c", command}, quiet);
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

TEST_CASE("without the launcher, a SIGTERM end stays unknown rather than guessed", "[runtime][run]") {
  const std::string trace = temp_dir("run-end") + "/direct.trace";
  ProcessResult r = run_traced({"/bin/sh", "-c", "kill -TERM $$"}, trace);
  CHECK(r.signal == 15);
  nlohmann::json j = export_json(trace);
  CHECK(j["process"]["end"] == "unknown");
}

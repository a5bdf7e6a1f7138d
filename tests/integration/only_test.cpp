// DLTRACE_ONLY / `dltrace run --only GLOB`: only the processes whose executable matches record;
// the others run untraced, create no file and say nothing, and their children decide in turn.
#include <catch2/catch.hpp>
#include <string>

#include "harness.h"

using namespace dltrace::test;

TEST_CASE("dltrace run --only records only the matching processes of a tree", "[run][only]") {
  const std::string dir = temp_dir("only");
  // sh (not matched) starts python3.11 (matched) and ls (not matched).
  const std::vector<std::string> command = {
      "/bin/sh", "-c",
      "/usr/bin/python3 -c 'import json; print(1)'; /bin/ls / >/dev/null; echo done"};
  ProcessResult plain = run(command);
  std::vector<std::string> argv = {viewer_path(), "run",      "-o", dir + "/",
                                   "--only",      "python3*", "--"};
  argv.insert(argv.end(), command.begin(), command.end());
  ProcessResult traced = run(argv);
  INFO(describe(traced));
  REQUIRE(traced.exit_code == 0);
  CHECK(traced.out == plain.out);
  const auto traces = traces_in(dir);
  REQUIRE(traces.size() == 1);
  CHECK(traces[0].find("/dltrace.python3") != std::string::npos);
}

TEST_CASE("DLTRACE_ONLY: a process it does not name records nothing and says nothing", "[only]") {
  const std::string dir = temp_dir("only-env");
  RunOptions opts;
  opts.env["DLTRACE_ONLY"] = "python3*";
  opts.env["DLTRACE_QUIET"] = "0";  // silent anyway: not recording is what was asked
  ProcessResult plain = run({"/bin/ls", "/"});
  ProcessResult traced = run_traced({"/bin/ls", "/"}, dir + "/", opts);
  INFO(describe(traced));
  CHECK(traced.out == plain.out);
  CHECK(traced.err == plain.err);
  CHECK(traces_in(dir).empty());
  SECTION("a malformed pattern: not recording, one line") {
    opts.env["DLTRACE_ONLY"] = "lib[";
    ProcessResult bad = run_traced({"/bin/ls", "/"}, dir + "/", opts);
    CHECK(bad.out == plain.out);
    CHECK(bad.err == "dltrace: invalid DLTRACE_ONLY 'lib[': unterminated '['; not recording\n");
    CHECK(traces_in(dir).empty());
  }
}

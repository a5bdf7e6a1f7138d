// What `dltrace run` says last on its stderr: the traces written, the failed calls (as explain
// classifies them: probes are not failures) and the command to type next; `--explain` prints
// the findings at once. The program's stdout and exit status stay its own.
#include <catch2/catch.hpp>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

namespace {
RunOptions with_env(std::map<std::string, std::string> env) {
  RunOptions opts;
  opts.env = std::move(env);
  return opts;
}
}  // namespace

namespace {

std::vector<std::string> lines_of(const std::string& err) {
  std::vector<std::string> out;
  std::istringstream in(err);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

bool has_line(const std::string& err, const std::string& regex) {
  for (const auto& line : lines_of(err))
    if (std::regex_match(line, std::regex(regex))) return true;
  return false;
}

std::string last_line(const std::string& err) {
  const auto lines = lines_of(err);
  return lines.empty() ? std::string() : lines.back();
}

}  // namespace

TEST_CASE("dltrace run ends with the failed calls and the explain command to type",
          "[runtime][run][summary]") {
  const std::string dir = temp_dir("summary");
  const std::string trace = dir + "/host.trace";
  const ProcessResult plain = run({fixture("rt_exit3")});
  const ProcessResult r = run({viewer_path(), "run", "-o", trace, "--", fixture("rt_exit3")});
  INFO(describe(r));
  CHECK(r.exit_code == 3);  // the program's
  CHECK(r.out == plain.out);
  CHECK(has_line(r.err, R"(dltrace: 1 failed call in rt_exit3 \(pid [0-9]+\))"));
  CHECK(last_line(r.err) == "dltrace: see why with: dltrace explain " + trace);
  // What the next command then says: the same failure.
  const ProcessResult explain = run({viewer_path(), "explain", trace});
  CHECK(explain.exit_code == 1);
}

TEST_CASE("dltrace run: no failed calls, and probes are not counted as failures",
          "[runtime][run][summary]") {
  const std::string dir = temp_dir("summary-ok");
  SECTION("nothing failed") {
    const ProcessResult r = run({viewer_path(), "run", "-o", dir + "/t.trace", "--", "/bin/true"});
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    CHECK(last_line(r.err) ==
          "dltrace: no failed calls; view the trace with: dltrace show " + dir + "/t.trace");
  }
  SECTION("an RTLD_NOLOAD question the program expected") {
    const ProcessResult r =
        run({viewer_path(), "run", "-o", dir + "/p.trace", "--", "/usr/bin/python3", "-c",
             "import ctypes\ntry:\n  ctypes.CDLL('libdltrace_not_loaded.so', mode=4)\nexcept "
             "OSError:\n  print('not loaded')"});
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    CHECK(r.out == "not loaded\n");
    CHECK(std::regex_match(last_line(r.err),
                           std::regex(R"(dltrace: no failed calls \([0-9]+ probes?: misses the )"
                                      R"(program expected\); view the trace with: dltrace show )" +
                                      dir + "/p.trace")));
  }
}

TEST_CASE("dltrace run with several processes names the ones whose calls failed",
          "[runtime][run][summary]") {
  const std::string dir = temp_dir("summary-tree");
  const ProcessResult r = run({viewer_path(), "run", "-o", dir + "/", "--", "/bin/sh", "-c",
                               fixture("rt_local_plugin") + " >/dev/null; /bin/true; " +
                                   fixture("rt_exit3") + " >/dev/null 2>&1; exit 5"});
  INFO(describe(r));
  CHECK(r.exit_code == 5);
  const auto traces = traces_in(dir);
  REQUIRE(traces.size() >= 4);  // sh, rt_local_plugin, true, rt_exit3 (sh may exec the last)
  CHECK(has_line(r.err, "dltrace: " + std::to_string(traces.size()) + " trace files written:"));
  CHECK(has_line(r.err, R"(dltrace:   \S+/dltrace\.rt_local_plugin\.[0-9]+\.trace +)"
                        R"(rt_local_plugin \(pid [0-9]+\): 1 failed call)"));
  CHECK(has_line(r.err, R"(dltrace:   \S+/dltrace\.true\.[0-9]+\.trace +true \(pid [0-9]+\))"));
  CHECK(has_line(r.err, R"(dltrace: failed calls in 2 of [0-9]+ processes: )"
                        R"((rt_local_plugin|rt_exit3) \(pid [0-9]+\), )"
                        R"((rt_local_plugin|rt_exit3) \(pid [0-9]+\))"));
  CHECK(std::regex_match(last_line(r.err),
                         std::regex(R"(dltrace: see why with: dltrace explain \S+/dltrace\.)"
                                    R"((rt_local_plugin|rt_exit3)\.[0-9]+\.trace)")));
}

TEST_CASE("dltrace run --explain prints explain's findings at once, on stderr",
          "[runtime][run][summary]") {
  const std::string dir = temp_dir("summary-explain");
  const std::string trace = dir + "/host.trace";
  const ProcessResult plain = run({fixture("rt_local_plugin")});
  const ProcessResult r =
      run({viewer_path(), "run", "--explain", "-o", trace, "--", fixture("rt_local_plugin")},
          with_env({{"NO_COLOR", "1"}}));
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  CHECK(r.out == plain.out);  // the findings do not mix with the program's output
  const ProcessResult explain =
      run({viewer_path(), "explain", trace}, with_env({{"NO_COLOR", "1"}}));
  REQUIRE(explain.exit_code == 1);
  CHECK(r.err.find(explain.out) != std::string::npos);
  CHECK(has_line(r.err, R"(dltrace: 1 failed call in rt_local_plugin \(pid [0-9]+\))"));
  CHECK(r.err.find("see why with") == std::string::npos);  // already said

  SECTION("DLTRACE_QUIET=1 leaves out the summary, not what --explain asked for") {
    const ProcessResult q = run({viewer_path(), "run", "--explain", "-o", dir + "/q.trace", "--",
                                 fixture("rt_local_plugin")},
                                with_env({{"NO_COLOR", "1"}, {"DLTRACE_QUIET", "1"}}));
    INFO(describe(q));
    CHECK(q.exit_code == 0);
    CHECK(q.err.find("failed call") == std::string::npos);
    CHECK(q.err.find("rt_plugin_fn") != std::string::npos);
  }
  SECTION("without --explain, DLTRACE_QUIET=1 means no summary at all") {
    const ProcessResult q =
        run({viewer_path(), "run", "-o", dir + "/q2.trace", "--", fixture("rt_local_plugin")},
            with_env({{"DLTRACE_QUIET", "1"}}));
    INFO(describe(q));
    CHECK(q.err.empty());
  }
}

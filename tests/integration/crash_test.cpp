// Crash safety: every event committed before SIGKILL / SIGSEGV / abort is in the trace, the trace
// says how the process ended, and the traced process dies exactly like the untraced one.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

extern char** environ;

using nlohmann::json;
using namespace dltrace::test;

namespace {

void require_unique_seqs(const json& trace) {
  std::set<uint64_t> seqs;
  for (const auto& e : trace["events"]) {
    REQUIRE(e["seq"].is_number_unsigned());
    INFO("seq " << e["seq"]);
    REQUIRE(seqs.insert(e["seq"].get<uint64_t>()).second);
  }
}

int count_markers(const std::string& out) {
  int n = 0;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("marker ", 0) == 0) ++n;
  return n;
}

// `dltrace show` must work post-mortem too (spec: every reading subcommand).
void require_show_works(const std::string& trace) {
  ProcessResult show = run({viewer_path(), "show", trace});
  INFO("dltrace show stderr: " << show.err);
  CHECK(show.signal == 0);
  CHECK(show.exit_code == 0);
  CHECK_FALSE(show.out.empty());
}

// Starts a traced rt_crash, reads its stdout until `stop_after` markers (or a "waiting" line) have
// been seen, SIGKILLs it, drains what it had already written, and reports the status.
struct KilledRun {
  int markers = 0;
  int wait_status = 0;
  std::string out;
};

KilledRun run_and_kill(const std::vector<std::string>& argv, const std::string& trace_path,
                       int stop_after) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    if (entry.rfind("DLTRACE_", 0) == 0 || entry.rfind("LD_PRELOAD=", 0) == 0) continue;
    env.push_back(entry);
  }
  env.push_back("LD_PRELOAD=" + preload_path());
  env.push_back("DLTRACE_QUIET=1");
  env.push_back("DLTRACE_OUTPUT=" + trace_path);
  std::vector<char*> envp;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);

  int out_pipe[2];
  REQUIRE(pipe2(out_pipe, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argp[0], &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  REQUIRE(rc == 0);

  KilledRun r;
  bool killed = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  char buf[65536];
  for (;;) {
    if (!killed &&
        (count_markers(r.out) >= stop_after || r.out.find("waiting\n") != std::string::npos)) {
      kill(pid, SIGKILL);
      killed = true;
    }
    if (!killed && std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      killed = true;
      FAIL_CHECK("rt_crash did not print " << stop_after << " markers within 60 s");
    }
    pollfd pfd = {out_pipe[0], POLLIN, 0};
    if (poll(&pfd, 1, 200) <= 0) continue;
    ssize_t n = read(out_pipe[0], buf, sizeof buf);
    if (n <= 0) break;  // EOF: the process is gone
    r.out.append(buf, static_cast<size_t>(n));
  }
  close(out_pipe[0]);
  waitpid(pid, &r.wait_status, 0);
  r.markers = count_markers(r.out);
  return r;
}

}  // namespace

TEST_CASE("a process that dies by a signal keeps every committed event", "[runtime][crash]") {
  struct Case {
    const char* mode;
    int signal;
    const char* end;
  };
  const Case cases[] = {
      {"selfkill", SIGKILL, "unknown"},
      {"segv", SIGSEGV, "signal"},
      {"abort", SIGABRT, "signal"},
  };
  const int n = 200;
  for (const Case& c : cases) {
    SECTION(c.mode) {
      std::string dir = temp_dir(std::string("crash-") + c.mode);
      std::vector<std::string> argv = {fixture("rt_crash"), c.mode, std::to_string(n)};
      DifferentialResult d = run_differential(argv);
      INFO("untraced: exit " << d.plain.exit_code << " signal " << d.plain.signal);
      INFO("traced: exit " << d.traced.exit_code << " signal " << d.traced.signal
                           << " stderr: " << d.traced.err);
      REQUIRE(d.plain.signal == c.signal);
      // The traced process dies of the same signal, after the same output.
      CHECK(d.traced.signal == d.plain.signal);
      CHECK(d.traced.exit_code == d.plain.exit_code);
      CHECK(d.traced.out == d.plain.out);
      CHECK(count_markers(d.traced.out) == n);

      json trace = export_json(d.trace_path);
      // Every call completed before the signal: n dlopen and n dlsym events, all committed.
      CHECK(count_events(trace, "dlsym", "symbol", "rt_marker_sym") == n);
      CHECK(count_events(trace, "dlopen", "file", "librt_plugin.so") == n);
      CHECK(trace["dropped_events"] == 0);
      require_unique_seqs(trace);
      CHECK(trace["process"]["end"] == c.end);
      if (std::string(c.end) == "signal") CHECK(trace["process"]["signal"] == c.signal);
      require_show_works(d.trace_path);
      (void)dir;
    }
  }
}

TEST_CASE("SIGKILL from outside: events before the kill are all there", "[runtime][crash]") {
  settle_fixtures();
  SECTION("killed while blocked after N calls") {
    std::string dir = temp_dir("crash-wait");
    std::string trace_path = dir + "/wait.trace";
    const int n = 500;
    KilledRun r = run_and_kill({fixture("rt_crash"), "wait", std::to_string(n)}, trace_path, n + 1);
    REQUIRE(WIFSIGNALED(r.wait_status));
    CHECK(WTERMSIG(r.wait_status) == SIGKILL);
    REQUIRE(r.markers == n);
    json trace = export_json(trace_path);
    CHECK(count_events(trace, "dlsym", "symbol", "rt_marker_sym") == n);
    CHECK(count_events(trace, "dlopen", "file", "librt_plugin.so") == n);
    CHECK(trace["dropped_events"] == 0);
    require_unique_seqs(trace);
    CHECK(trace["process"]["end"] == "unknown");
    require_show_works(trace_path);
  }
  SECTION("killed in the middle of a stream of calls") {
    std::string dir = temp_dir("crash-stream");
    std::string trace_path = dir + "/stream.trace";
    const int k = 300;
    KilledRun r = run_and_kill({fixture("rt_crash"), "stream", "0"}, trace_path, k);
    REQUIRE(WIFSIGNALED(r.wait_status));
    CHECK(WTERMSIG(r.wait_status) == SIGKILL);
    REQUIRE(r.markers >= k);
    json trace = export_json(trace_path);
    // A printed marker means its dlopen and dlsym had returned, so both were committed. The call
    // in flight at the kill may or may not be there.
    int dlsyms = count_events(trace, "dlsym", "symbol", "rt_marker_sym");
    int dlopens = count_events(trace, "dlopen", "file", "librt_plugin.so");
    INFO("markers printed: " << r.markers << ", dlopen events: " << dlopens
                             << ", dlsym events: " << dlsyms);
    CHECK(dlsyms >= r.markers);
    CHECK(dlopens >= r.markers);
    CHECK(dlsyms <= dlopens);
    CHECK(dlopens <= dlsyms + 1);
    // At most the one event being written when the kill landed can be torn.
    CHECK(trace["dropped_events"].get<uint64_t>() <= 1);
    require_unique_seqs(trace);
    CHECK(trace["process"]["end"] == "unknown");
    require_show_works(trace_path);
  }
}

TEST_CASE("SIGKILL of a process that made no call: its 64 KiB trace holds the process and objects",
          "[runtime][crash][trace_size]") {
  settle_fixtures();
  std::string dir = temp_dir("crash-idle");
  std::string trace_path = dir + "/idle.trace";
  KilledRun r = run_and_kill({fixture("rt_crash"), "wait", "0"}, trace_path, 1);
  REQUIRE(WIFSIGNALED(r.wait_status));
  CHECK(WTERMSIG(r.wait_status) == SIGKILL);
  struct stat st {};
  REQUIRE(stat(trace_path.c_str(), &st) == 0);
  CHECK(st.st_size <= 64 * 1024);
  json trace = export_json(trace_path);
  CHECK(trace["events"].empty());
  CHECK(!trace["objects"].empty());
  CHECK(trace["process"]["argv"] == json::array({fixture("rt_crash"), "wait", "0"}));
  CHECK(trace["process"]["end"] == "unknown");
  CHECK(trace["recovery"]["truncated"] == false);
}

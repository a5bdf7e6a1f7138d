// The picture commands on a real recorded program (fixtures/pictures): `export --format chrome`
// parsed and checked for structure, `dot` laid out by Graphviz, `show --color`, and
// `show --follow` on a trace while its program is still running.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

extern char** environ;

using namespace dltrace::test;
using nlohmann::json;

namespace {

bool has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// Records pics_main once (no waiting) for the tests that only read the trace.
std::string pictures_trace() {
  settle_fixtures();
  const std::string trace = temp_dir("pics") + "/pics.trace";
  const ProcessResult r = run_traced({fixture("pics_main")}, trace);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  REQUIRE(has(r.out, "phase 2 done"));
  return trace;
}

// A child running in the background with its stdout on a pipe (stderr is inherited).
class Background {
 public:
  Background(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
      const std::string entry = *e;
      const std::string key = entry.substr(0, entry.find('='));
      if (key.rfind("DLTRACE_", 0) == 0 || key == "LD_PRELOAD" || env.count(key)) continue;
      env_strings.push_back(entry);
    }
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp, argp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> args = argv;
    for (auto& a : args) argp.push_back(a.data());
    argp.push_back(nullptr);
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    const int rc = posix_spawn(&pid_, argp[0], &actions, nullptr, argp.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_fd_ = fds[0];
    REQUIRE(rc == 0);
  }
  ~Background() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  // Reads stdout until `needle` is in it, EOF, or `seconds` pass; whether `needle` came.
  bool read_until(const std::string& needle, int seconds = 60) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!has(out_, needle)) {
      if (!read_some(deadline)) return has(out_, needle);
    }
    return true;
  }
  // Reads stdout to EOF (or until `seconds` pass); whether EOF came.
  bool read_to_end(int seconds = 60) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!eof_) {
      if (!read_some(deadline)) break;
    }
    return eof_;
  }
  // Still running?
  bool running() {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      status_ = status;
      pid_ = -1;
    }
    return pid_ > 0;
  }
  // Waits up to `seconds` for the exit; its exit code, or -1 (killed, or still running).
  int wait_exit(int seconds = 60) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (pid_ > 0) return -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  }
  const std::string& out() const { return out_; }

 private:
  bool read_some(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || eof_) return false;
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, int(left.count())) <= 0) return false;
    char buf[4096];
    const ssize_t n = ::read(out_fd_, buf, sizeof buf);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    out_.append(buf, size_t(n));
    return true;
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int status_ = 0;
  bool eof_ = false;
  std::string out_;
};

}  // namespace

TEST_CASE("export --format chrome of a real program is a well-formed Trace Event file",
          "[pictures][chrome]") {
  const std::string trace = pictures_trace();
  const ProcessResult r = run({viewer_path(), "export", "--format", "chrome", trace});
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  const json doc = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(doc.is_discarded());
  REQUIRE(doc["traceEvents"].is_array());
  const json& events = doc["traceEvents"];
  const int pid = doc["otherData"]["pid"].get<int>();

  std::map<uint64_t, const json*> by_seq;
  std::set<int> tids, named_tids;
  bool process_named = false;
  int spans = 0, instants = 0;
  for (const auto& e : events) {
    const std::string ph = e["ph"];
    if (ph == "M") {
      if (e["name"] == "process_name") process_named = e["pid"] == pid;
      if (e["name"] == "thread_name") named_tids.insert(e["tid"].get<int>());
      continue;
    }
    REQUIRE(e["ts"].is_number());
    CHECK(e["pid"] == pid);
    if (ph == "X") {
      ++spans;
      CHECK(e["dur"].is_number());
      CHECK(e["dur"].get<double>() >= 0);
      CHECK(e["tid"].is_number());
    } else {
      REQUIRE(ph == "i");
      ++instants;
      CHECK(e["s"].is_string());
    }
    if (e.contains("args") && e["args"].contains("seq")) {
      tids.insert(e["tid"].get<int>());
      by_seq[e["args"]["seq"].get<uint64_t>()] = &e;
    }
  }
  CHECK(process_named);
  CHECK(tids.size() >= 2);  // the main thread and the one that dlopens libpics_thread.so
  CHECK(named_tids == tids);
  CHECK(spans >= 5);
  CHECK(instants >= 3);

  // Every nested call lies inside its parent's span, on the same thread.
  int nested_opens = 0;
  for (const auto& [seq, e] : by_seq) {
    if (!(*e)["args"].contains("parent_seq")) continue;
    const auto parent = by_seq.find((*e)["args"]["parent_seq"].get<uint64_t>());
    REQUIRE(parent != by_seq.end());
    const json& p = *parent->second;
    INFO((*e).dump() << "\nparent: " << p.dump());
    CHECK(p["ph"] == "X");
    CHECK(p["tid"] == (*e)["tid"]);
    const double start = (*e)["ts"], end = start + (*e).value("dur", 0.0);
    const double p_start = p["ts"], p_end = p_start + p["dur"].get<double>();
    CHECK(start >= p_start - 1e-6);
    CHECK(end <= p_end + 1e-6);
    if ((*e)["cat"] == "dlopen") {
      ++nested_opens;
      CHECK(has((*e)["args"]["file"], "libpics_inner.so"));
      CHECK(has(p["args"]["file"], "libpics_outer.so"));
    }
  }
  CHECK(nested_opens == 1);

  bool failed_open = false, outer_open = false;
  for (const auto& [seq, e] : by_seq) {
    const json& args = (*e)["args"];
    if ((*e)["cat"] == "dlopen" && args["file"] == "libpics_missing.so") {
      failed_open = true;
      CHECK(args["ok"] == false);
      CHECK(has(args["error"], "libpics_missing.so"));
      CHECK(args["flags_text"] == "RTLD_LAZY|RTLD_LOCAL");
    }
    if ((*e)["cat"] == "dlopen" && has(args.value("file", ""), "libpics_outer.so")) {
      outer_open = true;
      CHECK(args["object"] == "libpics_outer.so");
      const auto fresh = args["new_objects"].get<std::set<std::string>>();
      CHECK(fresh == std::set<std::string>{"libpics_outer.so", "libpics_dep.so"});
    }
  }
  CHECK(failed_open);
  CHECK(outer_open);
}

TEST_CASE("dot --graph load of a real program lays out with Graphviz", "[pictures][dot]") {
  if (access("/usr/bin/dot", X_OK) != 0) {
    WARN("no /usr/bin/dot (graphviz); skipped");
    return;
  }
  const std::string trace = pictures_trace();
  const ProcessResult r = run({viewer_path(), "dot", "--graph", "load", trace});
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  for (const char* name : {"libpics_outer.so", "libpics_inner.so", "libpics_dep.so",
                           "libpics_thread.so", "libpics_late.so", "libpics_missing.so"}) {
    CHECK(has(r.out, name));
  }
  CHECK(has(r.out, "system librar"));
  CHECK_FALSE(has(r.out, "libc.so.6"));  // folded

  RunOptions with_stdin;
  with_stdin.stdin_data = r.out;
  const ProcessResult svg = run({"/usr/bin/dot", "-Tsvg"}, with_stdin);
  INFO(describe(svg));
  CHECK(svg.exit_code == 0);
  CHECK(has(svg.out, "<svg"));
  for (const char* name : {"libpics_outer.so", "libpics_inner.so", "libpics_dep.so",
                           "libpics_missing.so", "RTLD_NOW|RTLD_LOCAL"}) {
    CHECK(has(svg.out, name));
  }

  // --all draws libc; --focus keeps one branch; -o writes a file.
  const std::string dir = temp_dir("pics-dot");
  const ProcessResult all = run({viewer_path(), "dot", "--all", trace, "-o", dir + "/all.dot"});
  CHECK(all.exit_code == 0);
  const ProcessResult laid =
      run({"/usr/bin/dot", "-Tsvg", dir + "/all.dot", "-o", dir + "/all.svg"});
  CHECK(laid.exit_code == 0);
  const ProcessResult focus = run({viewer_path(), "dot", "--focus", "libpics_inner.so", trace});
  INFO(describe(focus));
  CHECK(focus.exit_code == 0);
  CHECK(has(focus.out, "libpics_outer.so"));  // its ancestors
  CHECK(has(focus.out, "pics_main"));
  CHECK_FALSE(has(focus.out, "libpics_late.so"));  // not on its path
  CHECK_FALSE(has(focus.out, "libpics_thread.so"));

  const ProcessResult nothing = run({viewer_path(), "dot", "--focus", "libnothing.so", trace});
  CHECK(nothing.exit_code == 2);
}

TEST_CASE("show --color on a real trace", "[pictures][color]") {
  const std::string trace = pictures_trace();
  const ProcessResult always = run({viewer_path(), "show", "--color=always", trace});
  REQUIRE(always.exit_code == 0);
  CHECK(has(always.out, "\x1b[1mdlopen"));
  CHECK(has(always.out, "\x1b[31merror: "));
  const ProcessResult never = run({viewer_path(), "show", "--color=never", trace});
  REQUIRE(never.exit_code == 0);
  CHECK_FALSE(has(never.out, "\x1b["));
  CHECK(has(never.out, "libpics_missing.so"));
  RunOptions no_color;
  no_color.env.emplace("NO_COLOR", "1");
  const ProcessResult automatic = run({viewer_path(), "show", trace}, no_color);
  CHECK_FALSE(has(automatic.out, "\x1b["));
  const ProcessResult bad = run({viewer_path(), "show", "--color=sometimes", trace});
  CHECK(bad.exit_code == 2);
}

TEST_CASE("show --follow prints a running program's events as they come, then ends with it",
          "[pictures][follow]") {
  settle_fixtures();
  const std::string dir = temp_dir("pics-follow");
  const std::string trace = dir + "/live.trace";
  const std::string go = dir + "/go";
  Background program(
      {fixture("pics_main"), go},
      {{"LD_PRELOAD", preload_path()}, {"DLTRACE_QUIET", "1"}, {"DLTRACE_OUTPUT", trace}});
  REQUIRE(program.read_until("phase 1 done"));

  Background follow({viewer_path(), "show", "--follow", "--color=never", trace}, {});
  // Phase 1 ends with the second thread's dlsym; the program now waits for `go`.
  INFO(follow.out());
  REQUIRE(follow.read_until("\"pics_thread_value\""));
  CHECK(has(follow.out(), "libpics_outer.so"));
  CHECK(has(follow.out(), "libpics_missing.so"));
  CHECK(has(follow.out(), "still running"));
  CHECK_FALSE(has(follow.out(), "libpics_late.so"));  // the program cannot have got there
  CHECK(program.running());
  CHECK(follow.running());

  {
    std::FILE* f = std::fopen(go.c_str(), "w");
    REQUIRE(f);
    std::fclose(f);
  }
  CHECK(program.read_to_end());
  CHECK(has(program.out(), "phase 2 done"));
  CHECK(program.wait_exit() == 0);
  // follow notices the end recorded in the trace and exits on its own.
  CHECK(follow.read_to_end());
  CHECK(follow.wait_exit() == 0);
  const std::string& out = follow.out();
  CHECK(has(out, "libpics_late.so"));
  CHECK(out.find("\"pics_thread_value\"") < out.find("libpics_late.so"));
  CHECK(has(out, "dlclose("));
  CHECK(has(out, "exited with status 0"));
  // Every event exactly once: phase 1's first dlopen is not printed again after re-reads.
  size_t count = 0;
  for (size_t at = out.find("dlopen(\"libpics_missing.so\""); at != std::string::npos;
       at = out.find("dlopen(\"libpics_missing.so\"", at + 1)) {
    ++count;
  }
  CHECK(count == 1);
}

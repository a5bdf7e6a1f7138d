// Processes: fork and exec get their own trace files, output path patterns, how the process
// ended, and `dltrace run`.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

using nlohmann::json;
using namespace dltrace::test;
namespace fs = std::filesystem;

namespace {

// Events mentioning `needle` in their file or symbol, whatever the call.
int count_mentions(const json& trace, const std::string& needle) {
  int n = 0;
  for (const auto& e : trace["events"])
    for (const char* key : {"file", "symbol"})
      if (e.contains(key) && e[key].is_string() &&
          e[key].get<std::string>().find(needle) != std::string::npos)
        ++n;
  return n;
}

std::string basename_of(const std::string& p) {
  return fs::path(p).filename().string();
}

std::string list_dir(const std::string& dir) {
  std::string s;
  for (const auto& e : fs::directory_iterator(dir)) s += e.path().filename().string() + " ";
  return s;
}

}  // namespace

TEST_CASE("fork: parent and child write separate traces", "[runtime][process]") {
  settle_fixtures();
  std::string dir = temp_dir("fork");
  ProcessResult r = run_traced({fixture("rt_fork")}, dir + "/");
  INFO("stdout: " << r.out << "stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  int parent = number_after(r.out, "parent ");
  int child = number_after(r.out, "child ");
  REQUIRE(parent > 0);
  REQUIRE(child > 0);
  REQUIRE(parent != child);

  INFO("files: " << list_dir(dir));
  std::vector<std::string> traces = traces_in(dir);
  REQUIRE(traces.size() == 2);
  std::string parent_path = dir + "/dltrace.rt_fork." + std::to_string(parent) + ".trace";
  std::string child_path = dir + "/dltrace.rt_fork." + std::to_string(child) + ".trace";
  REQUIRE(fs::exists(parent_path));
  REQUIRE(fs::exists(child_path));

  json p = export_json(parent_path);
  json c = export_json(child_path);

  SECTION("each trace names its own process") {
    CHECK(p["process"]["pid"] == parent);
    CHECK(c["process"]["pid"] == child);
    CHECK(c["process"]["ppid"] == parent);
    CHECK(p["process"]["end"] == "exit");
    CHECK(p["process"]["exit_status"] == 0);
    CHECK(c["process"]["end"] == "exit");
    CHECK(c["process"]["exit_status"] == 0);
    CHECK(p["dropped_events"] == 0);
    CHECK(c["dropped_events"] == 0);
  }
  SECTION("the child's events are only in the child's trace") {
    CHECK(count_events(c, "dlopen", "file", "librt_child.so") == 1);
    CHECK(count_events(c, "dlsym", "symbol", "rt_child_sym") == 1);
    CHECK(count_mentions(p, "rt_child") == 0);
    CHECK(find_object(p, "librt_child.so") == nullptr);
    for (const auto& e : c["events"]) {
      INFO("child event " << e.dump());
      CHECK(e["tid"] == child);
    }
    for (const auto& e : p["events"]) {
      INFO("parent event " << e.dump());
      CHECK(e["tid"] == parent);
    }
  }
  SECTION("the parent's events before and after the fork are in the parent's trace") {
    CHECK(count_events(p, "dlopen", "file", "librt_plugin.so") == 1);
    CHECK(count_events(p, "dlsym", "symbol", "rt_plugin_fn") == 1);
    CHECK(count_events(p, "dlopen", "file", "librt_parent.so") == 1);
    CHECK(count_events(p, "dlsym", "symbol", "rt_parent_sym") == 1);
    CHECK(count_mentions(c, "rt_parent") == 0);
    CHECK(find_object(c, "librt_parent.so") == nullptr);
  }
  SECTION("the child's object table has what was loaded before the fork") {
    const json* plugin = find_object(c, "librt_plugin.so");
    REQUIRE(plugin != nullptr);
    CHECK((*plugin)["unload_seq"].is_null());
    const json* child_lib = find_object(c, "librt_child.so");
    REQUIRE(child_lib != nullptr);
    CHECK((*child_lib)["cause"] == "dlopen");
    // libc came in at start-up, before the fork; the child's table still needs it.
    bool has_libc = false;
    for (const auto& o : c["objects"])
      if (o["path"].is_string() &&
          o["path"].get<std::string>().find("libc.so.6") != std::string::npos)
        has_libc = true;
    CHECK(has_libc);
    // The child's dlopen event names the object it opened in the child's own table.
    for (const auto& e : c["events"])
      if (e["call"] == "dlopen") CHECK(e["object"] == (*child_lib)["id"]);
  }
}

TEST_CASE("exec: the new image writes a second trace with the same pid", "[runtime][process]") {
  settle_fixtures();
  std::string dir = temp_dir("exec");
  ProcessResult r = run_traced({fixture("rt_exec")}, dir + "/x.%p.trace");
  INFO("stdout: " << r.out << "stderr: " << r.err << "files: " << list_dir(dir));
  REQUIRE(r.exit_code == 0);
  int before = number_after(r.out, "before ");
  int after = number_after(r.out, "after ");
  REQUIRE(before > 0);
  REQUIRE(after == before);

  std::vector<std::string> traces = traces_in(dir);
  REQUIRE(traces.size() == 2);
  std::string first_path = dir + "/x." + std::to_string(before) + ".trace";
  REQUIRE(fs::exists(first_path));
  std::string second_path = traces[0] == first_path ? traces[1] : traces[0];
  // The second name is derived from the same expanded pattern (a suffix is added).
  CHECK(basename_of(second_path).rfind("x." + std::to_string(before) + ".", 0) == 0);

  json first = export_json(first_path);
  json second = export_json(second_path);
  CHECK(first["process"]["pid"] == before);
  CHECK(second["process"]["pid"] == before);
  // The first trace is intact: its events are all there and nothing of the new image.
  CHECK(count_events(first, "dlopen", "file", "librt_plugin.so") == 1);
  CHECK(count_events(first, "dlsym", "symbol", "rt_plugin_fn") == 1);
  CHECK(count_mentions(first, "rt_after") == 0);
  CHECK(first["dropped_events"] == 0);
  CHECK(first["process"]["argv"] == json::array({fixture("rt_exec")}));
  // The new image's trace has only its own calls.
  CHECK(count_events(second, "dlopen", "file", "librt_after.so") == 1);
  CHECK(count_events(second, "dlsym", "symbol", "rt_after_sym") == 1);
  CHECK(count_mentions(second, "rt_plugin") == 0);
  CHECK(second["process"]["argv"] == json::array({fixture("rt_exec"), "after"}));
  CHECK(second["process"]["end"] == "exit");
  CHECK(second["process"]["exit_status"] == 0);
}

TEST_CASE("DLTRACE_OUTPUT patterns", "[runtime][process]") {
  settle_fixtures();
  SECTION("%e and %p") {
    std::string dir = temp_dir("pattern");
    ProcessResult r = run_traced({fixture("rt_exit3"), "pid"}, dir + "/t-%e-%p.trace");
    INFO("stderr: " << r.err << "files: " << list_dir(dir));
    REQUIRE(r.exit_code == 3);
    int pid = number_after(r.out, "pid ");
    REQUIRE(pid > 0);
    REQUIRE(traces_in(dir) ==
            std::vector<std::string>{dir + "/t-rt_exit3-" + std::to_string(pid) + ".trace"});
    CHECK(export_json(traces_in(dir)[0])["process"]["pid"] == pid);
  }
  SECTION("a path ending in / is a directory") {
    std::string dir = temp_dir("slash");
    ProcessResult r = run_traced({fixture("rt_exit3"), "pid"}, dir + "/");
    INFO("stderr: " << r.err << "files: " << list_dir(dir));
    REQUIRE(r.exit_code == 3);
    int pid = number_after(r.out, "pid ");
    REQUIRE(pid > 0);
    REQUIRE(traces_in(dir) ==
            std::vector<std::string>{dir + "/dltrace.rt_exit3." + std::to_string(pid) + ".trace"});
  }
  SECTION("unset: ./dltrace.%e.%p.trace in the working directory") {
    std::string dir = temp_dir("default");
    RunOptions opts;
    opts.cwd = dir;
    opts.env["LD_PRELOAD"] = preload_path();
    opts.env["DLTRACE_QUIET"] = "1";
    ProcessResult r = run({fixture("rt_exit3"), "pid"}, opts);
    INFO("stderr: " << r.err << "files: " << list_dir(dir));
    REQUIRE(r.exit_code == 3);
    int pid = number_after(r.out, "pid ");
    REQUIRE(pid > 0);
    REQUIRE(traces_in(dir) ==
            std::vector<std::string>{dir + "/dltrace.rt_exit3." + std::to_string(pid) + ".trace"});
  }
}

TEST_CASE("a normal exit is recorded with its status", "[runtime][process]") {
  std::string dir = temp_dir("exit3");
  DifferentialResult d = run_differential({fixture("rt_exit3"), "a", "b"});
  INFO("traced stderr: " << d.traced.err);
  REQUIRE(d.plain.exit_code == 3);
  CHECK(d.traced.exit_code == 3);
  CHECK(d.traced.signal == 0);
  CHECK(d.traced.out == d.plain.out);
  CHECK(d.traced.err == d.plain.err);
  json t = export_json(d.trace_path);
  CHECK(t["process"]["end"] == "exit");
  CHECK(t["process"]["exit_status"] == 3);
  CHECK(t["process"]["signal"].is_null());
  CHECK(t["process"]["argv"] == json::array({fixture("rt_exit3"), "a", "b"}));
  CHECK(t["process"]["exe"] == fs::canonical(fixture("rt_exit3")).string());
  CHECK(t["dropped_events"] == 0);
  // dlopen, dlsym that succeeds, dlsym that fails with glibc's own text.
  CHECK(count_events(t, "dlopen", "file", "librt_plugin.so") == 1);
  CHECK(count_events(t, "dlsym", "symbol", "rt_plugin_fn") == 1);
  REQUIRE(count_events(t, "dlsym", "symbol", "rt_no_such_symbol") == 1);
  for (const auto& e : t["events"])
    if (e.contains("symbol") && e["symbol"] == "rt_no_such_symbol") {
      CHECK(e["ok"] == false);
      CHECK(e["address"].is_null());
      REQUIRE(e["error"].is_string());
      CHECK(e["error"].get<std::string>().find("undefined symbol: rt_no_such_symbol") !=
            std::string::npos);
    }
  (void)dir;
}

TEST_CASE("dltrace run -o OUT exits with the program's status and writes the trace",
          "[runtime][process]") {
  settle_fixtures();
  std::string dir = temp_dir("run");
  std::string out = dir + "/run.trace";
  ProcessResult plain = run({fixture("rt_exit3"), "x", "--y"});
  ProcessResult r = run({viewer_path(), "run", "-o", out, "--", fixture("rt_exit3"), "x", "--y"});
  INFO("stderr: " << r.err << "files: " << list_dir(dir));
  CHECK(r.exit_code == 3);
  CHECK(r.signal == 0);
  CHECK(r.out == plain.out);
  REQUIRE(fs::exists(out));
  json t = export_json(out);
  CHECK(t["process"]["argv"] == json::array({fixture("rt_exit3"), "x", "--y"}));
  CHECK(t["process"]["end"] == "exit");
  CHECK(t["process"]["exit_status"] == 3);
  CHECK(count_events(t, "dlsym", "symbol", "rt_plugin_fn") == 1);

  SECTION("a program killed by a signal") {
    std::string out2 = dir + "/killed.trace";
    ProcessResult k =
        run({viewer_path(), "run", "-o", out2, "--", fixture("rt_crash"), "abort", "3"});
    INFO("stderr: " << k.err);
    // The launcher reports the child's death the way shells do (128 + signal) or dies of it.
    CHECK((k.exit_code == 128 + 6 || k.signal == 6));
    REQUIRE(fs::exists(out2));
    json t2 = export_json(out2);
    CHECK(t2["process"]["end"] == "signal");
    CHECK(t2["process"]["signal"] == 6);
  }
}

// The recorder memoises symbol names per thread by pointer; a reused buffer, more names than the
// memo holds, and a fork (new catalog, same buffer address) must still record each name exactly.
TEST_CASE("dlsym names from a reused buffer are recorded exactly before and after fork",
          "[runtime][process]") {
  settle_fixtures();
  std::string dir = temp_dir("name_reuse");
  ProcessResult r = run_traced({fixture("rt_name_reuse")}, dir + "/");
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  std::vector<std::string> parent_names, child_names;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const bool child = line.rfind("child ", 0) == 0;
    if (child) line = line.substr(6);
    const auto space = line.find(' ');
    REQUIRE(space != std::string::npos);
    (child ? child_names : parent_names).push_back(line.substr(space + 1));
  }
  REQUIRE(parent_names.size() == 25);
  REQUIRE(child_names.size() == 25);

  std::vector<std::string> traces = traces_in(dir);
  REQUIRE(traces.size() == 2);
  for (const std::string& path : traces) {
    json t = export_json(path);
    REQUIRE(!t["events"].empty());
    // The parent's first event is its dlopen of the plugin; the child inherited the handle.
    const bool is_child = t["events"][0]["call"] != "dlopen";
    std::vector<std::string> recorded;
    for (const json& e : t["events"]) {
      if (e["call"] != "dlsym" && e["call"] != "dlvsym") continue;
      INFO("event " << e.dump());
      recorded.push_back(e["symbol"].get<std::string>());
      CHECK(e["ok"] == (e["symbol"].get<std::string>().find("missing") == std::string::npos));
    }
    INFO("trace " << path);
    CHECK(recorded == (is_child ? child_names : parent_names));
  }
}

TEST_CASE("a program run by starting ld.so records ld.so's whole command line",
          "[runtime][process]") {
  // The recorder takes the command line from its constructor's arguments, which ld.so gives
  // without its own ("ld.so PROGRAM ARGS" passes PROGRAM ARGS): the trace must still show what
  // the kernel started, as /proc/self/cmdline does.
  if (!test_target().emulator.empty()) return;  // the emulator's loader is not ours to run
  std::string loader;
  for (const char* dir : {"/lib64/", "/lib/", "/usr/lib/"})
    if (fs::exists(std::string(dir) + test_target().loader)) {
      loader = std::string(dir) + test_target().loader;
      break;
    }
  REQUIRE(!loader.empty());
  const std::string dir = temp_dir("explicit-loader");
  const ProcessResult r = run_traced({loader, "/bin/true", "a", "b"}, dir + "/");
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  const auto traces = traces_in(dir);
  REQUIRE(traces.size() == 1);
  const json t = export_json(traces[0]);
  CHECK(t["process"]["argv"] == json::array({loader, "/bin/true", "a", "b"}));
}

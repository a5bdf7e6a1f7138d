// The recorder never harms the program: it writes through no descriptor the program may have
// reused, survives a full disk, never hangs a fork child, leaves the program's view of its signal
// dispositions untouched, never writes into another process's trace, and records truthfully how
// each process ended (issue "The recorder must never harm the program").
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "dltrace/format.h"
#include "harness.h"

using nlohmann::json;
using namespace dltrace::test;
namespace fs = std::filesystem;
namespace format = dltrace::format;

namespace {

// The raw header of a trace file, as the recorder left it.
format::FileHeader read_header(const std::string& path) {
  format::FileHeader h{};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::pread(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h));
  ::close(fd);
  return h;
}

int count_calls(const json& trace, const std::string& call) {
  int n = 0;
  for (const auto& e : trace["events"]) n += e["call"] == call;
  return n;
}

// The traces in `dir` whose header names `pid`.
std::vector<std::string> traces_of_pid(const std::string& dir, int pid) {
  std::vector<std::string> found;
  for (const auto& t : traces_in(dir))
    if (read_header(t).pid == pid) found.push_back(t);
  return found;
}

}  // namespace

TEST_CASE("a daemon that closes inherited descriptors keeps its data intact", "[runtime][harm]") {
  settle_fixtures();
  const std::string dir = temp_dir("daemon");
  SECTION("C: closefrom(3), a 40 MiB file, 20,000 lookups") {
    RunOptions opts;
    opts.env["DLTRACE_STACK_DEPTH"] = "0";
    ProcessResult r =
        run_traced({fixture("harm_daemon"), dir + "/data", "40", "20000"}, dir + "/trace", opts);
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    CHECK(r.out == "intact\n");
    // The trace is still the recorder's, and complete.
    const json t = export_json(dir + "/trace");
    CHECK(count_calls(t, "dlsym") == 20000);
  }
  SECTION("Python: os.closerange(3, 1024), then ctypes lookups") {
    const std::string script =
        "import ctypes, os, sys\n"
        "os.closerange(3, 1024)\n"
        "path = sys.argv[1]\n"
        "with open(path, 'wb') as f:\n"
        "    f.write(b'A' * (8 << 20))\n"
        "libc = ctypes.CDLL(None)\n"
        "for i in range(20000):\n"
        "    hasattr(libc, 'harm_missing_%d' % i)\n"
        "data = open(path, 'rb').read()\n"
        "bad = len(data) - data.count(b'A')\n"
        "print('intact' if bad == 0 and len(data) == 8 << 20 else 'corrupted: %d' % bad)\n";
    ProcessResult r =
        run_traced({"/usr/bin/python3", "-c", script, dir + "/pydata"}, dir + "/pytrace");
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    CHECK(r.out == "intact\n");
  }
}

TEST_CASE("the disk filling up mid-run never kills the program", "[runtime][harm]") {
  settle_fixtures();
  const std::string dir = temp_dir("fullfs");
  TmpfsMount m(dir, "size=2m");
  if (!m.mounted) {
    WARN("mount -t tmpfs not permitted here (" << m.error << "); full-disk case NOT tested");
    return;
  }
  RunOptions opts;
  opts.env["DLTRACE_STACK_DEPTH"] = "8";
  ProcessResult r = run_traced({fixture("harm_fullfs"), dir + "/filler", "20000"}, dir + "/", opts);
  INFO(describe(r));
  CHECK(r.signal == 0);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "survived 20000\n");
  const auto traces = traces_in(dir);
  REQUIRE(traces.size() == 1);
  const format::FileHeader h = read_header(traces[0]);
  CHECK((h.recorder_flags & format::kRecorderBackingFailed) != 0);
  CHECK(h.end_kind == uint32_t(format::EndKind::kExit));  // the end is still recorded
}

TEST_CASE("fork children of threaded programs never hang", "[runtime][harm][slow]") {
  settle_fixtures();
  const std::string dir = temp_dir("forkstress");
  for (const char* depth : {"32", "0"}) {
    SECTION(std::string("native stacks ") + depth) {
      RunOptions opts;
      opts.env["DLTRACE_STACK_DEPTH"] = depth;
      opts.env["DLTRACE_BUFFER_SIZE"] = "256K";
      opts.timeout_seconds = 600;
      const std::string out = dir + "/" + depth + "/";
      fs::create_directories(out);
      ProcessResult r = run_traced({fixture("harm_fork_stress"), "1000", "4"}, out, opts);
      INFO(describe(r));
      CHECK(r.exit_code == 0);
      CHECK(r.out == "forks=1000 hangs=0 failed=0\n");
      fs::remove_all(out);
    }
  }
}

// A child of a threaded program is cautious (fork_gate.h): another thread may have held the
// loader's locks at the fork. The native-stack walk takes no lock (_dl_find_object reads the
// loader's tables lock-free), so the child's events still carry their whole stacks.
TEST_CASE("fork children of threaded programs record native stacks", "[runtime][harm]") {
  settle_fixtures();
  const std::string dir = temp_dir("forkstacks");
  RunOptions opts;
  opts.env["DLTRACE_STACK_DEPTH"] = "32";
  opts.env["DLTRACE_BUFFER_SIZE"] = "256K";
  ProcessResult r = run_traced({fixture("harm_fork_stress"), "10", "2"}, dir + "/", opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "forks=10 hangs=0 failed=0\n");
  std::vector<nlohmann::json> traces;
  for (const auto& path : traces_in(dir)) traces.push_back(export_json(path));
  REQUIRE(traces.size() == 11);
  const int64_t parent = std::max_element(traces.begin(), traces.end(), [](auto& a, auto& b) {
                           return a["events"].size() < b["events"].size();
                         })->at("process")["pid"];
  int children = 0;
  for (const auto& t : traces) {
    if (t["process"]["ppid"] != parent) continue;
    ++children;
    // dlsym strlen, dlopen libc.so.6 (RTLD_NOLOAD), dlclose, all from main.
    const auto& events = t["events"];
    INFO("child " << t["process"]["pid"] << ": " << events.dump());
    CHECK(events.size() == 3);
    for (const auto& e : events) {
      REQUIRE(e["stack"].is_array());
      CHECK(e["stack"].size() >= 4);  // main, __libc_start_call_main, __libc_start_main, _start
      CHECK(e["stack"][0]["function"] == "main");
    }
  }
  CHECK(children == 10);
}

TEST_CASE("the program sees its signal dispositions exactly as untraced",
          "[runtime][harm][differential]") {
  SECTION("what sigaction, signal, bsd_signal and sysv_signal report") {
    DifferentialResult d = run_differential({fixture("harm_signals"), "query"});
    INFO("plain: " << describe(d.plain) << "\ntraced: " << describe(d.traced));
    CHECK(d.same());
    CHECK(d.plain.out.find("initial Segmentation fault: SIG_DFL") != std::string::npos);
  }
  SECTION("a handler that chains to the previous one finds SIG_DFL, and the crash is recorded") {
    DifferentialResult d = run_differential({fixture("harm_signals"), "chain"});
    INFO("plain: " << describe(d.plain) << "\ntraced: " << describe(d.traced));
    CHECK(d.same());
    CHECK(d.plain.signal == SIGSEGV);
    CHECK(d.plain.out.find("previous is the default") != std::string::npos);
    const format::FileHeader h = read_header(d.trace_path);
    CHECK(h.end_kind == uint32_t(format::EndKind::kSignal));
    CHECK(h.end_code == SIGSEGV);
    CHECK(h.end_via == format::kEndViaFatalSignal);
  }
  SECTION("abort()") {
    DifferentialResult d = run_differential({fixture("harm_signals"), "abort"});
    INFO("plain: " << describe(d.plain) << "\ntraced: " << describe(d.traced));
    CHECK(d.same());
    const format::FileHeader h = read_header(d.trace_path);
    CHECK(h.end_kind == uint32_t(format::EndKind::kSignal));
    CHECK(h.end_code == SIGABRT);
  }
}

TEST_CASE("how a process ended is recorded through _exit, exec and vfork",
          "[runtime][harm][process]") {
  settle_fixtures();
  const std::string dir = temp_dir("ends");
  auto one_trace = [&](const std::string& sub) {
    const auto traces = traces_in(dir + "/" + sub);
    REQUIRE(traces.size() == 1);
    return read_header(traces[0]);
  };
  auto traced = [&](const std::string& sub, const std::vector<std::string>& argv) {
    fs::create_directories(dir + "/" + sub);
    ProcessResult r = run_traced(argv, dir + "/" + sub + "/");
    INFO(describe(r));
    return r;
  };
  SECTION("_exit and _Exit") {
    CHECK(traced("u", {fixture("harm_ends"), "_exit", "5"}).exit_code == 5);
    format::FileHeader h = one_trace("u");
    CHECK(h.end_kind == uint32_t(format::EndKind::kExit));
    CHECK(h.end_code == 5);
    CHECK(h.end_via == format::kEndViaUnderscoreExit);
    CHECK(traced("U", {fixture("harm_ends"), "_Exit", "6"}).exit_code == 6);
    h = one_trace("U");
    CHECK(h.end_code == 6);
    CHECK(h.end_via == format::kEndViaUnderscoreExit);
  }
  SECTION("a shell's exit") {
    CHECK(traced("sh", {"/bin/dash", "-c", "exit 4"}).exit_code == 4);
    format::FileHeader h = one_trace("sh");
    CHECK(h.end_kind == uint32_t(format::EndKind::kExit));
    CHECK(h.end_code == 4);
  }
  for (const char* mode : {"execv", "execl", "execvp"}) {
    SECTION(std::string("exec through ") + mode) {
      const std::string target = std::string(mode) == "execvp" ? "true" : "/bin/true";
      CHECK(traced(mode, {fixture("harm_ends"), mode, target}).exit_code == 0);
      const auto traces = traces_in(dir + "/" + mode);
      REQUIRE(traces.size() == 2);  // one per image, the same pid
      format::FileHeader first = read_header(traces[0]), second = read_header(traces[1]);
      if (first.start_monotonic_ns > second.start_monotonic_ns) std::swap(first, second);
      CHECK(first.pid == second.pid);
      CHECK(first.end_kind == uint32_t(format::EndKind::kExec));
      CHECK(first.end_via == format::kEndViaExec);
      CHECK(first.exec_target != format::kNoId);
      CHECK(second.end_kind == uint32_t(format::EndKind::kExit));
      CHECK(second.end_code == 0);
    }
  }
  SECTION("an exec that fails leaves the process running, and its later exit recorded") {
    ProcessResult r = traced("fail", {fixture("harm_ends"), "execfail"});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("execv failed") != std::string::npos);
    format::FileHeader h = one_trace("fail");
    CHECK(h.end_kind == uint32_t(format::EndKind::kExit));
    CHECK(h.end_via == format::kEndViaExit);
    CHECK(h.exec_target == format::kNoId);
  }
  SECTION("a vfork child's _exit is not the parent's end") {
    ProcessResult r = traced("vfork", {fixture("harm_ends"), "vfork", "7"});
    CHECK(r.exit_code == 0);
    CHECK(r.out == "vfork child exited 7\n");
    format::FileHeader h = one_trace("vfork");
    CHECK(h.end_kind == uint32_t(format::EndKind::kExit));
    CHECK(h.end_code == 0);
    CHECK(h.end_via == format::kEndViaExit);
  }
}

TEST_CASE("children made without fork() write their own trace, never the parent's",
          "[runtime][harm][process]") {
  settle_fixtures();
  for (const char* mode : {"syscall", "clone"}) {
    SECTION(mode) {
      const std::string dir = temp_dir(std::string("rawfork-") + mode);
      ProcessResult r = run_traced({fixture("harm_rawfork"), mode, "80"}, dir + "/");
      INFO(describe(r));
      REQUIRE(r.exit_code == 0);
      std::smatch m;
      REQUIRE(std::regex_search(r.out, m, std::regex(R"(parent (\d+) child (\d+))")));
      const auto parent = traces_of_pid(dir, std::stoi(m[1]));
      const auto child = traces_of_pid(dir, std::stoi(m[2]));
      REQUIRE(parent.size() == 1);
      REQUIRE(child.size() == 1);
      CHECK(count_calls(export_json(parent[0]), "dlsym") == 2);
      const json c = export_json(child[0]);
      CHECK(count_calls(c, "dlsym") == 80);
      CHECK((read_header(child[0]).recorder_flags & format::kRecorderForkChildCautious) != 0);
    }
  }
}

TEST_CASE("a process in a PID namespace records the pid seen from outside",
          "[runtime][harm][process]") {
  settle_fixtures();
  const std::string dir = temp_dir("pidns");
  ProcessResult probe = run({"unshare", "--pid", "--fork", "/bin/true"});
  if (probe.exit_code != 0) {
    WARN("unshare --pid not permitted here (" << describe(probe)
                                              << "); PID namespace case NOT tested");
    return;
  }
  ProcessResult r =
      run_traced({"unshare", "--pid", "--fork", fixture("harm_ends"), "_exit", "0"}, dir + "/");
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  bool found = false;
  for (const auto& t : traces_in(dir)) {
    const format::FileHeader h = read_header(t);
    if (h.pid != 1) continue;  // unshare's own trace
    found = true;
    CHECK(h.ppid == 0);
    CHECK(h.outer_pid > 1);
    CHECK(h.outer_ppid > 1);
  }
  CHECK(found);
}

TEST_CASE("objects libc loaded by itself are in the trace even without a later event",
          "[runtime][harm]") {
  settle_fixtures();
  const std::string dir = temp_dir("iconv");
  ProcessResult r = run_traced({fixture("harm_iconv")}, dir + "/t.trace");
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  const json t = export_json(dir + "/t.trace");
  bool gconv = false;
  for (const auto& o : t["objects"])
    if (o["path"].is_string() && o["path"].get<std::string>().find("/gconv/") != std::string::npos)
      gconv = true;
  CHECK(gconv);
}

// The recorder allocates nothing from the program's heap before main (issue 16: libstdc++'s
// emergency exception pool, 73 KB, and with it the main arena, used to be made in every traced
// process); with DLTRACE_CONFIG only the rules it keeps, the parser's runtime being unloaded.
TEST_CASE("the program's heap at main is as untraced; a config leaves only the rules",
          "[runtime][harm]") {
  settle_fixtures();
  const std::string dir = temp_dir("heap");
  DifferentialResult d = run_differential({fixture("harm_heap")});
  INFO("UNTRACED: " << describe(d.plain));
  INFO("TRACED: " << describe(d.traced));
  REQUIRE(d.plain.exit_code == 0);
  CHECK(d.same());

  const std::string config = dir + "/c.toml";
  std::ofstream(config) << "[[override]]\nmatch = \"libz.so*\"\nadd = [\"RTLD_GLOBAL\"]\n";
  RunOptions opts;
  opts.env["DLTRACE_CONFIG"] = config;
  ProcessResult r = run_traced({fixture("harm_heap")}, dir + "/t.trace", opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex(R"(heap in use (\d+), arena)")));
  CHECK(std::stoul(m[1]) > 0);          // the rules the recorder keeps
  CHECK(std::stoul(m[1]) < 16 * 1024);  // and nothing of the parser's runtime
}

TEST_CASE("a real JVM crash is handled by the JVM as untraced: hs_err log, same exit status",
          "[runtime][harm][realworld]") {
  // HotSpot saves the handler it replaces and chains to it for crashes that are not its own; a
  // recorder handler it found there used to end the JVM with SIGSEGV and no hs_err log.
  REQUIRE(fs::exists("/usr/bin/javac"));  // scripts/install-deps.sh installs default-jdk-headless
  const std::string dir = temp_dir("jvm");
  std::ofstream(dir + "/Crash.java") << R"(
public class Crash {
  public static void main(String[] args) throws Exception {
    java.lang.reflect.Field f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
    f.setAccessible(true);
    sun.misc.Unsafe u = (sun.misc.Unsafe) f.get(null);
    System.out.println("crashing");
    u.putAddress(0, 0);
  }
}
)";
  ProcessResult javac = run({"/usr/bin/javac", "-nowarn", "-d", dir, dir + "/Crash.java"});
  INFO(describe(javac));
  REQUIRE(javac.exit_code == 0);
  auto crash = [&](const std::string& sub, bool traced) {
    const std::string cwd = dir + "/" + sub;
    fs::create_directories(cwd);
    RunOptions opts;
    opts.cwd = cwd;
    const std::vector<std::string> argv = {"/usr/bin/java", "-XX:-CreateCoredumpOnCrash", "-cp",
                                           dir, "Crash"};
    ProcessResult r = traced ? run_traced(argv, cwd + "/jvm.trace", opts) : run(argv, opts);
    int logs = 0;
    for (const auto& e : fs::directory_iterator(cwd))
      logs += e.path().filename().string().rfind("hs_err_pid", 0) == 0;
    return std::make_pair(r, logs);
  };
  const auto [plain, plain_logs] = crash("plain", false);
  const auto [traced, traced_logs] = crash("traced", true);
  INFO("plain: " << describe(plain) << "\ntraced: " << describe(traced));
  CHECK(plain_logs == 1);
  CHECK(traced_logs == 1);
  CHECK(traced.exit_code == plain.exit_code);
  CHECK(traced.signal == plain.signal);
  CHECK(plain.out.rfind("crashing\n", 0) == 0);  // the JVM's own report follows (pids, paths)
  CHECK(traced.out.rfind("crashing\n", 0) == 0);
  const format::FileHeader h = read_header(dir + "/traced/jvm.trace");
  CHECK(h.end_kind != uint32_t(format::EndKind::kRunning));  // how the JVM ended is recorded
}

// Where the recorder writes, and what it says (issue 18, items 5, 8 and 10): trace files 0600,
// directories made by `dltrace run` 0700, existing directories and non-regular targets, planted
// names, the fallback directory, silence with DLTRACE_QUIET=1, and the run's own report.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;
namespace fs = std::filesystem;

namespace {

std::string join(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The lines of `err` that start with "dltrace:".
std::vector<std::string> dltrace_lines(const std::string& err) {
  std::vector<std::string> out;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("dltrace:", 0) == 0) out.push_back(line);
  return out;
}

// A uid nobody uses on a CI machine, and its fallback directory (removed before and after).
struct TestUser {
  unsigned uid = 40000 + unsigned(::getpid()) % 20000;
  std::string fallback = "/tmp/dltrace-" + std::to_string(uid);
  TestUser() { clean(); }
  ~TestUser() { clean(); }
  void clean() const {
    std::error_code ec;
    fs::remove_all(fallback, ec);
  }
  // argv run as this user (setpriv is traced as root; what it execs runs as the user).
  std::vector<std::string> run_as(const std::vector<std::string>& argv) const {
    const std::string id = std::to_string(uid);
    std::vector<std::string> out = {"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups",
                                    "--"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }
};

bool can_drop_privileges() {
  ProcessResult r = run(TestUser().run_as({"/bin/true"}));
  if (r.exit_code != 0) WARN("setpriv cannot switch users here; test skipped: " << describe(r));
  return r.exit_code == 0;
}

RunOptions with_preload(const std::string& output, bool quiet) {
  RunOptions o;
  o.env["LD_PRELOAD"] = preload_path();
  o.env["DLTRACE_OUTPUT"] = output;
  if (quiet) o.env["DLTRACE_QUIET"] = "1";
  return o;
}

// The basename the recorder sees for /bin/sh (%e): /proc/self/exe names the real file (dash).
std::string sh_name() {
  return fs::canonical("/bin/sh").filename().string();
}

const std::vector<std::string> kNoisyProgram = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"};

}  // namespace

TEST_CASE("trace files are 0600 and directories made by dltrace run 0700, whatever the umask",
          "[runtime][output]") {
  const std::string dir = temp_dir("mode");
  const mode_t old = ::umask(0);
  // The shell creates its trace, then the program it execs creates another: both under umask 0.
  ProcessResult r = run_traced({"/bin/sh", "-c", "exec /bin/true"}, dir + "/");
  const std::string out_dir = join(dir, "made/by/run") + "/";
  ProcessResult launched = run({viewer_path(), "run", "-o", out_dir, "--", "/bin/true"});
  ::umask(old);
  INFO(describe(r) << describe(launched));
  REQUIRE(r.exit_code == 0);
  REQUIRE(launched.exit_code == 0);
  const auto traces = traces_in(dir);
  CHECK(traces.size() == 2);
  for (const auto& t : traces) {
    INFO(t);
    CHECK(mode_of(t) == 0600);
  }
  CHECK(mode_of(join(dir, "made")) == 0700);
  CHECK(mode_of(join(dir, "made/by")) == 0700);
  CHECK(mode_of(join(dir, "made/by/run")) == 0700);
  const auto launched_traces = traces_in(out_dir);
  REQUIRE(launched_traces.size() == 1);
  CHECK(mode_of(launched_traces[0]) == 0600);
}

TEST_CASE("DLTRACE_OUTPUT naming an existing directory without '/' writes inside it",
          "[runtime][output]") {
  const std::string dir = temp_dir("existing-dir");
  ProcessResult r = run_traced({"/bin/sh", "-c", "echo $$"}, dir);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK_FALSE(fs::exists(dir + ".1"));
  std::error_code ec;
  fs::remove(dir + ".1", ec);
  const auto traces = traces_in(dir);
  REQUIRE(traces.size() == 1);
  const std::string pid = r.out.substr(0, r.out.find('\n'));
  CHECK(fs::path(traces[0]).filename() == "dltrace." + sh_name() + "." + pid + ".trace");
  CHECK(export_json(traces[0])["process"]["pid"] == std::stoi(pid));
}

TEST_CASE("a device or FIFO as DLTRACE_OUTPUT is refused in one line; the program is unchanged",
          "[runtime][output]") {
  const std::string dir = temp_dir("refused");
  const std::string fifo = join(dir, "pipe");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const ProcessResult plain = run(kNoisyProgram);
  REQUIRE(plain.exit_code == 3);
  for (const auto& [target, kind] :
       {std::pair<std::string, std::string>{"/dev/full", "a character device"},
        std::pair<std::string, std::string>{fifo, "a FIFO"}}) {
    DYNAMIC_SECTION(kind) {
      ProcessResult loud = run(kNoisyProgram, with_preload(target, false));
      ProcessResult quiet = run(kNoisyProgram, with_preload(target, true));
      bool made_sibling = false;
      for (const char* suffix : {".1", ".2"}) {  // what the recorder made before this was fixed
        const fs::path sibling = target + suffix;
        if (fs::is_regular_file(fs::symlink_status(sibling))) {
          made_sibling = true;
          fs::remove(sibling);
        }
      }
      INFO(describe(loud) << describe(quiet));
      CHECK_FALSE(made_sibling);
      CHECK(loud.exit_code == 3);
      CHECK(loud.out == plain.out);
      CHECK(loud.err == "dltrace: refusing to write the trace to " + target + ": it is " + kind +
                            "; not recording\n" + plain.err);
      CHECK(quiet.exit_code == 3);
      CHECK(quiet.out == plain.out);
      CHECK(quiet.err == plain.err);
      struct stat st {};
      CHECK(::stat(fifo.c_str(), &st) == 0);
      CHECK(S_ISFIFO(st.st_mode));
    }
  }
}

TEST_CASE("10,000 planted names do not stop the recording", "[runtime][output]") {
  const std::string dir = temp_dir("planted");
  std::set<std::string> planted;
  for (int i = 0; i < 10000; ++i) {
    const std::string name = i == 0 ? "x.trace" : "x." + std::to_string(i) + ".trace";
    const int fd = ::open(join(dir, name).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    ::close(fd);
    planted.insert(join(dir, name));
  }
  ProcessResult r = run_traced({"/bin/sh", "-c", "echo $$"}, join(dir, "x.trace"));
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.empty());
  std::vector<std::string> created;
  for (const auto& t : traces_in(dir))
    if (!planted.contains(t)) created.push_back(t);
  REQUIRE(created.size() == 1);
  CHECK(std::regex_match(fs::path(created[0]).filename().string(),
                         std::regex(R"(x\.[0-9]+\.trace)")));
  CHECK(export_json(created[0])["process"]["pid"] == std::stoi(r.out));
  for (const auto& p : {join(dir, "x.trace"), join(dir, "x.9999.trace")})
    CHECK(fs::file_size(p) == 0);
}

TEST_CASE(
    "with DLTRACE_QUIET a process that cannot create its trace is silent and uses the fallback",
    "[runtime][output]") {
  if (!can_drop_privileges()) return;
  TestUser user;
  const std::string dir = temp_dir("unwritable");  // mode 0700, root's: the user cannot create here
  const auto argv = user.run_as(kNoisyProgram);
  const ProcessResult plain = run(argv);
  REQUIRE(plain.exit_code == 3);
  ProcessResult quiet = run(argv, with_preload(dir + "/", true));
  INFO(describe(quiet));
  CHECK(quiet.exit_code == 3);
  CHECK(quiet.out == plain.out);
  CHECK(quiet.err == plain.err);
  // setpriv (root) wrote into dir, the shell (the user) into its own private fallback directory.
  CHECK(traces_in(dir).size() == 1);
  REQUIRE(fs::is_directory(user.fallback));
  struct stat st {};
  REQUIRE(::lstat(user.fallback.c_str(), &st) == 0);
  CHECK(st.st_uid == user.uid);
  CHECK((st.st_mode & 07777) == 0700);
  auto fallback_traces = traces_in(user.fallback);
  REQUIRE(fallback_traces.size() == 1);
  CHECK(fs::path(fallback_traces[0]).filename().string().rfind("dltrace." + sh_name() + ".", 0) ==
        0);
  CHECK(mode_of(fallback_traces[0]) == 0600);
  CHECK(export_json(fallback_traces[0])["process"]["exe"] == fs::canonical("/bin/sh").string());

  // Without QUIET: one line that says where the trace went.
  ProcessResult loud = run(argv, with_preload(dir + "/", false));
  INFO(describe(loud));
  CHECK(loud.exit_code == 3);
  const auto lines = dltrace_lines(loud.err);
  REQUIRE(lines.size() == 1);
  CHECK(std::regex_match(
      lines[0], std::regex("dltrace: cannot create " + dir + "/dltrace\\." + sh_name() +
                           "\\.[0-9]+\\.trace: Permission denied; recording to " + user.fallback +
                           "/dltrace\\." + sh_name() + "\\.[0-9]+\\.trace instead")));
}

TEST_CASE("a fallback directory planted by someone else is not used; QUIET stays silent",
          "[runtime][output]") {
  if (!can_drop_privileges()) return;
  TestUser user;
  const std::string dir = temp_dir("unwritable");
  // Root's, not the user's: the recorder must not write there (a symlink would be refused too).
  REQUIRE(fs::create_directory(user.fallback));
  ::chmod(user.fallback.c_str(), 0777);
  const auto argv = user.run_as(kNoisyProgram);
  const ProcessResult plain = run(argv);
  ProcessResult quiet = run(argv, with_preload(dir + "/", true));
  INFO(describe(quiet));
  CHECK(quiet.exit_code == 3);
  CHECK(quiet.err == plain.err);
  CHECK(fs::is_empty(user.fallback));
  ProcessResult loud = run(argv, with_preload(dir + "/", false));
  INFO(describe(loud));
  const auto lines = dltrace_lines(loud.err);
  REQUIRE(lines.size() == 1);
  CHECK(std::regex_match(
      lines[0], std::regex("dltrace: cannot create " + dir + "/dltrace\\." + sh_name() +
                           "\\.[0-9]+\\.trace: Permission denied \\(nor in " + user.fallback +
                           ": Operation not permitted\\); not recording")));
}

TEST_CASE("dltrace run names the processes it could not trace and those traced elsewhere",
          "[runtime][output][run]") {
  if (!can_drop_privileges()) return;
  TestUser user;
  const std::string dir = temp_dir("run-report");
  const auto argv = user.run_as({"/bin/sh", "-c", "echo hi; echo err >&2"});
  RunOptions quiet;
  quiet.env["DLTRACE_QUIET"] = "1";
  std::vector<std::string> cmd = {viewer_path(), "run", "-o", dir + "/", "--"};
  cmd.insert(cmd.end(), argv.begin(), argv.end());

  SECTION("traced elsewhere") {
    ProcessResult r = run(cmd, quiet);
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    CHECK(r.out == "hi\n");
    const auto lines = dltrace_lines(r.err);
    REQUIRE(lines.size() == 1);
    std::smatch m;
    REQUIRE(
        std::regex_match(lines[0], m,
                         std::regex("dltrace: traced elsewhere: pid ([0-9]+) \\(" + sh_name() +
                                    "\\) wrote " + user.fallback + "/dltrace\\." + sh_name() +
                                    "\\.([0-9]+)\\.trace \\(cannot create " + dir + "/dltrace\\." +
                                    sh_name() + "\\.([0-9]+)\\.trace: Permission denied\\)")));
    CHECK(m[1] == m[2]);
    CHECK(r.err == "err\n" + lines[0] + "\n");
  }
  SECTION("not traced") {
    std::ofstream(user.fallback) << "not a directory\n";
    ProcessResult r = run(cmd, quiet);
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    const auto lines = dltrace_lines(r.err);
    REQUIRE(lines.size() == 1);
    CHECK(std::regex_match(
        lines[0],
        std::regex("dltrace: not traced: pid [0-9]+ \\(" + sh_name() + "\\): cannot create " + dir +
                   "/dltrace\\." + sh_name() + "\\.[0-9]+\\.trace: Permission denied \\(nor in " +
                   user.fallback + ": Not a directory\\)")));
    CHECK(r.err == "err\n" + lines[0] + "\n");
  }
}

TEST_CASE("dltrace run adopts only the traces of its own processes", "[runtime][output][run]") {
  // A valid trace of another process, to be planted in the run's output directory while it runs.
  const std::string other = join(temp_dir("other"), "p.trace");
  REQUIRE(run_traced({"/bin/true"}, other).exit_code == 0);
  const std::string original = read_file(other);
  REQUIRE(original.size() > 4096);
  const std::string dir = temp_dir("shared");
  const std::string script = "cp " + other + " " + dir + "/dltrace.sh.$$.1.trace && cp " + other +
                             " " + dir + "/dltrace.evil.4242.trace && echo $$";
  ProcessResult r = run({viewer_path(), "run", "-o", dir + "/", "--", "/bin/sh", "-c", script});
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  const std::string pid = r.out.substr(0, r.out.find('\n'));
  CHECK(r.err.find("evil") == std::string::npos);
  CHECK(r.err.find(".1.trace") == std::string::npos);
  CHECK(r.err.find("dltrace show " + dir + "/dltrace." + sh_name() + "." + pid + ".trace\n") !=
        std::string::npos);
  // The launcher wrote the end of its child into the child's own trace, not into the planted one.
  CHECK(read_file(dir + "/dltrace.sh." + pid + ".1.trace") == original);
  CHECK(export_json(dir + "/dltrace." + sh_name() + "." + pid + ".trace")["process"]["end"] ==
        "exit");
}

#include "harness.h"

#include <elf.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace fs = std::filesystem;

// A cross build's test binary gets these from CMake (tests/aarch64/CMakeLists.txt).
#ifndef DLTRACE_TEST_EMULATOR
#define DLTRACE_TEST_EMULATOR ""
#define DLTRACE_TEST_EMULATOR_ENV ""
#endif

namespace dltrace::test {

const TestTarget& test_target() {
#if defined(DLTRACE_TEST_TARGET_AARCH64) || defined(__aarch64__)
  static const TestTarget target{"aarch64",
                                 EM_AARCH64,
                                 "GLIBC_2.17",
                                 "ld-linux-aarch64.so.1",
                                 DLTRACE_TEST_EMULATOR,
                                 DLTRACE_TEST_EMULATOR_ENV};
#else
  static const TestTarget target{"x86_64",
                                 EM_X86_64,
                                 "GLIBC_2.2.5",
                                 "ld-linux-x86-64.so.2",
                                 DLTRACE_TEST_EMULATOR,
                                 DLTRACE_TEST_EMULATOR_ENV};
#endif
  return target;
}

std::string build_dir() {
  return DLTRACE_TEST_BUILD_DIR;
}
std::string fixtures_dir() {
  return build_dir() + "/fixtures";
}
std::string preload_path() {
  return DLTRACE_TEST_PRELOAD;
}
std::string viewer_path() {
  return DLTRACE_TEST_VIEWER;
}
std::string fixture(const std::string& name) {
  return fixtures_dir() + "/" + name;
}

namespace {

// `strings` as the NULL-terminated array exec and posix_spawn take (pointing into `strings`).
std::vector<char*> exec_array(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Whether `program` is an ELF file for the test target's CPU (a fixture, or a copy of one).
bool is_target_program(const std::string& program) {
  unsigned char ident[20] = {};
  const int fd = open(program.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool read_all = read(fd, ident, sizeof ident) == static_cast<ssize_t>(sizeof ident);
  close(fd);
  const unsigned machine = ident[18] | (ident[19] << 8);  // e_machine, little-endian
  return read_all && memcmp(ident, ELFMAG, SELFMAG) == 0 && machine == test_target().machine;
}

std::vector<std::string> child_environment(const RunOptions& opts) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    std::string key = entry.substr(0, entry.find('='));
    if (key.rfind("DLTRACE_", 0) == 0 || key == "LD_PRELOAD" || key == "LD_DEBUG") continue;
    if (opts.env.count(key) != 0) continue;
    if (std::find(opts.unset.begin(), opts.unset.end(), key) != opts.unset.end()) continue;
    env.push_back(entry);
  }
  for (const auto& [k, v] : opts.env) env.push_back(k + "=" + v);
  return env;
}

void drain(int fd, std::string* into) {
  char buf[65536];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) into->append(buf, static_cast<size_t>(n));
}

}  // namespace

ProcessResult run(const std::vector<std::string>& argv, const RunOptions& opts) {
  int out_pipe[2], err_pipe[2], in_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
      pipe2(in_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  if (!opts.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, opts.cwd.c_str());

  std::vector<std::string> env_strings = child_environment(opts);
  std::vector<std::string> args = argv;
  // A program built for another CPU runs under its emulator. Under a static emulator
  // (qemu-aarch64-static) the program inherits the environment as is,
  // LD_PRELOAD included, and so does every program it executes (exec goes through the emulator:
  // the fixtures that exec take it from FIXTURE_EXEC_VIA).
  const TestTarget& target = test_target();
  if (!target.emulator.empty() && is_target_program(argv[0])) {
    args.insert(args.begin(), target.emulator);
    if (!target.emulator_env.empty()) env_strings.push_back(target.emulator_env);
    env_strings.push_back("FIXTURE_EXEC_VIA=" + target.emulator);
  }
  std::vector<char*> envp = exec_array(env_strings);
  std::vector<char*> argp = exec_array(args);

  pid_t pid = -1;
  int rc = args[0].find('/') == std::string::npos
               ? posix_spawnp(&pid, argp[0], &actions, nullptr, argp.data(), envp.data())
               : posix_spawn(&pid, argp[0], &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  close(in_pipe[0]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    close(in_pipe[1]);
    FAIL("cannot spawn " << args[0] << ": " << strerror(rc));
  }
  if (!opts.stdin_data.empty()) {
    ssize_t ignored = write(in_pipe[1], opts.stdin_data.data(), opts.stdin_data.size());
    (void)ignored;
  }
  close(in_pipe[1]);

  ProcessResult result;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(opts.timeout_seconds);
  bool out_open = true, err_open = true, timed_out = false;
  while (out_open || err_open) {
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int ready = poll(fds, 2, 200);
    if (ready > 0) {
      for (int i = 0; i < 2; ++i) {
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          std::string* into = i == 0 ? &result.out : &result.err;
          size_t before = into->size();
          drain(fds[i].fd, into);
          if (into->size() == before) (i == 0 ? out_open : err_open) = false;
        }
      }
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      timed_out = true;
      break;
    }
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  if (timed_out) FAIL("timed out after " << opts.timeout_seconds << "s: " << argv[0]);
  return result;
}

ProcessResult run_traced(const std::vector<std::string>& argv, const std::string& trace_path,
                         RunOptions opts) {
  opts.env["LD_PRELOAD"] = preload_path();
  opts.env.emplace("DLTRACE_QUIET", "1");
  opts.env["DLTRACE_OUTPUT"] = trace_path;
  return run(argv, opts);
}

std::string temp_dir(const std::string& prefix) {
  static std::mutex mu;
  static std::vector<std::string> created;
  std::lock_guard<std::mutex> lock(mu);
  fs::path base = fs::path(build_dir()) / "test-scratch";
  fs::create_directories(base);
  std::string templ = (base / (prefix + ".XXXXXX")).string();
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  if (created.empty()) {
    std::atexit([] {
      std::error_code ec;
      if (std::getenv("DLTRACE_KEEP_TEST_FILES") == nullptr)
        for (const auto& d : created) fs::remove_all(d, ec);
    });
  }
  created.push_back(templ);
  return templ;
}

std::vector<std::string> traces_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".trace" ||
        e.path().filename().string().find(".trace") != std::string::npos)
      out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

void build(const std::string& compiler, const std::vector<std::string>& args) {
  std::vector<std::string> cmd{compiler};
  cmd.insert(cmd.end(), args.begin(), args.end());
  const ProcessResult r = run(cmd);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
}

ExplainedRun record_and_explain(const std::vector<std::string>& argv, const std::string& dir) {
  ExplainedRun e;
  static int runs = 0;
  const std::string trace = dir + "/run" + std::to_string(++runs) + ".trace";
  e.program = run_traced(argv, trace);
  e.text = run({viewer_path(), "explain", "--color=never", trace});
  const ProcessResult j = run({viewer_path(), "explain", "--json", trace});
  INFO(describe(j));
  e.json = nlohmann::json::parse(j.out, nullptr, false);
  REQUIRE_FALSE(e.json.is_discarded());
  return e;
}

nlohmann::json finding(const ExplainedRun& e, const std::string& kind) {
  for (const auto& f : e.json["findings"])
    if (f["kind"] == kind) return f;
  return nullptr;
}

nlohmann::json export_json(const std::string& trace_path) {
  ProcessResult r = run({viewer_path(), "export", "--format", "json", trace_path});
  INFO("dltrace export stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

int number_after(const std::string& out, const std::string& prefix) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return std::stoi(line.substr(prefix.size()));
  return -1;
}

std::string describe(const ProcessResult& r) {
  std::ostringstream s;
  s << "exit=" << r.exit_code << " signal=" << r.signal << "\n--- stdout:\n"
    << r.out << "--- stderr:\n"
    << r.err;
  return s.str();
}

int count_events(const nlohmann::json& trace, const std::string& call, const std::string& key,
                 const std::string& needle) {
  int n = 0;
  for (const auto& e : trace["events"]) {
    if (e.value("call", "") != call) continue;
    if (!e.contains(key) || !e[key].is_string()) continue;
    if (e[key].get<std::string>().find(needle) != std::string::npos) ++n;
  }
  return n;
}

const nlohmann::json* find_object(const nlohmann::json& trace, const std::string& basename) {
  for (const auto& o : trace["objects"]) {
    if (!o["path"].is_string()) continue;
    std::string p = o["path"].get<std::string>();
    if (p == basename ||
        (p.size() > basename.size() &&
         p.compare(p.size() - basename.size() - 1, std::string::npos, "/" + basename) == 0))
      return &o;
  }
  return nullptr;
}

void settle_fixtures() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(fixtures_dir(), ec)) {
      if (!e.is_regular_file()) continue;
      int fd = open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      fsync(fd);
      posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      close(fd);
    }
    int fd = open(preload_path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      fsync(fd);
      posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
      close(fd);
    }
  });
}

TmpfsMount::TmpfsMount(const std::string& d, const char* options) : dir(d) {
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, options) == 0)
    mounted = true;
  else
    error = strerror(errno);
}

TmpfsMount::~TmpfsMount() {
  if (mounted) umount2(dir.c_str(), MNT_DETACH);
}

DifferentialResult run_differential(const std::vector<std::string>& argv, RunOptions opts) {
  settle_fixtures();
  DifferentialResult d;
  std::string dir = temp_dir("diff");
  for (int attempt = 0; attempt < 2; ++attempt) {
    d.trace_path = dir + "/attempt" + std::to_string(attempt) + ".trace";
    d.plain = run(argv, opts);
    d.traced = run_traced(argv, d.trace_path, opts);
    if (d.same()) break;
  }
  return d;
}

// Page faults taken by the program `argv` (perf's software counter: faults the program took,
// not pages the kernel populated for it on request, which getrusage counts too), run with exactly
// the NAME=VALUE settings `env` and its stdout sent to /dev/null; -1 where perf events are not
// allowed here. The program must exit 0.
long page_faults_of(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  std::vector<std::string> arg_strings = argv, env_strings = env;
  const std::vector<char*> args = exec_array(arg_strings), envp = exec_array(env_strings);
  int go[2];
  REQUIRE(::pipe2(go, O_CLOEXEC) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    char c;
    ::close(go[1]);
    if (::read(go[0], &c, 1) != 1) ::_exit(126);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::close(go[0]);
  perf_event_attr attr{};
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_PAGE_FAULTS;
  attr.disabled = 1;
  attr.enable_on_exec = 1;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  const int fd = int(::syscall(SYS_perf_event_open, &attr, pid, -1, -1, PERF_FLAG_FD_CLOEXEC));
  const char c = 'x';
  REQUIRE(::write(go[1], &c, 1) == 1);
  ::close(go[1]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  if (fd < 0) return -1;
  uint64_t faults = 0;
  const bool read_ok = ::read(fd, &faults, sizeof faults) == sizeof faults;
  ::close(fd);
  REQUIRE(read_ok);
  return long(faults);
}

}  // namespace dltrace::test

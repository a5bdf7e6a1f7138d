// `dltrace run -- CMD [ARGS...]`: runs CMD with libdltrace.so preloaded and exits like CMD.
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "commands/command.h"
#include "commands/run_reaper.h"
#include "commands/run_session.h"
#include "commands/run_summary.h"
#include "common/config.h"
#include "dltrace/format.h"
#include "render/terminal_style.h"

namespace dltrace::viewer {
namespace {

namespace fs = std::filesystem;

struct RunOptions {
  std::string output;
  std::string config;
  bool live = false;
  std::string stack_depth;
  std::string buffer_size;
  std::string only;
  bool explain = false;
  std::vector<std::string> command;
};

volatile sig_atomic_t g_child = 0;

// How long run waits, after its child ended, for orphaned descendants that are about to end.
constexpr std::chrono::milliseconds kOrphanGrace{100};

// Forward SIGINT/SIGTERM sent with kill(); a terminal's Ctrl-C already reached the child, which
// shares our process group, so forwarding it too would deliver it twice.
void forward_signal(int sig, siginfo_t* info, void*) {
  if (g_child > 0 && info != nullptr && info->si_code <= 0) kill(g_child, sig);
}

#ifndef DLTRACE_INSTALL_LIBDIR
#define DLTRACE_INSTALL_LIBDIR "lib"
#endif

// <dir of /proc/self/exe>/../lib/libdltrace.so (the build tree), else ../<libdir>/libdltrace.so
// (installed: /usr/bin/dltrace, /usr/lib/x86_64-linux-gnu/libdltrace.so). Never search elsewhere,
// so we never trace with a stale copy.
absl::StatusOr<std::string> find_preload() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return TraceError(fmt::format("cannot find our own executable: {}", ec.message()));
  const fs::path prefix = exe.parent_path().parent_path();
  const fs::path build_tree = prefix / "lib" / "libdltrace.so";
  const fs::path installed = prefix / DLTRACE_INSTALL_LIBDIR / "libdltrace.so";
  for (const fs::path& lib : {build_tree, installed})
    if (::access(lib.c_str(), R_OK) == 0) return fs::weakly_canonical(lib, ec).string();
  return TraceError(
      fmt::format("the recorder {} is missing; build the dltrace_preload target (or install "
                  "dltrace) so that lib/libdltrace.so sits next to bin/dltrace",
                  build_tree.string()));
}

bool valid_size(std::string_view s) {
  if (s.empty()) return false;
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  if (digits == 0) return false;
  const std::string_view rest = s.substr(digits);
  return rest.empty() || (rest.size() == 1 && std::strchr("kKmMgG", rest[0]) != nullptr);
}

// Trace files the recorder may have created for `pattern` (DLTRACE_OUTPUT syntax): the directory
// to look in and a regex for names (%p, %e, and the ".N" suffix added when a name exists).
struct OutputPattern {
  fs::path dir;
  std::regex name;
};

// `pid`: match only the files of that process (%p must then be exactly that pid).
std::optional<OutputPattern> output_pattern(std::string pattern, std::optional<pid_t> pid = {}) {
  if (pattern.empty()) pattern = "./dltrace.%e.%p.trace";
  std::error_code ec;  // an existing directory is a directory, as for the recorder
  if (pattern.back() != '/' && fs::is_directory(pattern, ec)) pattern += '/';
  if (pattern.back() == '/') pattern += "dltrace.%e.%p.trace";
  const fs::path p(pattern);
  const std::string dir = p.parent_path().string();
  if (dir.find('%') != std::string::npos) return std::nullopt;
  std::string base = p.filename().string();
  std::string suffix;
  if (base.size() > 6 && base.ends_with(".trace")) {
    suffix = ".trace";
    base.resize(base.size() - 6);
  }
  std::string re;
  auto literal = [&re](std::string_view s) {
    for (char c : s) {
      if (std::strchr(".^$|()[]{}*+?\\", c)) re += '\\';
      re += c;
    }
  };
  for (size_t i = 0; i < base.size(); ++i) {
    if (base[i] == '%' && i + 1 < base.size() && base[i + 1] == 'p') {
      re += pid ? std::to_string(*pid) : std::string("[0-9]+");
      ++i;
    } else if (base[i] == '%' && i + 1 < base.size() && base[i + 1] == 'e') {
      re += ".+";
      ++i;
    } else {
      literal(std::string_view(&base[i], 1));
    }
  }
  re += "(\\.[0-9]+)?";
  literal(suffix);
  return OutputPattern{dir.empty() ? fs::path(".") : fs::path(dir), std::regex(re)};
}

std::set<std::string> matching_files(const OutputPattern& p) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(p.dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, p.name)) out.insert((p.dir / name).lexically_normal().string());
  }
  return out;
}

// Names the trace files the run created: the traced process's own first (the last one it
// wrote, after any exec, is the one to look at), then a count of its children's.
// Only files that carry this run's token are adopted: a shared directory may hold files of other
// runs, or files planted there during ours. Traces moved to a fallback place are adopted from the
// run report.
void report_traces(const std::string& output, const std::set<std::string>& before, pid_t pid,
                   const char* program, int exit_code, const std::vector<ObservedEnd>& ends,
                   bool verbose, bool explain, const RunSession& session,
                   const std::vector<RunReportEntry>& reported) {
  const auto all = output_pattern(output);
  const auto mine = output_pattern(output, pid);
  if (!all || !mine) return;
  std::set<std::string> candidates = matching_files(*all);
  for (const auto& e : reported)
    if (!e.fallback_path().empty()) candidates.insert(e.fallback_path());
  std::vector<std::string> own, children;
  for (const auto& f : candidates) {
    if (before.contains(f) || !session.owns(f)) continue;
    const std::string name = fs::path(f).filename().string();
    (std::regex_match(name, mine->name) ? own : children).push_back(f);
  }
  if (own.empty() && children.empty()) {
    if (!verbose || exit_code == 126 || exit_code == 127) return;  // exec failed; already reported
    if (!reported.empty()) return;                                 // the recorders said why
    std::fprintf(stderr,
                 "dltrace: no trace file was written (is %s statically linked or setuid, or did "
                 "it clear LD_PRELOAD?)\n",
                 program);
    return;
  }
  auto mtime = [](const std::string& f) {
    std::error_code ec;
    return fs::last_write_time(f, ec);
  };
  std::ranges::sort(own, {}, mtime);
  // The recorder cannot see every end (SIGKILL; SIGTERM and SIGINT, whose handlers it leaves to
  // the program; ld.so's own fatal _exit(127); a raw exit_group): write what we reaped into the
  // traces it left without one.
  std::vector<std::string> adopted = own;
  adopted.insert(adopted.end(), children.begin(), children.end());
  record_observed_ends(adopted, ends);
  if (!verbose && !explain) return;
  // The program's own trace first (its last image, when it exec'ed), then the others.
  std::vector<std::string> listed;
  if (!own.empty()) listed.push_back(own.back());
  for (const auto& f : adopted)
    if (own.empty() || f != own.back()) listed.push_back(f);
  const std::vector<TracedProcess> processes = summarize_traces(listed);
  if (explain)
    print_explanations(processes, use_color(ColorMode::kAuto, isatty(STDERR_FILENO) == 1), stderr);
  if (verbose) print_run_summary(processes, explain, stderr);
}

void set_env(const char* name, const std::string& value) {
  ::setenv(name, value.c_str(), 1);
}

absl::Status run_command(const RunOptions& o, int* exit_code) {
  if (o.command.empty()) return UsageError("no command given: dltrace run -- CMD [ARGS...]");
  if (!o.buffer_size.empty() && !valid_size(o.buffer_size)) {
    return UsageError(fmt::format(
        "--buffer-size '{}': expected a number with an optional K, M or G suffix", o.buffer_size));
  }
  if (!o.only.empty()) {
    config::Glob glob;
    std::string why;
    if (!glob.compile(o.only, &why)) return UsageError(fmt::format("--only '{}': {}", o.only, why));
  }
  auto preload = find_preload();
  if (!preload.ok()) return preload.status();

  // The environment is set in our own process before fork; we exec nothing else.
  const char* existing = std::getenv("LD_PRELOAD");
  set_env("LD_PRELOAD",
          existing && *existing ? fmt::format("{}:{}", *preload, existing) : *preload);
  if (!o.output.empty()) {
    if (o.output.back() == '/') create_private_directories(o.output);  // the user wants one
    set_env("DLTRACE_OUTPUT", o.output);
  }
  if (!o.config.empty()) {
    std::error_code ec;
    // Absolute, because CMD may chdir. A missing or bad file is reported by the recorder itself,
    // in the one `dltrace:` line every traced process gives for it.
    const fs::path config = fs::absolute(o.config, ec);
    set_env("DLTRACE_CONFIG", config.string());
  }
  if (o.live) set_env("DLTRACE_LIVE", "1");
  if (!o.stack_depth.empty()) set_env("DLTRACE_STACK_DEPTH", o.stack_depth);
  if (!o.buffer_size.empty()) set_env("DLTRACE_BUFFER_SIZE", o.buffer_size);
  if (!o.only.empty()) set_env("DLTRACE_ONLY", o.only);

  const RunSession session;  // DLTRACE_RUN_TOKEN, DLTRACE_RUN_REPORT
  const char* out_env = std::getenv("DLTRACE_OUTPUT");
  const auto pattern = output_pattern(out_env ? out_env : "");
  const auto before = pattern ? matching_files(*pattern) : std::set<std::string>{};

  std::vector<char*> argv;
  for (const auto& a : o.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  // Orphaned descendants are reparented to us, so that their ends can be observed too.
  become_subreaper();
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return TraceError(fmt::format("fork: {}", std::strerror(errno)));
  if (pid == 0) {
    ::execvp(argv[0], argv.data());
    const int err = errno;
    std::fprintf(stderr, "dltrace: cannot run %s: %s\n", argv[0], std::strerror(err));
    ::_exit(err == ENOENT ? 127 : 126);  // like a shell
  }
  g_child = pid;
  struct sigaction sa {};
  sa.sa_sigaction = forward_signal;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  int status = 0;
  std::vector<ObservedEnd> ends;  // every process we reaped, the child last
  if (!wait_for_child(pid, &status, &ends)) {
    return TraceError(fmt::format("waitpid: {}", std::strerror(errno)));
  }
  g_child = 0;
  ends.push_back({pid, status, monotonic_now_ns()});
  // Orphans that already ended, or end right after the child: never wait for daemons.
  for (const ObservedEnd& e : reap_orphans(kOrphanGrace)) ends.push_back(e);

  const char* quiet = std::getenv("DLTRACE_QUIET");
  const bool verbose = !(quiet && std::string_view(quiet) == "1");
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* abbrev = sigabbrev_np(sig);
    std::fprintf(stderr, "dltrace: %s was killed by signal %d (SIG%s)%s\n", argv[0], sig,
                 abbrev ? abbrev : "?", WCOREDUMP(status) ? ", core dumped" : "");
    *exit_code = 128 + sig;
  } else {
    *exit_code = WEXITSTATUS(status);
  }

  const std::vector<RunReportEntry> reported = session.entries();
  print_run_report(reported);  // also with DLTRACE_QUIET: this is our stderr, not the program's
  // Last, what matters most: the traces, the failed calls, the next command.
  report_traces(out_env ? out_env : "", before, pid, argv[0], *exit_code, ends, verbose, o.explain,
                session, reported);
  return absl::OkStatus();
}

}  // namespace

void register_run_command(CLI::App& app, CommandResult& result) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand(
      "run",
      "Run a program with the recorder (lib/libdltrace.so next to this dltrace) preloaded.\n"
      "Every dlopen/dlmopen/dlsym/dlvsym/dlclose of the program and of its children is\n"
      "recorded; each process writes its own trace file (default ./dltrace.<exe>.<pid>.trace).\n"
      "When the program ends, dltrace names the trace files written and, when calls failed\n"
      "(as `dltrace explain` judges them: a probe the program expected is not a failure), how\n"
      "many, in which processes, and the command to type next; --explain prints the findings\n"
      "right away. All of it goes to stderr; the program's stdout is left alone.\n\n"
      "Environment:\n"
      "  DLTRACE_OUTPUT       the trace file (-o): %p = pid, %e = executable name\n"
      "  DLTRACE_CONFIG       a flag-override config file (-c)\n"
      "  DLTRACE_STACK_DEPTH  native frames per event, 0 = no stacks (--stack-depth)\n"
      "  DLTRACE_BUFFER_SIZE  the trace buffer size (--buffer-size)\n"
      "  DLTRACE_LIVE=1       one line per event on stderr as it happens (--live)\n"
      "  DLTRACE_ONLY         record only the executables matching a glob (--only)\n"
      "  DLTRACE_QUIET=1      nothing on the program's stderr, and no closing summary\n"
      "  LD_PRELOAD           the recorder is put first; what was there is kept\n"
      "The recorder reads them in every traced process, also when it is preloaded by hand\n"
      "(LD_PRELOAD=libdltrace.so CMD).\n\n"
      "Exit status: the program's exit status; 128+N if it was killed by signal N, 127 if it\n"
      "was not found, 126 if it could not be run; 2 on a usage error of dltrace run.\n\n"
      "Examples:\n"
      "  dltrace run -- python3 app.py\n"
      "  dltrace run --explain -o app.trace -- ./host plugin.so\n"
      "  dltrace run -o traces/ -- make check   # one trace per process, in traces/\n"
      "  dltrace show dltrace.python3.1234.trace");
  cmd->add_option("-o,--output", opts->output,
                  "trace file (DLTRACE_OUTPUT): %p = pid, %e = executable name, a trailing '/' "
                  "means a directory");
  cmd->add_option("-c,--config", opts->config, "flag-override config file (DLTRACE_CONFIG)");
  cmd->add_flag("--live", opts->live, "also print one line per event to stderr as it happens");
  cmd->add_option("--stack-depth", opts->stack_depth,
                  "native frames captured per event, 0 disables stacks (default 32)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--buffer-size", opts->buffer_size,
                  "trace buffer size with optional K/M/G suffix (default 64M)");
  cmd->add_option("--only", opts->only,
                  "record only processes whose executable's basename matches this glob, e.g. "
                  "'python3*' (DLTRACE_ONLY); the others run untraced and create no file, and "
                  "their children are matched in turn");
  cmd->add_flag("--explain", opts->explain,
                "when the program ends, print what `dltrace explain` says about each trace with "
                "failed calls (on stderr)");
  cmd->add_option("command", opts->command, "the program and its arguments (after --)")->required();
  cmd->positionals_at_end();
  cmd->callback([opts, &result] {
    int code = kExitOk;
    const absl::Status status = run_command(*opts, &code);
    result.set(status);
    if (status.ok()) result.exit_code = code;
  });
}

}  // namespace dltrace::viewer

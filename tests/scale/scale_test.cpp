// scale_test DLTRACE [SMALL LARGE]: every trace-reading command streams.
//
// Writes a SMALL-event and a LARGE-event trace (default 200k and 2M, every event readable), runs
// `dltrace show / export json / export jsonl / stats / stats --json / tree` on both as child
// processes, reads their whole output through a pipe (checking it really covers every event), and
// compares the children's peak RSS (getrusage ru_maxrss via wait4). Ten times the events may
// cost at most kMaxGrowthKb more peak memory: anything kept per event (a vector of events, a
// map keyed by seq, the ring's pages left mapped) costs 128 bytes or more per event, i.e.
// >= 230 MB over 1.8M extra events, far above the bound.
//
// What is kept per *some* events hides below that bound: a record per dlopen made from Python
// code (1 event in 160 of the first pair) cost stats 3.6 MB. So a second pair of traces is a
// Python program's (every dlopen, 5% of the events, made by an import, from 2048 distinct Python
// stacks, some cut at 64 frames), on which stats and tree may grow by kMaxPythonGrowthKb: even
// 48 bytes per Python dlopen would be 4.3 MB over the large trace's 90k extra ones.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "big_trace.h"

namespace {

constexpr long kMaxGrowthKb = 16 * 1024;
constexpr long kMaxPythonGrowthKb = 4 * 1024;

struct Result {
  bool ok = false;  // exited normally
  int exit_code = -1;
  long max_rss_kb = 0;
  uint64_t bytes = 0;
  uint64_t lines = 0;
  uint64_t matches = 0;  // occurrences of the needle in the output
  std::string head;      // the first 64 KiB of the output
  double seconds = 0;
};

// Runs `dltrace args...` with stdout on a pipe; counts its output while it streams.
Result run(const std::string& dltrace, const std::vector<std::string>& args,
           std::string_view needle) {
  Result r;
  int fds[2];
  if (pipe(fds) != 0) return r;
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(dltrace.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(dltrace.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::vector<char> buf(1 << 16);
  std::string carry;  // the needle may straddle two reads
  for (;;) {
    const ssize_t n = read(fds[0], buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    const std::string_view chunk(buf.data(), size_t(n));
    r.bytes += size_t(n);
    for (char c : chunk) r.lines += c == '\n';
    if (r.head.size() < (1 << 16)) r.head.append(chunk.substr(0, (1 << 16) - r.head.size()));
    if (!needle.empty()) {
      std::string window = carry;
      window.append(chunk);
      for (size_t p = window.find(needle); p != std::string::npos; p = window.find(needle, p + 1))
        ++r.matches;
      // Keep the tail that could start a match; never count a match twice.
      const size_t keep = std::min(window.size(), needle.size() - 1);
      carry = window.substr(window.size() - keep);
    }
  }
  close(fds[0]);
  int status = 0;
  rusage usage{};
  if (wait4(pid, &status, 0, &usage) != pid) return r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.ok = WIFEXITED(status);
  r.exit_code = r.ok ? WEXITSTATUS(status) : -1;
  r.max_rss_kb = usage.ru_maxrss;
  return r;
}

struct Command {
  std::string name;
  std::vector<std::string> args;  // the trace path is appended
  std::string needle;             // counted in the output
  // Checks the output of a run over `events` events; returns "" or what is wrong.
  std::string (*check)(const Result& r, uint64_t events);
  int exit_code = 0;  // explain exits 1 when it found problems (the trace has failed calls)
};

std::string expect(bool ok, const std::string& what) {
  return ok ? std::string() : what;
}

// The number after `prefix` in `text`, or -1.
long long number_after(const std::string& text, std::string_view prefix) {
  const size_t at = text.find(prefix);
  if (at == std::string::npos) return -1;
  return std::strtoll(text.c_str() + at + prefix.size(), nullptr, 10);
}

// Runs each command on the small and the large trace; returns the number that failed.
int compare(const std::string& dltrace, const std::vector<Command>& commands,
            const std::string& small_path, uint64_t small, const std::string& large_path,
            uint64_t large, long max_growth_kb) {
  int failures = 0;
  for (const Command& c : commands) {
    std::vector<std::string> small_args = c.args, large_args = c.args;
    small_args.push_back(small_path);
    large_args.push_back(large_path);
    const Result s = run(dltrace, small_args, c.needle);
    const Result l = run(dltrace, large_args, c.needle);
    const long growth = l.max_rss_kb - s.max_rss_kb;
    std::printf("%-14s %9ld KB %9ld KB %7ld KB %8.2fs %8.2fs\n", c.name.c_str(), s.max_rss_kb,
                l.max_rss_kb, growth, s.seconds, l.seconds);
    std::string problem;
    if (!s.ok || !l.ok || s.exit_code != c.exit_code || l.exit_code != c.exit_code) {
      problem = "dltrace failed";
    } else if (std::string e = c.check(s, small); !e.empty()) {
      problem = e + " (small trace)";
    } else if (std::string e2 = c.check(l, large); !e2.empty()) {
      problem = e2 + " (large trace)";
    } else if (growth > max_growth_kb) {
      problem = "peak RSS grew by " + std::to_string(growth) + " KB for " +
                std::to_string(large - small) +
                " more events (bound: " + std::to_string(max_growth_kb) + " KB)";
    }
    if (!problem.empty()) {
      std::printf("FAIL: %s: %s\n", c.name.c_str(), problem.c_str());
      ++failures;
    }
  }
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && argc != 4) {
    std::fprintf(stderr, "usage: %s DLTRACE [SMALL LARGE]\n", argv[0]);
    return 2;
  }
  const std::string dltrace = argv[1];
  const uint64_t small = argc == 4 ? std::strtoull(argv[2], nullptr, 10) : 200'000;
  const uint64_t large = argc == 4 ? std::strtoull(argv[3], nullptr, 10) : 2'000'000;

  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/dltrace-scale.XXXXXX";
  if (!mkdtemp(dir.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string small_path = dir + "/small.trace";
  const std::string large_path = dir + "/large.trace";
  const std::string small_py_path = dir + "/small-python.trace";
  const std::string large_py_path = dir + "/large-python.trace";
  const std::vector<std::pair<std::string, uint64_t>> traces = {
      {small_path, small}, {large_path, large}, {small_py_path, small}, {large_py_path, large}};
  auto cleanup = [&] {
    for (const auto& [path, events] : traces) unlink(path.c_str());
    rmdir(dir.c_str());
  };
  for (const auto& [path, events] : traces) {
    dltrace::test::BigTraceOptions options;
    options.events = events;
    options.python_loads = path == small_py_path || path == large_py_path;
    const auto t0 = std::chrono::steady_clock::now();
    if (std::string error = dltrace::test::write_big_trace(path, options); !error.empty()) {
      std::fprintf(stderr, "FAIL: cannot write the %llu-event trace: %s\n",
                   static_cast<unsigned long long>(events), error.c_str());
      cleanup();
      return 1;
    }
    std::printf("wrote %s: %llu events in %.1f s\n", path.c_str(),
                static_cast<unsigned long long>(events),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  const std::vector<Command> commands = {
      {"show",
       {"show"},
       "dlsym(",
       [](const Result& r, uint64_t events) {
         // One line per event (dlopen/dlclose lines have no "dlsym(" but are ~10%).
         return expect(r.lines >= events && r.matches >= events * 8 / 10,
                       "show printed " + std::to_string(r.lines) + " lines");
       }},
      {"export json",
       {"export", "--format", "json"},
       "{\"seq\":",
       [](const Result& r, uint64_t events) {
         return expect(r.matches == events,
                       "export json has " + std::to_string(r.matches) + " events");
       }},
      {"export jsonl",
       {"export", "--format", "jsonl"},
       "{\"type\":\"event\"",
       [](const Result& r, uint64_t events) {
         return expect(r.matches == events,
                       "export jsonl has " + std::to_string(r.matches) + " event lines");
       }},
      {"stats",
       {"stats"},
       "",
       [](const Result& r, uint64_t events) {
         return expect(r.head.find(std::to_string(events) + " readable") != std::string::npos,
                       "stats does not count every event");
       }},
      {"stats --json",
       {"stats", "--json"},
       "",
       [](const Result& r, uint64_t events) {
         return expect(r.head.find("\"readable\":" + std::to_string(events)) != std::string::npos,
                       "stats --json does not count every event");
       }},
      {"tree",
       {"tree", "--color=never"},
       "\u2717 dl",
       [](const Result& r, uint64_t events) {
         // The failed dlopens (1% of the events) are in the tree as red leaves, but repeats of
         // one failure share a leaf (distinct ones are bounded by the catalog): 20k failures in
         // 2M events give ~3k leaves; one leaf per call would be 20k.
         return expect(r.matches > 0 && r.matches < events / 400 + 1000,
                       "tree has " + std::to_string(r.matches) + " failed-load leaves for " +
                           std::to_string(events / 100) + " failed calls");
       }},
      {"scopes",
       {"scopes", "--color=never"},
       "local scope of dlopen #",
       [](const Result& r, uint64_t) {
         // One local scope per dlopen group (the plugins are opened once, then only get more
         // references), whatever the number of events.
         return expect(r.matches > 0 && r.matches < 100,
                       "scopes printed " + std::to_string(r.matches) + " local scopes");
       }},
      {"explain",
       {"explain", "--color=never"},
       "[library-not-found]",
       [](const Result& r, uint64_t) {
         // 20 missing libraries, failing again and again: one finding per library and caller.
         return expect(r.matches > 0 && r.matches <= 20 * 64,
                       "explain printed " + std::to_string(r.matches) + " not-found findings");
       },
       1},
      {"explain --json",
       {"explain", "--json"},
       "\"kind\":\"library-not-found\"",
       [](const Result& r, uint64_t) {
         return expect(r.matches > 0 && r.matches <= 20 * 64,
                       "explain --json has " + std::to_string(r.matches) + " not-found findings");
       },
       1},
  };

  // Every dlopen is made from Python: 5% of the events, ~4% of them are the 24 plugins again.
  const std::vector<Command> python_commands = {
      {"stats",
       {"stats"},
       "",
       [](const Result& r, uint64_t events) {
         const long long calls = number_after(r.head, " statement(s), ");
         return expect(calls >= static_cast<long long>(events / 25) &&
                           r.head.find(std::to_string(events) + " readable") != std::string::npos,
                       "stats counts " + std::to_string(calls) + " dlopen calls from Python");
       }},
      {"stats --json",
       {"stats", "--json"},
       "\"truncated\":true",
       [](const Result& r, uint64_t events) {
         // The statements of the cut stacks that no complete stack resolves: one per package.
         const long long calls = number_after(r.head, "\"python_loads\":");
         return expect(
             calls >= static_cast<long long>(events / 25) && r.matches > 0 && r.matches <= 256,
             "stats --json: " + std::to_string(calls) + " Python loads, " +
                 std::to_string(r.matches) + " cut statements");
       }},
      {"tree",
       {"tree", "--color=never"},
       "python /opt/bigtrace/app/main.py:",
       [](const Result& r, uint64_t) {
         // One group per caller object and statement (the failures' callers vary).
         return expect(r.matches > 0 && r.matches < 2000,
                       "tree has " + std::to_string(r.matches) + " statement groups");
       }},
  };

  std::printf("%-14s %12s %12s %10s %9s %9s\n", "command", "rss small", "rss large", "growth",
              "t small", "t large");
  int failures = compare(dltrace, commands, small_path, small, large_path, large, kMaxGrowthKb);
  std::printf("on a Python program's traces (bound: %ld KB)\n", kMaxPythonGrowthKb);
  failures += compare(dltrace, python_commands, small_py_path, small, large_py_path, large,
                      kMaxPythonGrowthKb);
  cleanup();
  std::fflush(stdout);
  return failures == 0 ? 0 : 1;
}

// Running real programs under (and without) the preload, for the integration tests.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace dltrace::test {

// Paths baked in by CMake.
std::string build_dir();                       // ${CMAKE_BINARY_DIR}
std::string fixtures_dir();                    // ${CMAKE_BINARY_DIR}/fixtures
std::string preload_path();                    // the built libdltrace.so
std::string viewer_path();                     // the built dltrace binary
std::string fixture(const std::string& name);  // fixtures_dir() + "/" + name

// The CPU the fixtures and the preload were built for. The host's, except in the test binary of a
// cross build (aarch64_tests), which runs the fixtures under an emulator (qemu-user): run() starts
// every program built for that CPU through it.
struct TestTarget {
  const char* cpu;           // "x86_64", "aarch64"
  uint16_t machine;          // ELF e_machine
  const char* glibc_base;    // the oldest symbol version of glibc's ABI on it: GLIBC_2.2.5, 2.17
  const char* loader;        // its dynamic loader's soname: ld-linux-x86-64.so.2, ...
  std::string emulator;      // "" when the fixtures run natively
  std::string emulator_env;  // NAME=VALUE the emulator needs (its sysroot), or ""
};
const TestTarget& test_target();

struct ProcessResult {
  int exit_code = -1;  // exit status, or -1 when killed by a signal
  int signal = 0;      // terminating signal, 0 if exited
  std::string out;
  std::string err;
};

struct RunOptions {
  std::map<std::string, std::string>
      env;  // added to (or, with an empty value... set to "") the environment
  std::vector<std::string> unset;  // removed from the environment
  std::string cwd;                 // empty: current directory
  std::string stdin_data;
  int timeout_seconds = 60;  // SIGKILL after that, and the test fails
};

// Runs argv[0] (searched in PATH if it has no '/') and collects its output. The child always
// starts with DLTRACE_* and LD_PRELOAD removed from the inherited environment, then gets opts.env.
ProcessResult run(const std::vector<std::string>& argv, const RunOptions& opts = {});

// The same with LD_PRELOAD=libdltrace.so, DLTRACE_QUIET=1 and DLTRACE_OUTPUT=<trace_path>.
ProcessResult run_traced(const std::vector<std::string>& argv, const std::string& trace_path,
                         RunOptions opts = {});

// A fresh directory under the build tree's test scratch area, removed at process exit.
std::string temp_dir(const std::string& prefix);

// Traces matching <dir>/*.trace, sorted by name.
std::vector<std::string> traces_in(const std::string& dir);

// `dltrace export --format json TRACE`, parsed. Fails the current test if it does not parse.
nlohmann::json export_json(const std::string& trace_path);

// The integer after `prefix` on the first line of `out` that starts with it, or -1.
int number_after(const std::string& out, const std::string& prefix);

// "exit=N signal=S" and both outputs, for INFO().
std::string describe(const ProcessResult& r);

// Page faults the program `argv` takes (perf's software counter, which counts the faults it
// took, not pages populated for it on request), run with exactly the NAME=VALUE settings `env`,
// stdout to /dev/null; it must exit 0. -1 where perf events are not allowed here.
long page_faults_of(const std::vector<std::string>& argv, const std::vector<std::string>& env);

// A program run under the recorder and what `dltrace explain` says of its trace.
struct ExplainedRun {
  ProcessResult program, text;  // the program; explain's text (--color=never)
  nlohmann::json json;          // explain --json
};

// Runs `argv` traced into a new trace in `dir` (the recorder never overwrites one) and explains it.
ExplainedRun record_and_explain(const std::vector<std::string>& argv, const std::string& dir);

// The first finding of `kind` in `e`, or null.
nlohmann::json finding(const ExplainedRun& e, const std::string& kind);

// Runs `compiler` (cc, c++, musl-gcc...) with `args`; the test stops unless it succeeds.
void build(const std::string& compiler, const std::vector<std::string>& args);

// Events of `call` whose string field `key` contains `needle`, in an exported trace.
int count_events(const nlohmann::json& trace, const std::string& call, const std::string& key,
                 const std::string& needle);

// The object whose path is `basename` or ends in "/basename", or nullptr.
const nlohmann::json* find_object(const nlohmann::json& trace, const std::string& basename);

// A tmpfs mounted at `dir` with `options` (e.g. "size=512k") for the object's lifetime. Needs root
// (CI runs as root); `mounted` is false with `error` set where mounting is not permitted.
struct TmpfsMount {
  std::string dir;
  bool mounted = false;
  std::string error;
  TmpfsMount(const std::string& dir, const char* options);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
};

// glibc on these VMs can misidentify callers right after a library is written (design doc §9):
// fsync each fixture file and drop it from the page cache before the first run.
void settle_fixtures();

// Runs `argv` without and with the preload; returns both. Differential tests compare them and
// call this once more before failing, so a transient loader effect does not flake.
struct DifferentialResult {
  ProcessResult plain;
  ProcessResult traced;
  std::string trace_path;
  bool same() const {
    return plain.exit_code == traced.exit_code && plain.signal == traced.signal &&
           plain.out == traced.out && plain.err == traced.err;
  }
};
DifferentialResult run_differential(const std::vector<std::string>& argv, RunOptions opts = {});

}  // namespace dltrace::test

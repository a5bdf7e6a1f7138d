// Bad input to the recorder: whatever goes wrong, the traced program behaves exactly as without
// the preload (exit status, stdout, stderr), and the recorder says so in exactly one line on
// stderr that starts with "dltrace: ". Also: the one informational line at exit, DLTRACE_QUIET,
// and secure (setuid) mode.
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

using nlohmann::json;
using namespace dltrace::test;
namespace fs = std::filesystem;

namespace {

struct SplitErr {
  std::string rest;                  // stderr without the dltrace: lines
  std::vector<std::string> dltrace;  // the dltrace: lines
};

SplitErr split_stderr(const std::string& err) {
  SplitErr s;
  std::istringstream in(err);
  std::string line;
  while (std::getline(in, line)) {
    bool complete = !in.eof();
    if (line.rfind("dltrace: ", 0) == 0) {
      s.dltrace.push_back(line);
    } else {
      s.rest += line;
      if (complete) s.rest += '\n';
    }
  }
  return s;
}

// The program (rt_exit3, deterministic output) behaves exactly as untraced and stderr has exactly
// `lines` extra lines starting "dltrace: ". Returns those lines.
std::vector<std::string> require_same_plus_lines(const ProcessResult& plain,
                                                 const ProcessResult& traced, size_t lines) {
  INFO("untraced: exit " << plain.exit_code << " signal " << plain.signal << "\nstdout:\n"
                         << plain.out << "stderr:\n"
                         << plain.err);
  INFO("traced: exit " << traced.exit_code << " signal " << traced.signal << "\nstdout:\n"
                       << traced.out << "stderr:\n"
                       << traced.err);
  CHECK(traced.exit_code == plain.exit_code);
  CHECK(traced.signal == plain.signal);
  CHECK(traced.out == plain.out);
  SplitErr s = split_stderr(traced.err);
  CHECK(s.rest == plain.err);
  CHECK(s.dltrace.size() == lines);
  return s.dltrace;
}

std::vector<std::string> program() {
  return {fixture("rt_exit3"), "arg"};
}

ProcessResult plain_run() {
  settle_fixtures();
  ProcessResult p = run(program());
  REQUIRE(p.exit_code == 3);
  return p;
}

// A trace the recorder had to write to its fallback directory (named in its one line) is removed.
void remove_fallback_trace(const std::string& line) {
  const std::string marker = "; recording to ", tail = " instead";
  const size_t at = line.rfind(marker);
  if (at == std::string::npos || line.size() < at + marker.size() + tail.size()) return;
  std::error_code ec;
  fs::remove(line.substr(at + marker.size(), line.size() - at - marker.size() - tail.size()), ec);
}

// Without DLTRACE_QUIET (with it the recorder says nothing at all): the one line.
std::string error_line_for(const std::string& output, RunOptions opts = {}) {
  ProcessResult plain = plain_run();
  opts.env.emplace("DLTRACE_QUIET", "0");
  ProcessResult traced = run_traced(program(), output, opts);
  // A process that recorded in the fallback directory also says at exit where its events went.
  const SplitErr s = split_stderr(traced.err);
  const bool fell_back =
      !s.dltrace.empty() && s.dltrace[0].find("; recording to ") != std::string::npos;
  std::vector<std::string> lines = require_same_plus_lines(plain, traced, fell_back ? 2 : 1);
  if (fell_back && lines.size() == 2) CHECK(lines[1].find(" written to ") != std::string::npos);
  if (!lines.empty()) remove_fallback_trace(lines[0]);
  return lines.empty() ? std::string() : lines[0];
}

bool dir_is_empty(const std::string& dir) {
  return fs::is_empty(dir);
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
}

}  // namespace

TEST_CASE("unusable output path: program unaffected, one dltrace: line", "[runtime][bad_input]") {
  SECTION("a non-directory component (/dev/null/x.trace)") {
    std::string line = error_line_for("/dev/null/x.trace");
    INFO(line);
    CHECK(line.find("/dev/null/x.trace") != std::string::npos);
  }
  SECTION("a directory where nothing can be created (/proc)") {
    std::string line = error_line_for("/proc/dltrace-test-%p.trace");
    INFO(line);
    CHECK(line.find("/proc/dltrace-test-") != std::string::npos);
  }
  SECTION("a nonexistent directory") {
    std::string dir = temp_dir("nodir");
    std::string missing = dir + "/no/such/dir/x.trace";
    std::string line = error_line_for(missing);
    INFO(line);
    CHECK(line.find(missing) != std::string::npos);
    CHECK_FALSE(fs::exists(missing));
  }
  SECTION("a read-only directory, as an unprivileged user") {
    // Root ignores directory permissions, so the program runs as nobody (setpriv execs directly:
    // only `env` and the program run, and env is not traced itself).
    std::string dir = temp_dir("readonly");
    REQUIRE(chmod(dir.c_str(), 0755) == 0);
    std::string ro = dir + "/ro";
    REQUIRE(mkdir(ro.c_str(), 0555) == 0);
    settle_fixtures();
    std::vector<std::string> as_nobody = {
        "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "env"};
    std::vector<std::string> plain_argv = as_nobody;
    for (const auto& a : program()) plain_argv.push_back(a);
    ProcessResult plain = run(plain_argv);
    if (plain.exit_code != 3) {
      WARN("cannot run the fixture as nobody via setpriv (exit "
           << plain.exit_code << ": " << plain.err << "); read-only case not tested");
      return;
    }
    // A name of our own: the trace goes to nobody's fallback directory, shared by every test run.
    const std::string name = "x-" + fs::path(dir).filename().string();
    auto traced_argv = [&](const char* quiet) {
      std::vector<std::string> argv = as_nobody;
      argv.push_back("LD_PRELOAD=" + preload_path());
      argv.push_back(std::string("DLTRACE_QUIET=") + quiet);
      argv.push_back("DLTRACE_OUTPUT=" + ro + "/" + name + ".trace");
      for (const auto& a : program()) argv.push_back(a);
      return argv;
    };
    require_same_plus_lines(plain, run(traced_argv("1")), 0);  // QUIET: not a word
    // Without QUIET: where the trace went instead, and (informational) how much it holds.
    std::vector<std::string> lines = require_same_plus_lines(plain, run(traced_argv("0")), 2);
    if (!lines.empty()) {
      INFO(lines[0]);
      CHECK(lines[0].find(ro + "/" + name + ".trace") != std::string::npos);
      CHECK(lines[0].find("; recording to /tmp/dltrace-65534/" + name + ".") != std::string::npos);
    }
    CHECK(dir_is_empty(ro));
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/tmp/dltrace-65534", ec))
      if (e.path().filename().string().rfind(name + ".", 0) == 0) fs::remove(e.path(), ec);
  }
}

TEST_CASE("bad DLTRACE_BUFFER_SIZE: program unaffected, one dltrace: line",
          "[runtime][bad_input]") {
  for (const char* value : {"banana", "0", "12Q", "-5M"}) {
    SECTION(std::string("DLTRACE_BUFFER_SIZE=") + value) {
      std::string dir = temp_dir("bufsize");
      RunOptions opts;
      opts.env["DLTRACE_BUFFER_SIZE"] = value;
      std::string line = error_line_for(dir + "/x.trace", opts);
      INFO(line);
      CHECK(line.find("DLTRACE_BUFFER_SIZE") != std::string::npos);
    }
  }
}

TEST_CASE("a full disk: program unaffected, one dltrace: line", "[runtime][bad_input]") {
  std::string dir = temp_dir("fulldisk");
  TmpfsMount m(dir, "size=512k");
  if (!m.mounted) {
    WARN("mount -t tmpfs not permitted here (" << m.error << "); full-disk case NOT tested");
    return;
  }
  SECTION("the default 64M buffer does not fit in 512 KiB") {
    std::string line = error_line_for(dir + "/x.trace");
    INFO(line);
    CHECK_FALSE(line.empty());
  }
  SECTION("the disk fills up except for a few KiB") {
    // Leave less than the minimum buffer free.
    {
      std::ofstream filler(dir + "/filler", std::ios::binary);
      std::string block(4096, 'x');
      for (int i = 0; i < 512 / 4 - 8; ++i) filler << block;
    }
    RunOptions opts;
    opts.env["DLTRACE_BUFFER_SIZE"] = "256K";
    std::string line = error_line_for(dir + "/x.trace", opts);
    INFO(line);
    CHECK_FALSE(line.empty());
  }
}

TEST_CASE("bad DLTRACE_CONFIG: program runs untouched, one dltrace: line", "[runtime][bad_input]") {
  std::string dir = temp_dir("config");
  for (const char* quiet : {"1", "0"}) {
    // With DLTRACE_QUIET=0 the informational exit line is allowed too, so count only with =1;
    // with 0 check that the error line is still there.
    SECTION(std::string("a config that does not exist, DLTRACE_QUIET=") + quiet) {
      std::string config = dir + "/missing.toml";
      RunOptions opts;
      opts.env["DLTRACE_CONFIG"] = config;
      opts.env["DLTRACE_QUIET"] = quiet;
      ProcessResult plain = plain_run();
      ProcessResult traced = run_traced(program(), dir + "/missing.trace", opts);
      SplitErr s = split_stderr(traced.err);
      INFO("stderr: " << traced.err);
      if (std::string(quiet) == "1")
        require_same_plus_lines(plain, traced, 1);
      else {
        CHECK(traced.exit_code == plain.exit_code);
        CHECK(traced.out == plain.out);
        CHECK(s.rest == plain.err);
      }
      bool named = false;
      for (const auto& l : s.dltrace) named |= l.find(config) != std::string::npos;
      CHECK(named);
    }
  }
  SECTION("a config that is not valid TOML") {
    std::string config = dir + "/broken.toml";
    write_file(config, "# broken\n[[override]\nmatch = \"librt_plugin.so\"\n");
    RunOptions opts;
    opts.env["DLTRACE_CONFIG"] = config;
    std::string trace = dir + "/broken.trace";
    ProcessResult plain = plain_run();
    ProcessResult traced = run_traced(program(), trace, opts);
    std::vector<std::string> lines = require_same_plus_lines(plain, traced, 1);
    if (!lines.empty()) {
      INFO(lines[0]);
      // "dltrace: CONFIG:LINE:COL: message" (spec), the error is on line 2.
      CHECK(lines[0].rfind("dltrace: " + config + ":2:", 0) == 0);
    }
    // Still traced, without overrides.
    REQUIRE(fs::exists(trace));
    json t = export_json(trace);
    int dlopens = 0;
    for (const auto& e : t["events"])
      if (e["call"] == "dlopen") {
        ++dlopens;
        CHECK(e["flags"] == e["effective_flags"]);
        CHECK((!e.contains("override") || e["override"].is_null()));
      }
    CHECK(dlopens == 1);
  }
  SECTION("a config naming an unknown flag") {
    std::string config = dir + "/badflag.toml";
    write_file(config, "[[override]]\nmatch = \"librt_plugin.so\"\nadd = [\"RTLD_BOGUS\"]\n");
    RunOptions opts;
    opts.env["DLTRACE_CONFIG"] = config;
    ProcessResult plain = plain_run();
    ProcessResult traced = run_traced(program(), dir + "/badflag.trace", opts);
    std::vector<std::string> lines = require_same_plus_lines(plain, traced, 1);
    if (!lines.empty()) {
      INFO(lines[0]);
      CHECK(lines[0].rfind("dltrace: " + config + ":3:", 0) == 0);
    }
  }
}

TEST_CASE("informational output: one line at exit, none with DLTRACE_QUIET=1",
          "[runtime][bad_input]") {
  ProcessResult plain = plain_run();
  std::string dir = temp_dir("quiet");
  SECTION("DLTRACE_QUIET unset") {
    RunOptions opts;
    opts.env["LD_PRELOAD"] = preload_path();
    opts.env["DLTRACE_OUTPUT"] = dir + "/loud.trace";
    ProcessResult traced = run(program(), opts);
    std::vector<std::string> lines = require_same_plus_lines(plain, traced, 1);
    if (!lines.empty()) WARN("informational line at exit: " << lines[0]);
    CHECK(fs::exists(dir + "/loud.trace"));
  }
  SECTION("DLTRACE_QUIET=1") {
    ProcessResult traced = run_traced(program(), dir + "/quiet.trace");
    require_same_plus_lines(plain, traced, 0);
    CHECK(traced.err == plain.err);
    CHECK(fs::exists(dir + "/quiet.trace"));
  }
}

TEST_CASE("secure mode: a setuid program runs untraced and unchanged", "[runtime][bad_input]") {
  // ld.so ignores LD_PRELOAD entries containing '/' for AT_SECURE processes, so the program runs
  // exactly as without the preload and no trace is written.
  settle_fixtures();
  std::string dir = temp_dir("setuid");
  REQUIRE(chmod(dir.c_str(), 0755) == 0);
  struct statvfs vfs {};
  REQUIRE(statvfs(dir.c_str(), &vfs) == 0);
  if (vfs.f_flag & ST_NOSUID) {
    WARN("the build tree is on a nosuid file system; secure mode NOT tested");
    return;
  }
  std::string prog = dir + "/rt_exit3";
  fs::copy_file(fixture("rt_exit3"), prog);
  fs::copy_file(fixture("librt_plugin.so"), dir + "/librt_plugin.so");
  REQUIRE(chown(prog.c_str(), 65534, 65534) == 0);
  REQUIRE(chmod(prog.c_str(), 04755) == 0);
  std::string out_dir = dir + "/out";
  REQUIRE(mkdir(out_dir.c_str(), 0777) == 0);
  REQUIRE(chmod(out_dir.c_str(), 0777) == 0);  // writable by the program, were it traced

  ProcessResult plain = run({prog, "arg"});
  REQUIRE(plain.exit_code == 3);
  RunOptions opts;
  opts.env["LD_PRELOAD"] = preload_path();
  opts.env["DLTRACE_OUTPUT"] = out_dir + "/";  // DLTRACE_QUIET unset: any message would show
  ProcessResult traced = run({prog, "arg"}, opts);
  INFO("stderr: " << traced.err);
  CHECK(traced.exit_code == plain.exit_code);
  CHECK(traced.out == plain.out);
  CHECK(traced.err == plain.err);
  CHECK(dir_is_empty(out_dir));
}

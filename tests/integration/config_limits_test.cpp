// A config can never harm the traced program (issue 18, item 6): a FIFO, a file over the size
// limit, too many rules, input toml++ asserts on or mishandles, a memory limit. Each time the
// program's stdout and exit status are those of the untraced run, its own stderr is unchanged,
// and the recorder adds exactly one `dltrace: CONFIG: message` line, also with DLTRACE_QUIET=1.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

namespace {

std::vector<std::string> program() {
  return {fixture("rt_exit3"), "arg"};
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

std::string rules(size_t n) {
  std::string text;
  text.reserve(n * 48);
  for (size_t i = 0; i < n; ++i)
    text += "[[override]]\nmatch = \"librt_plugin.so\"\nadd = [\"RTLD_NOW\"]\n";
  return text;
}

// The dltrace: lines of stderr, and the rest.
std::vector<std::string> dltrace_lines(const std::string& err, std::string* rest) {
  std::vector<std::string> lines;
  std::istringstream in(err);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("dltrace:", 0) == 0)
      lines.push_back(line);
    else
      *rest += line + (in.eof() ? "" : "\n");
  }
  return lines;
}

// Untraced and traced runs agree, and stderr has exactly one dltrace: line starting `expected`.
void check_one_line(const ProcessResult& plain, const ProcessResult& traced,
                    const std::string& expected) {
  INFO("untraced: " << describe(plain));
  INFO("traced: " << describe(traced));
  CHECK(plain.exit_code == 3);
  CHECK(traced.exit_code == plain.exit_code);
  CHECK(traced.signal == plain.signal);
  CHECK(traced.out == plain.out);
  std::string rest;
  std::vector<std::string> lines = dltrace_lines(traced.err, &rest);
  CHECK(rest == plain.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].rfind(expected, 0) == 0);
}

}  // namespace

TEST_CASE("config limits: the program runs untouched, one dltrace: line",
          "[runtime][bad_input][config]") {
  settle_fixtures();
  std::string dir = temp_dir("config-limits");
  ProcessResult plain = run(program());
  struct Case {
    std::string name;
    std::string path;
    std::string expected;
  };
  std::vector<Case> cases;
  std::string fifo = dir + "/fifo.toml";
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  cases.push_back(
      {"a FIFO", fifo, "dltrace: " + fifo + ": cannot read config: not a regular file"});
  std::string big = dir + "/big.toml";
  write_file(big, rules(30000));  // 1.5 MB
  cases.push_back({"over 1 MiB", big, "dltrace: " + big + ": config is larger than 1 MiB"});
  std::string many = dir + "/many.toml";
  write_file(many, rules(10001));
  cases.push_back(
      {"10,001 rules", many,
       "dltrace: " + many + ":30001:1: too many rules: the limit is 10000 [[override]]"});
  std::string tilde = dir + "/tilde.toml";
  write_file(tilde, "[[~]]\n");
  cases.push_back({"[[~]]", tilde, "dltrace: " + tilde + ":1:3: "});
  std::string bom3 = dir + "/bom3.toml";
  write_file(bom3, "\xEF\xBB\xBE");
  cases.push_back({"EF BB BE", bom3,
                   "dltrace: " + bom3 +
                       ":1:1: non-ASCII character outside a comment or a one-line string value"});
  std::string newline = dir + "/newline.toml";
  write_file(newline, "[[override]]\nmatch = \"x\"\nadd = [\"RTLD_NOW\\nRTLD_GLOBAL\"]\n");
  cases.push_back({"a newline in a flag name", newline,
                   "dltrace: " + newline + ":3:8: unknown flag 'RTLD_NOW\\x0aRTLD_GLOBAL'"});

  for (const auto& c : cases) {
    for (const char* quiet : {"1", "0"}) {
      DYNAMIC_SECTION(c.name << ", DLTRACE_QUIET=" << quiet) {
        RunOptions opts;
        opts.env["DLTRACE_CONFIG"] = c.path;
        opts.env["DLTRACE_QUIET"] = quiet;
        opts.env["DLTRACE_BUFFER_SIZE"] = "1M";
        opts.timeout_seconds = 20;  // a FIFO hung every process before main
        auto start = std::chrono::steady_clock::now();
        ProcessResult traced = run_traced(program(), dir + "/run.trace", opts);
        CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
        // rt_exit3 makes dl* calls: without QUIET the informational exit line is the only other.
        std::string err;
        for (const auto& l : dltrace_lines(traced.err, &err))
          if (l.find(" written to ") == std::string::npos) err += l + "\n";
        traced.err = err;
        check_one_line(plain, traced, c.expected);
      }
    }
  }
}

TEST_CASE("config limits: a huge config under a memory limit", "[runtime][bad_input][config]") {
  // 10^6 rules (37 MB) took ~1 GB to parse: under `ulimit -v` std::bad_alloc aborted the program
  // (exit 134). Now the size is refused before any parsing; and a config within the size limit
  // that still cannot be parsed in the memory left is "out of memory", never an abort (about
  // 30 MB for this one: under 28 MiB it is out of memory, under 256 MiB too many rules).
  settle_fixtures();
  std::string dir = temp_dir("config-memory");
  std::string huge = dir + "/huge.toml";
  write_file(huge, rules(1000000));
  std::string dense = dir + "/dense.toml";  // 1 MiB of the smallest rules toml++ builds nodes for
  {
    std::string text = "override = [";
    while (text.size() < (size_t{1} << 20) - 40) text += "{match='a',set=[]},";
    write_file(dense, text + "]\n");
  }
  for (const std::string& config : {huge, dense}) {
    for (const char* limit_kb : {"28672", "262144"}) {
      DYNAMIC_SECTION((config == huge ? "huge" : "dense") << " under ulimit -v " << limit_kb) {
        // The limit applies to the program only, and LD_PRELOAD to the program only (not the
        // shell).
        std::string script =
            std::string("ulimit -v ") + limit_kb + " && LD_PRELOAD=\"$1\" exec \"$2\" arg";
        RunOptions base;
        base.timeout_seconds = 60;
        ProcessResult plain = run({"/bin/sh", "-c", script, "sh", "", fixture("rt_exit3")}, base);
        RunOptions opts = base;
        opts.env["DLTRACE_CONFIG"] = config;
        opts.env["DLTRACE_QUIET"] = "1";
        opts.env["DLTRACE_BUFFER_SIZE"] = "1M";
        opts.env["DLTRACE_OUTPUT"] = dir + "/run.trace";
        ProcessResult traced =
            run({"/bin/sh", "-c", script, "sh", preload_path(), fixture("rt_exit3")}, opts);
        if (config == huge) {
          check_one_line(plain, traced, "dltrace: " + huge + ": config is larger than 1 MiB");
        } else {
          // Parsed within the limit: too many rules; else out of memory. One line either way.
          std::string rest;
          std::vector<std::string> lines = dltrace_lines(traced.err, &rest);
          INFO(traced.err);
          REQUIRE(lines.size() == 1);
          bool known = lines[0].find("too many rules") != std::string::npos ||
                       lines[0].find(": out of memory") != std::string::npos;
          CHECK(known);
          check_one_line(plain, traced, "dltrace: " + dense);
        }
      }
    }
  }
}

// Provenance: `dltrace --version` names the git commit it was built from, every trace records
// the recorder's version in its header (recorder_version, taken from the reserved bytes), and the
// viewer says when it reads a trace recorded by another version, or by one that predates it.
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <regex>
#include <string>

#include "dltrace/format.h"
#include "harness.h"

using namespace dltrace::test;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A value of the build's CMakeCache.txt: the source tree it was configured from, the version.
std::string cache_value(const std::string& name) {
  const std::string cache = slurp(build_dir() + "/CMakeCache.txt");
  std::smatch m;
  REQUIRE(std::regex_search(cache, m, std::regex(name + ":[A-Z]+=(.*)")));
  return m[1];
}

std::string header_version(const std::string& trace) {
  const std::string bytes = slurp(trace);
  REQUIRE(bytes.size() >= dltrace::format::kHeaderSize);
  const size_t at = offsetof(dltrace::format::FileHeader, recorder_version);
  return std::string(bytes.c_str() + at);  // NUL-terminated within the field
}

}  // namespace

TEST_CASE("dltrace --version prints the version and the git commit", "[cli][version]") {
  const ProcessResult v = run({viewer_path(), "--version"});
  INFO(describe(v));
  REQUIRE(v.exit_code == 0);
  const ProcessResult git =
      run({"git", "-C", cache_value("CMAKE_HOME_DIRECTORY"), "rev-parse", "--short=12", "HEAD"});
  const std::string version = cache_value("CMAKE_PROJECT_VERSION");
  if (git.exit_code != 0) {
    CHECK(v.out == "dltrace " + version + " (git commit unknown: not built from a git checkout)\n");
  } else {
    CHECK(v.out ==
          "dltrace " + version + " (git commit " + git.out.substr(0, git.out.find('\n')) + ")\n");
  }
}

TEST_CASE("a trace records the recorder's version; the viewer notes another one",
          "[runtime][version]") {
  const std::string dir = temp_dir("version");
  const std::string trace = dir + "/t.trace";
  REQUIRE(run_traced({fixture("rt_local_plugin")}, trace).exit_code == 0);
  const ProcessResult v = run({viewer_path(), "--version"});
  std::smatch m;
  REQUIRE(std::regex_search(v.out, m, std::regex(R"(^dltrace (\S+) \(git commit ([0-9a-f]+)\))")));
  CHECK(header_version(trace) == m[1].str() + "+" + m[2].str());

  // This build's own trace: no note.
  const ProcessResult same = run({viewer_path(), "show", trace});
  INFO(describe(same));
  CHECK(same.exit_code == 0);
  CHECK(same.err.find("note:") == std::string::npos);

  const size_t at = offsetof(dltrace::format::FileHeader, recorder_version);
  std::string bytes = slurp(trace);
  SECTION("another version") {
    const std::string other = "0.0.9+0123456789ab";
    bytes.replace(at, 32, std::string(other) + std::string(32 - other.size(), '\0'));
    spit(dir + "/other.trace", bytes);
    const ProcessResult r = run({viewer_path(), "show", dir + "/other.trace"});
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    CHECK(r.out == same.out);
    CHECK(r.err == "dltrace: note: " + dir + "/other.trace was recorded by dltrace " + other +
                       "; this is dltrace " + header_version(trace) + "\n");
  }
  SECTION("a trace of a recorder before the field (zeros there) still reads") {
    bytes.replace(at, 32, std::string(32, '\0'));
    spit(dir + "/old.trace", bytes);
    for (const char* command : {"show", "explain", "stats"}) {
      const ProcessResult r = run({viewer_path(), command, dir + "/old.trace"});
      INFO(command << ": " << describe(r));
      CHECK(r.exit_code == run({viewer_path(), command, trace}).exit_code);
      CHECK(r.err.find("dltrace: note: " + dir +
                       "/old.trace was recorded by an older dltrace, which did not record its "
                       "version") != std::string::npos);
    }
  }
}

// The recorder's own stderr lines (DLTRACE_LIVE, the end-of-process line) must not change the
// program's fate when stderr is a pipe nobody reads: untraced, the program never writes there.
#include <unistd.h>

#include <catch2/catch.hpp>

#include "harness.h"

using namespace dltrace::test;

namespace {

// Runs `program` with its stderr on a pipe whose read end is already closed, stdout captured,
// and prints "status=N" (or "signal=N"). The launcher is /usr/bin/python3 itself untraced: only
// the child gets `child_env`.
ProcessResult run_with_broken_stderr(const std::string& program,
                                     const std::map<std::string, std::string>& child_env) {
  std::string script =
      "import os, subprocess, sys\n"
      "r, w = os.pipe()\n"
      "os.close(r)\n"
      "env = dict(os.environ)\n";
  for (const auto& [k, v] : child_env) script += "env['" + k + "'] = '" + v + "'\n";
  script +=
      "p = subprocess.run([sys.argv[1]], stdout=subprocess.PIPE, stderr=w, env=env)\n"
      "sys.stdout.write(p.stdout.decode())\n"
      "print('signal=%d' % -p.returncode if p.returncode < 0 else 'status=%d' % p.returncode)\n";
  return run({"/usr/bin/python3", "-c", script, program});
}

}  // namespace

TEST_CASE("live lines to a closed stderr pipe do not kill the program", "[runtime][live]") {
  if (access("/usr/bin/python3", X_OK) != 0) {
    WARN("no /usr/bin/python3; skipped");
    return;
  }
  std::string dir = temp_dir("live");
  ProcessResult plain = run_with_broken_stderr(fixture("rt_local_plugin"), {});
  ProcessResult traced = run_with_broken_stderr(
      fixture("rt_local_plugin"),
      {{"LD_PRELOAD", preload_path()}, {"DLTRACE_OUTPUT", dir + "/"}, {"DLTRACE_LIVE", "1"}});
  INFO("untraced: " << describe(plain) << "\ntraced: " << describe(traced));
  CHECK(plain.out.find("status=0") != std::string::npos);  // it never writes to stderr itself
  CHECK(traced.out == plain.out);
  CHECK(traces_in(dir).size() == 1);  // and it was recorded
}

TEST_CASE("live lines show the program's strings escaped", "[runtime][live][hostile]") {
  if (access("/usr/bin/python3", X_OK) != 0) {
    WARN("no /usr/bin/python3; skipped");
    return;
  }
  // A real program that dlopens a path and looks up a name holding terminal escapes, CR/LF
  // and invalid UTF-8: the recorder's live lines must show them, not send them to the terminal.
  const std::string script =
      "import ctypes\n"
      "try:\n"
      "    ctypes.CDLL('/nonexistent/\\x1b]0;pwned\\x07lib\\r\\n0 problems.so')\n"
      "except OSError:\n"
      "    pass\n"
      "try:\n"
      "    ctypes.CDLL(None)[b'\\x1b[2Jsym\\xff']\n"
      "except AttributeError:\n"
      "    pass\n";
  std::string dir = temp_dir("live-escape");
  RunOptions options;
  options.env = {
      {"LD_PRELOAD", preload_path()}, {"DLTRACE_OUTPUT", dir + "/"}, {"DLTRACE_LIVE", "1"}};
  ProcessResult r = run({"/usr/bin/python3", "-c", script}, options);
  INFO(describe(r));
  CHECK(r.exit_code == 0);
  std::string live;
  for (size_t at = 0; at < r.err.size();) {
    size_t nl = r.err.find('\n', at);
    if (nl == std::string::npos) nl = r.err.size();
    const std::string line = r.err.substr(at, nl - at);
    if (line.rfind("dltrace: [", 0) == 0) live += line + "\n";
    at = nl + 1;
  }
  INFO(live);
  CHECK(live.find("\\x1b]0;pwned\\x07lib\\x0d\\x0a0 problems.so") != std::string::npos);
  CHECK(live.find("\\x1b[2Jsym\\xff") != std::string::npos);
  for (char c : r.err) {
    if (c == '\x1b' || c == '\x07' || c == '\r')
      FAIL("a control byte of the program reached stderr");
  }
  CHECK(r.err.find("\n0 problems") == std::string::npos);
}

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

// The recorder inside a real CPython process: the interpreter must see exactly what it sees
// untraced. /usr/bin/python3 is Debian's, not whatever python3 is first on PATH.
#include <unistd.h>

#include <catch2/catch.hpp>

#include "harness.h"

using namespace dltrace::test;

namespace {
const char* const kPython = "/usr/bin/python3";
}

TEST_CASE("CPython's inherited signal dispositions are untouched", "[differential][python]") {
  if (access(kPython, X_OK) != 0) {
    WARN("no " << kPython << "; skipped");
    return;
  }
  // CPython installs its KeyboardInterrupt handler only when SIGINT is SIG_DFL at start-up: a
  // recorder that hooked SIGINT would silently turn Ctrl-C into a plain kill.
  const char* script =
      "import signal\n"
      "for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):\n"
      "    print(s.name, signal.getsignal(s))\n";
  DifferentialResult d = run_differential({kPython, "-c", script});
  INFO("untraced:\n" << d.plain.out << d.plain.err << "traced:\n" << d.traced.out << d.traced.err);
  CHECK(d.plain.out.find("SIGINT <built-in function default_int_handler>") != std::string::npos);
  CHECK(d.plain.out.find("SIGTERM 0\n") != std::string::npos);  // SIG_DFL
  CHECK(d.same());
}

TEST_CASE("CPython imports stdlib extension modules identically under the preload",
          "[differential][python]") {
  if (access(kPython, X_OK) != 0) {
    WARN("no " << kPython << "; skipped");
    return;
  }
  const char* script =
      "import json, decimal, ssl, sqlite3, ctypes, ctypes.util\n"
      "libm = ctypes.CDLL(ctypes.util.find_library('m'))\n"
      "libm.cos.restype = ctypes.c_double\n"
      "libm.cos.argtypes = [ctypes.c_double]\n"
      "print(json.dumps({'cos0': libm.cos(0.0), 'dec': str(decimal.Decimal(1) / 8)}))\n"
      "try:\n"
      "    ctypes.CDLL('libdoes_not_exist_dltrace.so')\n"
      "except OSError as e:\n"
      "    print('OSError', e)\n";
  DifferentialResult d = run_differential({kPython, "-c", script});
  INFO("untraced:\n" << d.plain.out << d.plain.err << "traced:\n" << d.traced.out << d.traced.err);
  CHECK(d.plain.out.find("\"cos0\": 1.0") != std::string::npos);
  CHECK(d.plain.out.find("OSError libdoes_not_exist_dltrace.so: cannot open shared object file") !=
        std::string::npos);
  CHECK(d.same());
  nlohmann::json j = export_json(d.trace_path);
  bool saw_failed_ctypes = false;
  for (const auto& e : j["events"]) {
    if (e["call"] == "dlopen" && e["file"] == "libdoes_not_exist_dltrace.so") {
      saw_failed_ctypes = true;
      CHECK(e["ok"] == false);
      CHECK(e["error"] ==
            "libdoes_not_exist_dltrace.so: cannot open shared object file: No such file or "
            "directory");
    }
  }
  CHECK(saw_failed_ctypes);
}

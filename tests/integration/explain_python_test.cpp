// Python's own dlopen flags (sys.setdlopenflags, ctypes.CDLL(mode=...)) as the trace records
// them, and explain on a Python host that loads a library RTLD_LOCAL (ctypes' default) whose
// symbols a later load needs: the finding points at the Python line and gives the Python fix,
// which works.
#include <dlfcn.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "harness.h"

using namespace dltrace::test;

namespace {

const char* const kPython = "/usr/bin/python3";

std::string write_script(const std::string& dir, const std::string& text) {
  std::string path = dir + "/script.py";
  std::ofstream(path) << text;
  return path;
}

// The first dlopen event whose file contains `fragment`.
nlohmann::json first_dlopen(const nlohmann::json& doc, const std::string& fragment) {
  for (const auto& e : doc["events"])
    if (e["call"] == "dlopen" && e["file"].is_string() &&
        e["file"].get<std::string>().find(fragment) != std::string::npos)
      return e;
  return nullptr;
}

}  // namespace

TEST_CASE("sys.setdlopenflags and ctypes mode= are the flags of the recorded calls",
          "[explain][python]") {
  if (access(kPython, X_OK) != 0) {
    WARN("no " << kPython << "; skipped");
    return;
  }
  std::string dir = temp_dir("pyflags");
  std::string api = fixtures_dir() + "/overrides/libapi.so";
  std::string script = write_script(dir,
                                    "import sys, os, ctypes\n"
                                    "sys.setdlopenflags(os.RTLD_NOW | os.RTLD_GLOBAL)\n"
                                    "import _json\n"
                                    "ctypes.CDLL('" +
                                        api +
                                        "', mode=os.RTLD_GLOBAL)\n"
                                        "ctypes.CDLL('libm.so.6')\n");
  ProcessResult r = run_traced({kPython, script}, dir + "/run.trace");
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  nlohmann::json doc = export_json(dir + "/run.trace");
  auto json_mod = first_dlopen(doc, "_json");
  REQUIRE(json_mod.is_object());
  CHECK(json_mod["flags"] == (RTLD_NOW | RTLD_GLOBAL));
  auto api_load = first_dlopen(doc, "libapi.so");
  REQUIRE(api_load.is_object());
  CHECK((api_load["flags"].get<int>() & RTLD_GLOBAL) != 0);
  auto libm = first_dlopen(doc, "libm.so.6");
  REQUIRE(libm.is_object());
  CHECK((libm["flags"].get<int>() & RTLD_GLOBAL) == 0);  // ctypes' default mode is RTLD_LOCAL
  CHECK(libm["python_stack"][0]["file"].get<std::string>().find("ctypes") != std::string::npos);
}

TEST_CASE("explain: a Python host loading a library RTLD_LOCAL gets the Python fix",
          "[explain][python]") {
  if (access(kPython, X_OK) != 0) {
    WARN("no " << kPython << "; skipped");
    return;
  }
  settle_fixtures();
  std::string dir = temp_dir("pylocal");
  std::string ov = fixtures_dir() + "/overrides/";
  auto script_with = [&](const std::string& mode) {
    return write_script(dir,
                        "import ctypes\n"
                        "ctypes.CDLL('" +
                            ov + "libembed.so'" + mode +
                            ")\n"
                            "try:\n"
                            "    ctypes.CDLL('" +
                            ov +
                            "libplugin.so')\n"
                            "    print('plugin loaded')\n"
                            "except OSError as e:\n"
                            "    print('failed:', e)\n");
  };
  std::string script = script_with("");
  ProcessResult r = run_traced({kPython, script}, dir + "/run.trace");
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("failed:") != std::string::npos);
  ProcessResult j = run({viewer_path(), "explain", "--json", dir + "/run.trace"});
  INFO(j.out << j.err);
  CHECK(j.exit_code == 1);
  nlohmann::json doc = nlohmann::json::parse(j.out);
  nlohmann::json finding;
  for (const auto& f : doc["findings"])
    if (f["kind"] == "undefined-symbol-local-scope") finding = f;
  REQUIRE(finding.is_object());
  CHECK(finding["symbol"] == "api_value");
  const std::string text = finding.dump();
  CHECK(text.find("that dlopen was made by Python at " + script + ":2") != std::string::npos);
  CHECK(text.find("mode=ctypes.RTLD_GLOBAL) at " + script + ":2") != std::string::npos);

  // The suggested Python change makes the plugin load.
  std::string fixed = script_with(", mode=ctypes.RTLD_GLOBAL");
  ProcessResult after = run({kPython, fixed});
  INFO(describe(after));
  CHECK(after.out.find("plugin loaded") != std::string::npos);
}

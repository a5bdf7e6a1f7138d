// The real embedded-Python failure and its one-rule fix. embedpy_host (which does not link
// libpython) dlopens libembedpy.so (which does) with RTLD_NOW|RTLD_LOCAL, so libpython's symbols
// sit in a local scope. CPython then dlopens extension modules that do not link libpython
// (lib-dynload's _json, _decimal, _ctypes; numpy's _multiarray_umath): they need the C API from
// the global scope and fail with "undefined symbol: Py...". One [[override]] adding RTLD_GLOBAL
// to libembedpy.so fixes it; without a config the preload must change nothing.
#include <dlfcn.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

namespace {

const char* const kPython = "/usr/bin/python3";
const char* const kConfig = "[[override]]\nmatch = \"libembedpy.so\"\nadd = [\"RTLD_GLOBAL\"]\n";
const char* const kNumpyCode = "import numpy; print(numpy.arange(3).sum())";
// Extension modules in lib-dynload (not built into Debian's libpython) that import nothing else.
const std::vector<std::string> kModules = {"_json", "_decimal", "_ctypes"};

std::string host() {
  return fixture("embedded_python/embedpy_host");
}

// False (with a WARN) when the fixture group was not built: no Python embedding files.
bool have_fixture() {
  if (access(host().c_str(), X_OK) == 0 && access(kPython, X_OK) == 0) return true;
  WARN("no " << host() << " or " << kPython << " (Python3 Development.Embed missing?); skipped");
  return false;
}

bool python_can(const std::string& code) {
  return run({kPython, "-c", code}).exit_code == 0;
}

std::string write_config(const std::string& dir) {
  std::string path = dir + "/dltrace.toml";
  std::ofstream(path) << kConfig;
  return path;
}

// The untraced failure of `code`: exit 1, "failed", and the loader's undefined C-API symbol
// reported for `module_file` (a path fragment of the extension module that could not load).
void check_real_failure(const ProcessResult& r, const std::string& module_file) {
  INFO("stdout:\n" << r.out << "stderr:\n" << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.signal == 0);
  const std::string tail = "\nfailed\n";
  CHECK((r.out.size() >= tail.size() &&
         r.out.compare(r.out.size() - tail.size(), tail.size(), tail) == 0));
  CHECK(r.out.rfind("ImportError: ", 0) == 0);
  // numpy wraps the loader's message in its own ImportError ("Original error was: ...").
  std::string escaped = std::regex_replace(module_file, std::regex(R"([.])"), R"(\.)");
  std::regex pattern(escaped + R"([^\n/]*\.so: undefined symbol: _?Py[A-Za-z0-9_]+)");
  CHECK(std::regex_search(r.out, pattern));
}

struct Traced {
  ProcessResult r;
  std::string trace;
  std::string config;
};

Traced run_with_config(const std::string& code) {
  std::string dir = temp_dir("embedded-python");
  Traced t;
  t.trace = dir + "/run.trace";
  t.config = write_config(dir);
  RunOptions opts;
  opts.env["DLTRACE_CONFIG"] = t.config;
  t.r = run_traced({host(), code}, t.trace, opts);
  return t;
}

// The trace's dlopen events whose file contains `fragment`.
std::vector<nlohmann::json> dlopens(const nlohmann::json& doc, const std::string& fragment) {
  std::vector<nlohmann::json> out;
  for (const auto& e : doc.at("events")) {
    if (e.at("call") != "dlopen" || !e.at("file").is_string()) continue;
    if (e.at("file").get<std::string>().find(fragment) != std::string::npos) out.push_back(e);
  }
  return out;
}

const nlohmann::json* object_by_id(const nlohmann::json& doc, const nlohmann::json& id) {
  for (const auto& o : doc.at("objects"))
    if (o.at("id") == id) return &o;
  return nullptr;
}

}  // namespace

TEST_CASE(
    "embedded Python: lib-dynload modules fail under RTLD_LOCAL; one RTLD_GLOBAL rule "
    "fixes them",
    "[overrides][python]") {
  if (!have_fixture()) return;
  settle_fixtures();
  for (const auto& mod : kModules) {
    DYNAMIC_SECTION("import " << mod) {
      const std::string code = "import " + mod;
      // The module itself is fine: the stock interpreter imports it.
      REQUIRE(python_can(code));

      // (a) untraced: the real failure.
      ProcessResult plain = run({host(), code});
      check_real_failure(plain, "/lib-dynload/" + mod + ".");

      // (b) the one-rule config fixes it.
      Traced t = run_with_config(code);
      INFO("traced stdout:\n" << t.r.out << "traced stderr:\n" << t.r.err);
      CHECK(t.r.exit_code == 0);
      CHECK(t.r.out == "ok\n");
      CHECK(t.r.err.empty());

      // The module's own dlopen (made by CPython) now succeeds, and is not overridden.
      nlohmann::json doc = export_json(t.trace);
      auto mod_opens = dlopens(doc, "/" + mod + ".");
      REQUIRE(mod_opens.size() == 1);
      CHECK(mod_opens[0].at("ok") == true);
      CHECK((!mod_opens[0].contains("override") || mod_opens[0].at("override").is_null()));
    }
  }
}

TEST_CASE(
    "embedded Python: the trace records the override on libembedpy.so and libpython "
    "going global",
    "[overrides][python]") {
  if (!have_fixture()) return;
  settle_fixtures();
  Traced t = run_with_config("import _json, _decimal, _ctypes");
  INFO("traced stdout:\n" << t.r.out << "traced stderr:\n" << t.r.err);
  REQUIRE(t.r.exit_code == 0);
  nlohmann::json doc = export_json(t.trace);
  auto embed = dlopens(doc, "/libembedpy.so");
  REQUIRE(embed.size() == 1);
  const nlohmann::json& e = embed[0];
  INFO("event: " << e.dump());
  CHECK(e.at("ok") == true);
  CHECK(e.at("flags") == RTLD_NOW);
  CHECK(e.at("flags_text") == "RTLD_NOW|RTLD_LOCAL");
  CHECK(e.at("effective_flags") == (RTLD_NOW | RTLD_GLOBAL));
  CHECK(e.at("effective_flags_text") == "RTLD_NOW|RTLD_GLOBAL");
  REQUIRE(e.at("override").is_object());
  CHECK(e.at("override").at("line") == 1);
  const std::string config = e.at("override").at("config").get<std::string>();
  CHECK((config == t.config || config == "dltrace.toml"));

  // libpython came in with this dlopen and is global: that is what the extension modules need.
  REQUIRE(e.at("new_objects").is_array());
  static const std::regex libpython_soname(R"(libpython3\.[0-9]+\.so\.1\.0)");
  const nlohmann::json* libpython = nullptr;
  const nlohmann::json* embedpy = nullptr;
  for (const auto& id : e.at("new_objects")) {
    const nlohmann::json* o = object_by_id(doc, id);
    REQUIRE(o != nullptr);
    if (!(*o).at("soname").is_string()) continue;
    std::string soname = (*o).at("soname").get<std::string>();
    if (std::regex_match(soname, libpython_soname)) libpython = o;
    if (soname == "libembedpy.so") embedpy = o;
  }
  REQUIRE(libpython != nullptr);
  INFO("libpython: " << libpython->dump());
  CHECK(libpython->at("global") == true);
  CHECK(libpython->at("cause") == "needed");
  CHECK(libpython->at("opened_by") == e.at("seq"));
  REQUIRE(embedpy != nullptr);
  CHECK(embedpy->at("global") == true);
  CHECK(embedpy->at("id") == e.at("object"));
}

TEST_CASE("embedded Python: numpy fails under RTLD_LOCAL and works with the rule",
          "[overrides][python]") {
  if (!have_fixture()) return;
  if (!python_can("import numpy")) {
    WARN(kPython << " cannot import numpy; skipped");
    return;
  }
  settle_fixtures();
  ProcessResult plain = run({host(), kNumpyCode});
  check_real_failure(plain, "/_multiarray_umath.");

  Traced t = run_with_config(kNumpyCode);
  INFO("traced stdout:\n" << t.r.out << "traced stderr:\n" << t.r.err);
  CHECK(t.r.exit_code == 0);
  CHECK(t.r.out == "3\nok\n");
  CHECK(t.r.err.empty());
}

TEST_CASE("embedded Python: the silent fallback (json without _json) is fixed too",
          "[overrides][python]") {
  // json catches the ImportError and falls back to pure Python: no error, just the slow path.
  if (!have_fixture()) return;
  settle_fixtures();
  const std::string code = "import json.decoder; print(json.decoder.c_scanstring is not None)";
  ProcessResult plain = run({host(), code});
  INFO("plain stdout:\n" << plain.out << "plain stderr:\n" << plain.err);
  CHECK(plain.exit_code == 0);
  CHECK(plain.out == "False\nok\n");
  Traced t = run_with_config(code);
  INFO("traced stdout:\n" << t.r.out << "traced stderr:\n" << t.r.err);
  CHECK(t.r.exit_code == 0);
  CHECK(t.r.out == "True\nok\n");
}

TEST_CASE("embedded Python: the preload without a config fails exactly like the untraced run",
          "[overrides][python]") {
  if (!have_fixture()) return;
  std::vector<std::pair<std::string, std::string>> cases;  // code, module file fragment
  for (const auto& mod : kModules) cases.push_back({"import " + mod, "/lib-dynload/" + mod + "."});
  if (python_can("import numpy"))
    cases.push_back({kNumpyCode, "/_multiarray_umath."});
  else
    WARN(kPython << " cannot import numpy; the numpy case is skipped");
  for (const auto& [code, module_file] : cases) {
    DYNAMIC_SECTION(code) {
      DifferentialResult d = run_differential({host(), code});
      INFO("untraced:\n"
           << d.plain.out << d.plain.err << "traced:\n"
           << d.traced.out << d.traced.err);
      check_real_failure(d.plain, module_file);
      CHECK(d.same());
      // The trace saw the failing dlopen of the module, with the loader's error.
      nlohmann::json doc = export_json(d.trace_path);
      auto opens = dlopens(doc, module_file);
      REQUIRE(opens.size() == 1);
      CHECK(opens[0].at("ok") == false);
      REQUIRE(opens[0].at("error").is_string());
      CHECK(opens[0].at("error").get<std::string>().find("undefined symbol: ") !=
            std::string::npos);
      CHECK(d.plain.out.find(opens[0].at("error").get<std::string>()) != std::string::npos);
      auto embed = dlopens(doc, "/libembedpy.so");
      REQUIRE(embed.size() == 1);
      CHECK(embed[0].at("effective_flags") == embed[0].at("flags"));
    }
  }
}

// Probe or failure (issue 12): the same failed call is a probe when the program handled it and a
// failure when it mattered, decided from the evidence in the trace; failures keep their errors
// (also when the process made probes too), and an override is printed only where it works.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const char* const kPython = "/usr/bin/python3";

std::string ov_host() {
  return fixtures_dir() + "/overrides/ov_host";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct Explained {
  ProcessResult program;
  std::string trace;
  ProcessResult text;
  json doc;
};

Explained explain_run(const std::vector<std::string>& argv, RunOptions opts = {}) {
  settle_fixtures();
  Explained e;
  e.trace = temp_dir("probes") + "/run.trace";
  e.program = run_traced(argv, e.trace, opts);
  e.text = run({viewer_path(), "explain", "--color=never", e.trace});
  ProcessResult j = run({viewer_path(), "explain", "--json", e.trace});
  INFO("explain --json: " << describe(j));
  REQUIRE(j.exit_code == e.text.exit_code);
  e.doc = json::parse(j.out, nullptr, false);
  REQUIRE_FALSE(e.doc.is_discarded());
  return e;
}

// The failed calls of explain --json whose symbol or file is `name`.
std::vector<json> failed_calls(const Explained& e, const std::string& name) {
  std::vector<json> out;
  for (const auto& c : e.doc["failed_calls"])
    if (c.value("symbol", "") == name || c.value("file", "") == name) out.push_back(c);
  return out;
}

json finding_about(const Explained& e, const std::string& symbol) {
  for (const auto& f : e.doc["findings"])
    if (f.value("symbol", "") == symbol) return f;
  return nullptr;
}

std::string fix_config(const json& f) {
  for (const auto& fix : f["fixes"])
    if (fix["config"].is_string()) return fix["config"];
  return {};
}

}  // namespace

TEST_CASE("probes: NOLOAD, a name defined nowhere, and a symbol found right after by handle",
          "[explain][probes]") {
  // global:api_value misses (libapi.so is in libembed.so's RTLD_LOCAL group), then the same
  // caller finds it through libembed.so's handle: the JNI pattern.
  Explained e = explain_run(
      {ov_host(), "global:dltrace_no_such_function", "open:libdltrace_not_installed.so:NOW|NOLOAD",
       "open:libembed.so:NOW|LOCAL", "global:api_value", "int:libembed.so:api_value"});
  INFO(e.program.out << e.text.out);
  REQUIRE(e.program.exit_code == 0);
  CHECK(contains(e.program.out, "global api_value: not found"));
  CHECK(contains(e.program.out, "int api_value = 42"));
  CHECK(e.text.exit_code == 0);
  CHECK(e.doc["problems"] == 0);
  CHECK(e.doc["probe_calls"] == 3);
  CHECK(e.doc["failure_calls"] == 0);
  auto absent = failed_calls(e, "dltrace_no_such_function");
  REQUIRE(absent.size() == 1);
  CHECK(absent[0]["kind"] == "probe");
  CHECK(absent[0]["rule"] == "defined-nowhere");
  auto noload = failed_calls(e, "libdltrace_not_installed.so");
  REQUIRE(noload.size() == 1);
  CHECK(noload[0]["kind"] == "probe");
  CHECK(noload[0]["rule"] == "noload");
  auto later = failed_calls(e, "api_value");
  REQUIRE(later.size() == 1);
  CHECK(later[0]["kind"] == "probe");
  CHECK(later[0]["rule"] == "obtained-later");
  // No finding, no fix, no override for any of them; one summary line names them.
  CHECK(!contains(e.text.out, "\n  fix"));
  CHECK(!contains(e.text.out, "RTLD_GLOBAL"));
  CHECK(contains(e.text.out, "3 optional lookups missed as their callers expected: "));
  CHECK(contains(e.text.out, "api_value \u00d71 (found later)"));
  CHECK(contains(e.text.out, "libdltrace_not_installed.so \u00d71 (RTLD_NOLOAD)"));
  CHECK(contains(e.text.out, "dltrace_no_such_function \u00d71 (defined nowhere)"));

  // The export and stats classify the same way.
  json t = export_json(e.trace);
  int probes = 0;
  for (const auto& ev : t["events"]) {
    if (ev["ok"] == true) {
      CHECK(!ev.contains("kind"));
      continue;
    }
    CHECK(ev["kind"] == "probe");
    ++probes;
  }
  CHECK(probes == 3);
  ProcessResult stats = run({viewer_path(), "stats", "--json", e.trace});
  json s = json::parse(stats.out, nullptr, false);
  REQUIRE_FALSE(s.is_discarded());
  CHECK(s["failed_calls"] == 3);
  CHECK(s["probe_calls"] == 3);
  CHECK(s["failure_calls"] == 0);
  // The HTML report folds them apart from the findings.
  std::string html = temp_dir("probes-html") + "/report.html";
  ProcessResult report = run({viewer_path(), "html", e.trace, "-o", html});
  REQUIRE(report.exit_code == 0);
  std::ifstream in(html);
  const std::string page((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(contains(page, "<b>0 problems</b>, "));
  CHECK(contains(page, ", 3 probes (expected misses, below)."));
  CHECK(contains(page,
                 "<details class=\"probes\"><summary class=\"probe-summary\">3 optional "
                 "lookups missed as their callers expected: "));
  CHECK(contains(page, "class=\"finding probe\""));
  CHECK(!contains(page, "class=\"finding error\""));
  ProcessResult stats_text = run({viewer_path(), "stats", e.trace});
  CHECK(contains(stats_text.out, "failed:    3 call(s)\n  outcome:   0 failure(s), 3 probe(s)"));
}

TEST_CASE("probes: the same miss is an error when the process then fails", "[explain][probes]") {
  // ov_host exits 2 on an unknown step, right after the miss: nothing found it, nothing went on.
  Explained e = explain_run({ov_host(), "global:dltrace_no_such_function", "no-such-step"});
  INFO(e.program.out << e.program.err << e.text.out);
  REQUIRE(e.program.exit_code == 2);
  CHECK(e.text.exit_code == 1);
  auto calls = failed_calls(e, "dltrace_no_such_function");
  REQUIRE(calls.size() == 1);
  CHECK(calls[0]["kind"] == "failure");
  CHECK(calls[0]["rule"] == "needed");
  json f = finding_about(e, "dltrace_no_such_function");
  REQUIRE(f.is_object());
  CHECK(f["severity"] == "error");
  CHECK(f["outcome"] == "failure");
  CHECK(contains(f.dump(),
                 "the process exited with status 2 with no further successful load or lookup"));
}

TEST_CASE(
    "probes: dlsym(RTLD_DEFAULT) of a symbol in an RTLD_LOCAL group that nothing found "
    "later is an error, and its override rule works",
    "[explain][probes]") {
  Explained e = explain_run({ov_host(), "open:libembed.so:NOW|LOCAL", "global:api_value"});
  INFO(e.program.out << e.text.out);
  CHECK(contains(e.program.out, "global api_value: not found"));
  CHECK(e.text.exit_code == 1);
  json f = finding_about(e, "api_value");
  REQUIRE(f.is_object());
  CHECK(f["kind"] == "undefined-symbol-local-scope");
  CHECK(f["severity"] == "error");
  CHECK(f["outcome_rule"] == "near-miss");
  std::string config = fix_config(f);
  REQUIRE(contains(config, "match = \"libembed.so\""));
  std::string dir = temp_dir("probes-fix");
  std::ofstream(dir + "/dltrace.toml") << config;
  RunOptions opts;
  opts.env["DLTRACE_CONFIG"] = dir + "/dltrace.toml";
  ProcessResult fixed = run_traced({ov_host(), "open:libembed.so:NOW|LOCAL", "global:api_value"},
                                   dir + "/fixed.trace", opts);
  INFO(describe(fixed));
  CHECK(contains(fixed.out, "global api_value: found"));
}

TEST_CASE("probes: a failed import in a Python program that exits 1 is an error, next to probes",
          "[explain][probes][python]") {
  if (access(kPython, X_OK) != 0) {
    WARN("no " << kPython << "; skipped");
    return;
  }
  // badmod.so is a real shared object without PyInit_badmod: the import loads it, misses the
  // init function and raises ImportError. Before it, two probes the script handles itself.
  std::string dir = temp_dir("probes-py");
  fs::copy_file(fixtures_dir() + "/overrides/libapi.so", dir + "/badmod.so");
  auto script = [&](bool catch_it) {
    std::string path = dir + (catch_it ? "/caught.py" : "/fails.py");
    std::ofstream(path)
        << "import ctypes, os, sys\n"
           "sys.path.insert(0, '" +
               dir +
               "')\n"
               "print(hasattr(ctypes.CDLL(None), 'dltrace_no_such_function'))\n"
               "try:\n"
               "    ctypes.CDLL('libdltrace_not_installed.so', mode=os.RTLD_NOLOAD)\n"
               "except OSError:\n"
               "    print('not loaded')\n" +
               (catch_it ? "try:\n    import badmod\nexcept ImportError as e:\n"
                           "    print('no badmod')\n"
                         : "import badmod\n");
    return path;
  };
  Explained e = explain_run({kPython, script(false)});
  INFO(e.program.out << e.program.err << e.text.out);
  REQUIRE(e.program.exit_code == 1);
  CHECK(contains(e.program.err, "ImportError"));
  CHECK(e.text.exit_code == 1);
  json f = finding_about(e, "PyInit_badmod");
  REQUIRE(f.is_object());
  CHECK(f["severity"] == "error");
  CHECK(f["outcome"] == "failure");
  CHECK(f["outcome_rule"] == "python-import");
  CHECK(contains(f.dump(), "raised ImportError; the process exited with status 1 after it"));
  CHECK(contains(f.dump(), "Python line: " + dir + "/fails.py:8"));
  CHECK(e.doc["probe_calls"].get<int>() >= 2);
  auto absent = failed_calls(e, "dltrace_no_such_function");
  REQUIRE(absent.size() == 1);
  CHECK(absent[0]["kind"] == "probe");
  auto noload = failed_calls(e, "libdltrace_not_installed.so");
  REQUIRE(noload.size() == 1);
  CHECK(noload[0]["kind"] == "probe");
  for (const auto& other : e.doc["findings"])
    if (other["severity"] == "error") CHECK(other["symbol"] == "PyInit_badmod");

  // Caught, with the program exiting 0: still reported (a warning), never hidden.
  Explained caught = explain_run({kPython, script(true)});
  INFO(caught.program.out << caught.text.out);
  REQUIRE(caught.program.exit_code == 0);
  CHECK(contains(caught.program.out, "no badmod"));
  CHECK(caught.text.exit_code == 1);
  json w = finding_about(caught, "PyInit_badmod");
  REQUIRE(w.is_object());
  CHECK(w["severity"] == "warning");
  CHECK(contains(w.dump(), "the program caught it"));
}

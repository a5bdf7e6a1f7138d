// Flag overrides (DLTRACE_CONFIG): each flag, add/remove/set, caller filters, matching through
// paths, RUNPATH, ld.so.cache and sonames, RTLD_NOLOAD|RTLD_GLOBAL promotion, config errors, and
// what the trace records. The fixture program ov_host prints what each dl* step observed, so a
// run without the preload shows the "before" and a traced run with a config the "after".
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/dlopen_flags.h"
#include "dltrace/reader.h"
#include "harness.h"

using namespace dltrace;
using namespace dltrace::test;

namespace {

std::string ov_dir() {
  return fixtures_dir() + "/overrides";
}
std::string host() {
  return ov_dir() + "/ov_host";
}

std::string write_config(const std::string& dir, const std::string& text,
                         const std::string& name = "dltrace.toml") {
  std::string path = dir + "/" + name;
  std::ofstream(path) << text;
  return path;
}

std::vector<std::string> host_args(std::vector<std::string> steps) {
  steps.insert(steps.begin(), host());
  return steps;
}

struct Outcome {
  ProcessResult plain;
  ProcessResult traced;
  std::string trace;
};

// Runs the host without the preload, then traced with `config` as DLTRACE_CONFIG.
Outcome run_with_config(const std::string& config, const std::vector<std::string>& steps,
                        RunOptions opts = {}) {
  settle_fixtures();
  std::string dir = temp_dir("overrides");
  Outcome o;
  o.trace = dir + "/run.trace";
  o.plain = run(host_args(steps), opts);
  RunOptions t = opts;
  if (!config.empty()) t.env["DLTRACE_CONFIG"] = write_config(dir, config);
  o.traced = run_traced(host_args(steps), o.trace, t);
  INFO("plain stdout:\n" << o.plain.out << "plain stderr:\n" << o.plain.err);
  INFO("traced stdout:\n" << o.traced.out << "traced stderr:\n" << o.traced.err);
  CHECK(o.plain.exit_code == 0);
  CHECK(o.traced.exit_code == 0);
  return o;
}

bool has_line(const std::string& out, const std::string& line) {
  return ("\n" + out).find("\n" + line + "\n") != std::string::npos;
}

// The dlopen/dlmopen events of a trace whose requested name ends with `name`, in order.
struct OpenEvent {
  format::EventSlot slot;
  std::vector<OverrideRecord> applied;
};
std::vector<OpenEvent> opens_of(const std::string& trace, const std::string& name) {
  std::string why;
  auto reader = TraceReader::open(trace, &why);
  INFO("trace: " << trace << ": " << why);
  REQUIRE(reader != nullptr);
  std::vector<OpenEvent> out;
  reader->for_each_event([&](const format::EventSlot& e) {
    if (e.call != static_cast<uint16_t>(format::CallKind::kDlopen)) return true;
    std::string_view n = reader->string(e.name);
    if (n.size() >= name.size() && n.substr(n.size() - name.size()) == name)
      out.push_back({e, reader->overrides_for(e.seq)});
    return true;
  });
  return out;
}

const char* kGlobalEmbed = R"(# models the embedded-Python failure
[[override]]
match = "libembed.so"
add = ["RTLD_GLOBAL"]
)";

const std::vector<std::string> kEmbedSteps = {"open:libembed.so:NOW|LOCAL", "open:libplugin.so:NOW",
                                              "int:libplugin.so:plugin_value"};

}  // namespace

TEST_CASE("overrides: RTLD_GLOBAL on libembed.so fixes the plugin's undefined symbol",
          "[overrides]") {
  Outcome o = run_with_config(kGlobalEmbed, kEmbedSteps);
  CHECK(o.plain.out.find("undefined symbol: api_value") != std::string::npos);
  CHECK(has_line(o.plain.out, "int plugin_value: not found"));
  CHECK(has_line(o.traced.out, "open libplugin.so: ok"));
  CHECK(has_line(o.traced.out, "int plugin_value = 43"));
  CHECK(o.traced.err.empty());

  // The event records requested flags, effective flags and the rule's line.
  auto embed = opens_of(o.trace, "libembed.so");
  REQUIRE(embed.size() == 1);
  CHECK(embed[0].slot.flags == RTLD_NOW);
  CHECK(embed[0].slot.effective_flags == (RTLD_NOW | RTLD_GLOBAL));
  CHECK(embed[0].slot.override_line == 2);
  CHECK((embed[0].slot.bits & format::kEventOverridden) != 0);
  REQUIRE(embed[0].applied.size() == 1);
  CHECK(embed[0].applied[0].line == 2);
  CHECK(embed[0].applied[0].flags_before == RTLD_NOW);
  CHECK(embed[0].applied[0].flags_after == (RTLD_NOW | RTLD_GLOBAL));
  auto plugin = opens_of(o.trace, "libplugin.so");
  REQUIRE(plugin.size() == 1);
  CHECK(plugin[0].slot.override_line == 0);
  CHECK(plugin[0].slot.effective_flags == plugin[0].slot.flags);
  CHECK(plugin[0].applied.empty());
}

TEST_CASE(
    "overrides: the rule matches bare names, relative and absolute paths, RUNPATH and "
    "soname resolution",
    "[overrides]") {
  const std::string abs = ov_dir() + "/libembed.so";
  SECTION("relative path") {
    RunOptions opts;
    opts.cwd = ov_dir();
    Outcome o = run_with_config(
        kGlobalEmbed,
        {"open:./libembed.so:NOW", "open:libplugin.so:NOW", "int:libplugin.so:plugin_value"}, opts);
    CHECK(has_line(o.plain.out, "int plugin_value: not found"));
    CHECK(has_line(o.traced.out, "int plugin_value = 43"));
  }
  SECTION("absolute path") {
    Outcome o = run_with_config(kGlobalEmbed, {"open:" + abs + ":NOW", "open:libplugin.so:NOW",
                                               "int:libplugin.so:plugin_value"});
    CHECK(has_line(o.plain.out, "int plugin_value: not found"));
    CHECK(has_line(o.traced.out, "int plugin_value = 43"));
  }
  SECTION("full-path pattern against a bare name found through the caller's RUNPATH") {
    Outcome o = run_with_config(
        "[[override]]\nmatch = \"*/overrides/libembed.so\"\nadd = [\"RTLD_GLOBAL\"]\n",
        kEmbedSteps);
    CHECK(has_line(o.plain.out, "int plugin_value: not found"));
    CHECK(has_line(o.traced.out, "int plugin_value = 43"));
  }
  SECTION("a symlink's target soname") {
    // libalias.so -> libembed.so: the rule names the soname of the file it resolves to.
    Outcome o = run_with_config(kGlobalEmbed, {"open:libalias.so:NOW", "open:libplugin.so:NOW",
                                               "int:libplugin.so:plugin_value"});
    CHECK(has_line(o.plain.out, "int plugin_value: not found"));
    CHECK(has_line(o.traced.out, "int plugin_value = 43"));
  }
  SECTION("a bare name resolved through /etc/ld.so.cache") {
    // libz.so.1 is in the cache and not loaded: adding RTLD_NOLOAD makes dlopen return NULL.
    Outcome o = run_with_config(
        "[[override]]\nmatch = \"*/x86_64-linux-gnu/libz.so.1*\"\nadd = [\"RTLD_NOLOAD\"]\n",
        {"open:libz.so.1:NOW"});
    CHECK(has_line(o.plain.out, "open libz.so.1: ok"));
    CHECK(has_line(o.traced.out, "open libz.so.1: null: (no error)"));
  }
  SECTION("a bare name resolved through LD_LIBRARY_PATH") {
    std::string dir = temp_dir("overrides-ldlp");
    std::filesystem::create_directories(dir + "/ldlp");
    std::filesystem::copy_file(ov_dir() + "/libapi.so", dir + "/ldlp/libldlp.so");
    RunOptions opts;
    opts.env["LD_LIBRARY_PATH"] = dir + "/ldlp";
    Outcome o =
        run_with_config("[[override]]\nmatch = \"*/ldlp/libldlp.so\"\nadd = [\"RTLD_NOLOAD\"]\n",
                        {"open:libldlp.so:NOW"}, opts);
    CHECK(has_line(o.plain.out, "open libldlp.so: ok"));
    CHECK(has_line(o.traced.out, "open libldlp.so: null: (no error)"));
  }
  SECTION("a rule that matches nothing changes nothing") {
    Outcome o = run_with_config(
        "[[override]]\nmatch = \"libnothing*.so\"\nadd = [\"RTLD_GLOBAL\"]\n", kEmbedSteps);
    CHECK(o.traced.out == o.plain.out);
    auto embed = opens_of(o.trace, "libembed.so");
    REQUIRE(embed.size() == 1);
    CHECK(embed[0].slot.effective_flags == embed[0].slot.flags);
    CHECK(embed[0].slot.override_line == 0);
  }
}

TEST_CASE("overrides: each flag can be added", "[overrides]") {
  SECTION("RTLD_NOW") {
    Outcome o = run_with_config("[[override]]\nmatch = \"liblazy.so\"\nadd = [\"RTLD_NOW\"]\n",
                                {"open:liblazy.so:LAZY"});
    CHECK(has_line(o.plain.out, "open liblazy.so: ok"));
    CHECK(o.traced.out.find("undefined symbol: missing_function") != std::string::npos);
  }
  SECTION("RTLD_LAZY") {
    Outcome o = run_with_config("[[override]]\nmatch = \"liblazy.so\"\nadd = [\"RTLD_LAZY\"]\n",
                                {"open:liblazy.so:NOW", "int:liblazy.so:lazy_value"});
    CHECK(o.plain.out.find("undefined symbol: missing_function") != std::string::npos);
    CHECK(has_line(o.traced.out, "int lazy_value = 7"));
  }
  SECTION("RTLD_LOCAL") {
    Outcome o = run_with_config("[[override]]\nmatch = \"libapi.so\"\nadd = [\"RTLD_LOCAL\"]\n",
                                {"open:libapi.so:NOW|GLOBAL", "global:api_value"});
    CHECK(has_line(o.plain.out, "global api_value: found"));
    CHECK(has_line(o.traced.out, "global api_value: not found"));
  }
  SECTION("RTLD_NODELETE") {
    Outcome o =
        run_with_config("[[override]]\nmatch = \"libapi.so\"\nadd = [\"RTLD_NODELETE\"]\n",
                        {"open:libapi.so:NOW", "close:libapi.so", "open:libapi.so:NOW|NOLOAD"});
    CHECK(has_line(o.plain.out, "open libapi.so: null: (no error)"));
    CHECK_FALSE(has_line(o.traced.out, "open libapi.so: null: (no error)"));
  }
  SECTION("RTLD_NOLOAD") {
    Outcome o = run_with_config("[[override]]\nmatch = \"libapi.so\"\nadd = [\"RTLD_NOLOAD\"]\n",
                                {"open:libapi.so:NOW"});
    CHECK(has_line(o.plain.out, "open libapi.so: ok"));
    CHECK(has_line(o.traced.out, "open libapi.so: null: (no error)"));
  }
  SECTION("RTLD_DEEPBIND") {
    Outcome o = run_with_config("[[override]]\nmatch = \"libdeep.so\"\nadd = [\"RTLD_DEEPBIND\"]\n",
                                {"open:libdeep.so:NOW", "str:libdeep.so:deep_which"});
    CHECK(has_line(o.plain.out, "str deep_which = host"));
    CHECK(has_line(o.traced.out, "str deep_which = deep"));
  }
}

TEST_CASE("overrides: remove and set, all matching rules in file order", "[overrides]") {
  SECTION("remove RTLD_GLOBAL") {
    Outcome o = run_with_config("[[override]]\nmatch = \"libapi.so\"\nremove = [\"RTLD_GLOBAL\"]\n",
                                {"open:libapi.so:NOW|GLOBAL", "global:api_value"});
    CHECK(has_line(o.plain.out, "global api_value: found"));
    CHECK(has_line(o.traced.out, "global api_value: not found"));
  }
  SECTION("remove RTLD_LAZY, add RTLD_NOW") {
    Outcome o = run_with_config(
        "[[override]]\nmatch = \"lib*.so\"\nremove = [\"RTLD_LAZY\"]\nadd = [\"RTLD_NOW\"]\n",
        {"open:liblazy.so:LAZY"});
    CHECK(has_line(o.plain.out, "open liblazy.so: ok"));
    CHECK(o.traced.out.find("undefined symbol: missing_function") != std::string::npos);
  }
  SECTION("set replaces all flags") {
    Outcome o = run_with_config(
        "[[override]]\nmatch = \"libembed.so\"\nset = [\"RTLD_LAZY\", \"RTLD_GLOBAL\"]\n",
        {"open:libembed.so:NOW|NODELETE", "open:libplugin.so:NOW",
         "int:libplugin.so:plugin_value"});
    CHECK(has_line(o.traced.out, "int plugin_value = 43"));
    auto embed = opens_of(o.trace, "libembed.so");
    REQUIRE(embed.size() == 1);
    CHECK(embed[0].slot.flags == (RTLD_NOW | RTLD_NODELETE));
    CHECK(embed[0].slot.effective_flags == (RTLD_LAZY | RTLD_GLOBAL));
  }
  SECTION("two rules apply in order; the event keeps both") {
    Outcome o = run_with_config(R"([[override]]
match = "libembed.so"
add = ["RTLD_GLOBAL"]

[[override]]
match = "libemb*"
remove = ["RTLD_GLOBAL"]
add = ["RTLD_NODELETE"]
)",
                                kEmbedSteps);
    CHECK(has_line(o.traced.out, "int plugin_value: not found"));  // the second rule undid it
    auto embed = opens_of(o.trace, "libembed.so");
    REQUIRE(embed.size() == 1);
    CHECK(embed[0].slot.effective_flags == (RTLD_NOW | RTLD_NODELETE));
    CHECK(embed[0].slot.override_line == 5);
    REQUIRE(embed[0].applied.size() == 2);
    CHECK(embed[0].applied[0].line == 1);
    CHECK(embed[0].applied[1].line == 5);
    CHECK(embed[0].applied[1].flags_before == (RTLD_NOW | RTLD_GLOBAL));
  }
}

TEST_CASE("overrides: caller filter", "[overrides]") {
  const char* config =
      "[[override]]\nmatch = \"libembed.so\"\ncaller = \"libopener.so\"\nadd = [\"RTLD_GLOBAL\"]\n";
  SECTION("dlopen from the named object: applies") {
    Outcome o = run_with_config(config, {"opener:libembed.so:NOW", "open:libplugin.so:NOW",
                                         "int:libplugin.so:plugin_value"});
    CHECK(has_line(o.plain.out, "int plugin_value: not found"));
    CHECK(has_line(o.traced.out, "int plugin_value = 43"));
  }
  SECTION("dlopen from another object: does not apply") {
    Outcome o = run_with_config(config, kEmbedSteps);
    CHECK(o.traced.out == o.plain.out);
    CHECK(has_line(o.traced.out, "int plugin_value: not found"));
  }
}

TEST_CASE("overrides: RTLD_NOLOAD|RTLD_GLOBAL promotes an already-loaded library", "[overrides]") {
  // libopener.so loads libembed.so RTLD_LOCAL (the rule does not apply to it: wrong caller);
  // the executable's later RTLD_NOLOAD dlopen gets RTLD_GLOBAL and promotes it.
  Outcome o = run_with_config(
      "[[override]]\nmatch = \"libembed.so\"\ncaller = \"ov_host\"\nadd = [\"RTLD_GLOBAL\"]\n",
      {"opener:libembed.so:NOW", "open:libembed.so:NOW|NOLOAD", "open:libplugin.so:NOW",
       "int:libplugin.so:plugin_value"});
  CHECK(has_line(o.plain.out, "open libembed.so: ok"));
  CHECK(has_line(o.plain.out, "int plugin_value: not found"));
  CHECK(has_line(o.traced.out, "int plugin_value = 43"));
  auto embed = opens_of(o.trace, "libembed.so");
  REQUIRE(embed.size() == 2);
  CHECK(embed[0].slot.effective_flags == RTLD_NOW);
  CHECK(embed[1].slot.effective_flags == (RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL));
}

TEST_CASE("overrides: a bad config leaves the program untouched plus one dltrace: line",
          "[overrides]") {
  settle_fixtures();
  std::string dir = temp_dir("overrides-bad");
  struct Case {
    std::string name;
    std::string config_path;
    std::string expected;  // the one stderr line, "" = none
  };
  std::vector<Case> cases;
  std::string bad = write_config(
      dir, "[[override]]\nmatch = \"libembed.so\nadd = [\"RTLD_GLOBAL\"]\n", "bad.toml");
  cases.push_back({"bad TOML", bad, "dltrace: " + bad + ":2:"});
  std::string flag = write_config(
      dir, "[[override]]\nmatch = \"libembed.so\"\nadd = [\"RTLD_GLOBL\"]\n", "flag.toml");
  cases.push_back(
      {"unknown flag", flag,
       "dltrace: " + flag + ":3:8: unknown flag 'RTLD_GLOBL'; did you mean 'RTLD_GLOBAL'?\n"});
  std::string key = write_config(
      dir, "[[override]]\nmatch = \"libembed.so\"\nadd = [\"RTLD_GLOBAL\"]\ncaler = \"x\"\n",
      "key.toml");
  cases.push_back(
      {"unknown key", key,
       "dltrace: " + key + ":4:1: unknown key 'caler' in [[override]]; did you mean 'caller'?\n"});
  std::string missing = dir + "/missing.toml";
  cases.push_back({"missing file", missing,
                   "dltrace: " + missing + ": cannot open config: No such file or directory\n"});
  std::string unreadable;
  if (geteuid() == 0) {  // root reads any mode: a directory is what it cannot read
    unreadable = dir + "/dir.toml";
    mkdir(unreadable.c_str(), 0755);
    cases.push_back({"unreadable", unreadable,
                     "dltrace: " + unreadable + ": cannot read config: not a regular file\n"});
  } else {
    unreadable = write_config(dir, kGlobalEmbed, "noperm.toml");
    chmod(unreadable.c_str(), 0);
    cases.push_back({"unreadable", unreadable,
                     "dltrace: " + unreadable + ": cannot open config: Permission denied\n"});
  }
  // A good rule before the bad one must not apply either: never half a config.
  std::string half = write_config(
      dir, std::string(kGlobalEmbed) + "[[override]]\nmatch = \"x\"\nset = [\"NOPE\"]\n",
      "half.toml");
  cases.push_back(
      {"good rule then a bad one", half, "dltrace: " + half + ":7:8: unknown flag 'NOPE'\n"});
  cases.push_back({"empty file", write_config(dir, "", "empty.toml"), ""});

  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.name) {
      RunOptions opts;
      opts.env["DLTRACE_CONFIG"] = c.config_path;
      ProcessResult plain = run(host_args(kEmbedSteps));
      ProcessResult traced =
          run_traced(host_args(kEmbedSteps), dir + "/" + c.name + ".trace", opts);
      INFO("traced stderr:\n" << traced.err);
      CHECK(traced.out == plain.out);
      CHECK(traced.exit_code == plain.exit_code);
      CHECK(traced.signal == plain.signal);
      CHECK(has_line(plain.out, "int plugin_value: not found"));
      if (c.expected.empty()) {
        CHECK(traced.err == plain.err);
      } else {
        // Exactly one extra line, starting as expected (bad TOML: the message is toml++'s).
        size_t at = traced.err.find("dltrace: ");
        REQUIRE(at != std::string::npos);
        size_t end = traced.err.find('\n', at);
        REQUIRE(end != std::string::npos);
        std::string line = traced.err.substr(at, end + 1 - at);
        CHECK(line.rfind(c.expected, 0) == 0);
        std::string rest = traced.err;
        rest.erase(at, end + 1 - at);
        CHECK(rest == plain.err);
        CHECK(rest.find("dltrace:") == std::string::npos);
      }
    }
  }
}

// The TOML parser and its C++ runtime live in libdltrace_config.so (issue 16: every process maps
// libdltrace.so, few set DLTRACE_CONFIG). The recorder loads it only to parse and unloads it: the
// program's objects after start-up are the ones it has without a config.
TEST_CASE("overrides: the config parser library is loaded only to parse, then unloaded, unseen",
          "[overrides][footprint]") {
  if (!test_target().emulator.empty()) {
    WARN("skipped: cat is a host program, the preload is built for " << test_target().cpu);
    return;
  }
  std::string dir = temp_dir("overrides-parser");
  RunOptions opts;
  opts.env["DLTRACE_CONFIG"] = write_config(dir, kGlobalEmbed);
  ProcessResult r = run_traced({"cat", "/proc/self/maps"}, dir + "/maps.trace", opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(r.out.find("libdltrace.so") != std::string::npos);  // the preload was there
  CHECK(r.out.find("libdltrace_config") == std::string::npos);
  std::string why;
  auto reader = TraceReader::open(dir + "/maps.trace", &why);
  REQUIRE(reader != nullptr);
  CHECK(reader->process().config == opts.env["DLTRACE_CONFIG"]);  // the config was in use
  for (const auto& o : reader->objects()) {
    INFO(o.path);
    CHECK(o.path.find("libdltrace_config") == std::string::npos);
  }
}

TEST_CASE("overrides: without its parser library the recorder says so and applies nothing",
          "[overrides]") {
  settle_fixtures();
  std::string dir = temp_dir("overrides-noparser");
  // A copy of the preload alone: no libdltrace_config.so beside it.
  std::string lonely = dir + "/libdltrace.so";
  std::filesystem::copy_file(preload_path(), lonely);
  std::string config = write_config(dir, kGlobalEmbed);
  ProcessResult plain = run(host_args(kEmbedSteps));
  const std::string trace = dir + "/lonely.trace";
  RunOptions opts;
  opts.env = {{"DLTRACE_CONFIG", config},
              {"LD_PRELOAD", lonely},
              {"DLTRACE_QUIET", "1"},
              {"DLTRACE_OUTPUT", trace}};
  ProcessResult r = run(host_args(kEmbedSteps), opts);
  INFO(describe(r));
  CHECK(r.out == plain.out);  // the rule is not applied: plugin_value stays unresolved
  CHECK(has_line(r.out, "int plugin_value: not found"));
  CHECK(r.exit_code == plain.exit_code);
  // One line, naming the library and what the loader said.
  const std::string expected = "dltrace: " + config +
                               ": cannot load the config parser (libdltrace_config.so, beside "
                               "libdltrace.so): ";
  REQUIRE(r.err.rfind(expected, 0) == 0);
  const size_t end = r.err.find('\n');
  REQUIRE(end != std::string::npos);
  CHECK(r.err.substr(expected.size(), end - expected.size()).find("cannot open shared object") !=
        std::string::npos);
  CHECK(r.err.substr(end + 1) == plain.err);
  // The process is traced all the same.
  std::string why;
  CHECK(TraceReader::open(trace, &why) != nullptr);
}

TEST_CASE("overrides: a preload given through a symlink finds the parser beside its real file",
          "[overrides]") {
  settle_fixtures();
  std::string dir = temp_dir("overrides-symlink");
  // $ORIGIN is the link's directory, where there is no libdltrace_config.so.
  std::string link = dir + "/libdltrace.so";
  std::filesystem::create_symlink(preload_path(), link);
  RunOptions opts;
  opts.env = {{"DLTRACE_CONFIG", write_config(dir, kGlobalEmbed)},
              {"LD_PRELOAD", link},
              {"DLTRACE_QUIET", "1"},
              {"DLTRACE_OUTPUT", dir + "/run.trace"}};
  ProcessResult r = run(host_args(kEmbedSteps), opts);
  INFO(describe(r));
  CHECK(r.err.find("dltrace:") == std::string::npos);
  CHECK(has_line(r.out, "int plugin_value = 43"));  // the rule applied
}

TEST_CASE("overrides: dltrace config check prints rules and the ones a trace never matched",
          "[overrides]") {
  std::string dir = temp_dir("overrides-check");
  std::string cfg = write_config(
      dir, std::string(kGlobalEmbed) +
               "\n[[override]]\nmatch = \"libnothing*.so\"\n"
               "caller = \"libhost*\"\nremove = [\"RTLD_LAZY\"]\nadd = [\"RTLD_NOW\"]\n");
  ProcessResult r = run({viewer_path(), "config", "check", cfg});
  CHECK(r.exit_code == 0);
  CHECK(has_line(r.out, "rule 1 (line 2): match basename 'libembed.so' \u2192 add RTLD_GLOBAL"));
  CHECK(has_line(r.out,
                 "rule 2 (line 6): match basename 'libnothing*.so', caller basename "
                 "'libhost*' \u2192 remove RTLD_LAZY, add RTLD_NOW"));

  Outcome o =
      run_with_config(std::string(kGlobalEmbed) +
                          "\n[[override]]\nmatch = \"libnothing*.so\"\n"
                          "caller = \"libhost*\"\nremove = [\"RTLD_LAZY\"]\nadd = [\"RTLD_NOW\"]\n",
                      kEmbedSteps);
  r = run({viewer_path(), "config", "check", cfg, "--trace", o.trace});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("rule 2 (line 6) never matched") != std::string::npos);
  CHECK(r.out.find("rule 1 (line 2) never matched") == std::string::npos);

  std::string bad =
      write_config(dir, "[[override]]\nmatch = \"a\"\nadd = [\"RTLD_GLOBL\"]\n", "bad.toml");
  r = run({viewer_path(), "config", "check", bad});
  CHECK(r.exit_code != 0);
  CHECK(r.err == bad + ":3:8: unknown flag 'RTLD_GLOBL'; did you mean 'RTLD_GLOBAL'?\n");
}

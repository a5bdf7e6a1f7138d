// What the recorder writes: traces of the differential fixtures, read back through
// `dltrace export --format json` (schema in the interface spec), checked field by field against
// what the program itself printed.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string line_after(const std::string& out, const std::string& prefix) {
  std::istringstream in(out);
  std::string l;
  while (std::getline(in, l))
    if (l.rfind(prefix, 0) == 0) return l.substr(prefix.size());
  return "<no line starting with '" + prefix + "'>";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string())
    return "<no string " + std::string(key) + ">";
  return j[key].get<std::string>();
}

int64_t num(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return -999999;
  return j[key].get<int64_t>();
}

bool is_null(const json& j, const char* key) {
  return !j.contains(key) || j[key].is_null();
}

// Runs argv under the preload (trace in a fresh directory) and returns the exported trace.
struct Traced {
  ProcessResult run;
  json trace;
};

Traced trace_of(const std::vector<std::string>& argv, RunOptions opts = {}) {
  settle_fixtures();
  std::string dir = temp_dir("rec");
  std::string path = dir + "/run.trace";
  Traced t;
  t.run = run_traced(argv, path, opts);
  INFO("stdout:\n" << t.run.out << "\nstderr:\n" << t.run.err);
  REQUIRE(t.run.exit_code == 0);
  std::vector<std::string> traces = traces_in(dir);
  REQUIRE(traces.size() == 1);
  t.trace = export_json(traces[0]);
  REQUIRE(t.trace.contains("events"));
  REQUIRE(t.trace.contains("objects"));
  REQUIRE(t.trace["events"].is_array());
  REQUIRE(t.trace["objects"].is_array());
  return t;
}

// The objects whose path ends with `suffix`.
std::vector<json> objects_ending(const json& trace, const std::string& suffix) {
  std::vector<json> out;
  for (const auto& o : trace["objects"])
    if (ends_with(str(o, "path"), suffix)) out.push_back(o);
  return out;
}

json the_object(const json& trace, const std::string& suffix) {
  std::vector<json> found = objects_ending(trace, suffix);
  INFO("objects ending with " << suffix << " (expected exactly one):\n"
                              << trace["objects"].dump(1));
  REQUIRE(found.size() == 1);
  return found[0];
}

std::vector<json> events_where(const json& trace, const std::function<bool(const json&)>& pred) {
  std::vector<json> out;
  for (const auto& e : trace["events"])
    if (pred(e)) out.push_back(e);
  return out;
}

int64_t caller_object(const json& e) {
  if (!e.contains("caller") || !e["caller"].is_object()) return -999999;
  return num(e["caller"], "object");
}

std::set<int64_t> id_set(const json& arr) {
  std::set<int64_t> s;
  if (arr.is_array())
    for (const auto& v : arr)
      if (v.is_number()) s.insert(v.get<int64_t>());
  return s;
}

uint64_t hex(const json& j, const char* key) {
  std::string s = str(j, key);
  return std::strtoull(s.c_str(), nullptr, 16);
}

// "libx.so+0x1100" as printed by the fixture -> 0x1100.
uint64_t printed_offset(const std::string& s) {
  size_t plus = s.find("+0x");
  return plus == std::string::npos ? ~0ull : std::strtoull(s.c_str() + plus + 1, nullptr, 16);
}

}  // namespace

TEST_CASE("recording of a known call sequence", "[recording]") {
  Traced t = trace_of({fixture("diff_record")});
  const json& j = t.trace;
  const std::string& out = t.run.out;
  INFO("program output:\n" << out);
  INFO("trace:\n" << j.dump(1));

  CHECK(str(j, "format") == "dltrace-json");
  CHECK(num(j, "version") == 1);
  CHECK(num(j, "dropped_events") == 0);
  CHECK(ends_with(str(j["process"], "exe"), "/diff_record"));
  CHECK(str(j["process"], "end") == "exit");
  CHECK(num(j["process"], "exit_status") == 0);
  REQUIRE(j["process"].contains("argv"));
  CHECK(j["process"]["argv"] == json::array({fixture("diff_record")}));

  // Start-up objects.
  json exe = the_object(j, "/diff_record");
  json libc = the_object(j, "/libc.so.6");
  json self = the_object(j, "/libdltrace.so");
  const int64_t exe_id = num(exe, "id");
  CHECK(str(exe, "cause") == "startup");
  CHECK(str(libc, "cause") == "needed");
  CHECK(str(self, "cause") == "preload");
  for (const json* o : {&exe, &libc, &self}) {
    INFO("object " << o->dump());
    CHECK((*o)["global"] == true);
    CHECK(num(*o, "namespace") == 0);
    CHECK(is_null(*o, "unload_seq"));
    CHECK(is_null(*o, "opened_by"));
  }
  CHECK(str(libc, "soname") == "libc.so.6");
  CHECK(num(libc, "parent") == exe_id);  // "needed": the object whose DT_NEEDED brought it in

  // The events, in order.
  const json& ev = j["events"];
  REQUIRE(ev.size() == 6);
  const std::vector<std::string> calls = {"dlopen", "dlsym", "dlsym", "dlsym", "dlopen", "dlclose"};
  for (size_t i = 0; i < ev.size(); ++i) {
    INFO("event " << i << ": " << ev[i].dump());
    CHECK(str(ev[i], "call") == calls[i]);
    CHECK(caller_object(ev[i]) == exe_id);
    CHECK(num(ev[i], "duration_ns") >= 0);
    if (i > 0) {
      CHECK(num(ev[i], "seq") > num(ev[i - 1], "seq"));
      CHECK(num(ev[i], "time_ns") >= num(ev[i - 1], "time_ns"));
    }
  }
  const json& open = ev[0];
  const json& sym_dep = ev[1];
  const json& sym_default = ev[2];
  const json& sym_next = ev[3];
  const json& open_fail = ev[4];
  const json& close = ev[5];

  // dlopen of the library with one DT_NEEDED dependency.
  json rec = the_object(j, "/libdiff_rec.so");
  json dep = the_object(j, "/libdiff_recdep.so");
  const int64_t open_seq = num(open, "seq");
  CHECK(str(open, "file") == fixture("libdiff_rec.so"));
  CHECK(num(open, "flags") == 2);
  CHECK(str(open, "flags_text") == "RTLD_NOW|RTLD_LOCAL");
  CHECK(open["ok"] == true);
  CHECK(is_null(open, "error"));
  CHECK(!is_null(open, "handle"));
  CHECK(num(open, "object") == num(rec, "id"));
  CHECK(num(open, "namespace") == 0);
  CHECK(id_set(open["new_objects"]) == std::set<int64_t>{num(rec, "id"), num(dep, "id")});

  CHECK(str(rec, "cause") == "dlopen");
  CHECK(num(rec, "parent") == exe_id);
  CHECK(num(rec, "opened_by") == open_seq);
  CHECK(num(rec, "load_seq") == open_seq);
  CHECK(rec["global"] == false);
  CHECK(str(rec, "soname") == "libdiff_rec.so");
  CHECK(str(dep, "cause") == "needed");
  CHECK(num(dep, "parent") == num(rec, "id"));
  CHECK(num(dep, "opened_by") == open_seq);
  CHECK(num(dep, "load_seq") == open_seq);
  CHECK(dep["global"] == false);

  // dlsym on the handle for a symbol defined in the dependency: `object` is the definer.
  CHECK(str(sym_dep, "symbol") == "diff_recdep_value");
  CHECK(sym_dep["handle"] == open["handle"]);
  CHECK(sym_dep["ok"] == true);
  CHECK(num(sym_dep, "object") == num(dep, "id"));
  CHECK(hex(sym_dep, "address") - hex(dep, "base") ==
        printed_offset(line_after(out, "dlsym handle diff_recdep_value: ")));

  CHECK(str(sym_default, "symbol") == "puts");
  CHECK(is_null(sym_default, "handle"));  // RTLD_DEFAULT is the NULL handle
  CHECK(sym_default["ok"] == true);
  CHECK(num(sym_default, "object") == num(libc, "id"));
  CHECK(hex(sym_default, "address") - hex(libc, "base") ==
        printed_offset(line_after(out, "dlsym RTLD_DEFAULT puts: ")));

  CHECK(str(sym_next, "symbol") == "puts");
  CHECK(!is_null(sym_next, "handle"));  // RTLD_NEXT, ((void*)-1)
  CHECK(sym_next["ok"] == true);
  CHECK(num(sym_next, "object") == num(libc, "id"));

  // The failing dlopen: the recorded error is exactly what dlerror() gave the program.
  CHECK(str(open_fail, "file") == "libdiff_record_missing.so");
  CHECK(num(open_fail, "flags") == 1);
  CHECK(str(open_fail, "flags_text") == "RTLD_LAZY|RTLD_LOCAL");
  CHECK(open_fail["ok"] == false);
  CHECK(is_null(open_fail, "handle"));
  CHECK(str(open_fail, "error") == line_after(out, "error: "));
  CHECK(line_after(out, "error: ") ==
        "libdiff_record_missing.so: cannot open shared object file: No such file or directory");
  CHECK(id_set(open_fail.value("new_objects", json::array())).empty());

  // dlclose unloads the library and its dependency.
  CHECK(close["handle"] == open["handle"]);
  CHECK(close["ok"] == true);
  CHECK(num(rec, "unload_seq") == num(close, "seq"));
  CHECK(num(dep, "unload_seq") == num(close, "seq"));
}

TEST_CASE("recording of a nested dlopen from a constructor", "[recording]") {
  Traced t = trace_of({fixture("diff_nested")});
  const json& j = t.trace;
  INFO("program output:\n" << t.run.out << "\ntrace:\n" << j.dump(1));
  json outer = the_object(j, "/libdiff_outer.so");
  json inner = the_object(j, "/diff_inner/libdiff_inner.so");
  json exe = the_object(j, "/diff_nested");

  auto outer_ev = events_where(j, [](const json& e) {
    return str(e, "call") == "dlopen" && ends_with(str(e, "file"), "/libdiff_outer.so");
  });
  auto inner_ev = events_where(j, [](const json& e) {
    return str(e, "call") == "dlopen" && str(e, "file") == "libdiff_inner.so";
  });
  REQUIRE(outer_ev.size() == 1);
  REQUIRE(inner_ev.size() == 1);
  const json& o = outer_ev[0];
  const json& i = inner_ev[0];
  CHECK(o["ok"] == true);
  CHECK(i["ok"] == true);
  CHECK(num(i, "seq") > num(o, "seq"));
  CHECK(num(i, "time_ns") >= num(o, "time_ns"));
  CHECK(caller_object(o) == num(exe, "id"));
  CHECK(caller_object(i) == num(outer, "id"));
  CHECK(id_set(o["new_objects"]) == std::set<int64_t>{num(outer, "id")});
  CHECK(id_set(i["new_objects"]) == std::set<int64_t>{num(inner, "id")});
  CHECK(num(outer, "opened_by") == num(o, "seq"));
  CHECK(num(inner, "opened_by") == num(i, "seq"));
  CHECK(num(inner, "parent") == num(outer, "id"));
  CHECK(str(inner, "cause") == "dlopen");
  if (i.contains("parent_seq")) CHECK(num(i, "parent_seq") == num(o, "seq"));
  // The inner constructor's dlsym calls happened inside both dlopen calls, from libdiff_inner.
  auto inner_syms = events_where(j, [&](const json& e) {
    return str(e, "call") == "dlsym" && caller_object(e) == num(inner, "id");
  });
  REQUIRE(inner_syms.size() == 3);
  for (const auto& s : inner_syms) {
    CHECK(num(s, "seq") > num(i, "seq"));
    if (s.contains("parent_seq")) CHECK(num(s, "parent_seq") == num(i, "seq"));
  }
  CHECK(str(inner_syms[0], "symbol") == "diff_outer_value");
  CHECK(inner_syms[0]["ok"] == false);
  CHECK(str(inner_syms[0], "error") == line_after(t.run.out, "inner ctor default: dlerror="));
}

TEST_CASE("calls made before the recorder's constructor are recorded", "[recording]") {
  Traced t = trace_of({fixture("diff_early")});
  const json& j = t.trace;
  INFO("program output:\n" << t.run.out << "\ntrace:\n" << j.dump(1));
  json early = the_object(j, "/libdiff_early.so");
  json plugin = the_object(j, "/libdiff_plugin.so");
  CHECK(str(early, "cause") == "needed");
  auto from_early =
      events_where(j, [&](const json& e) { return caller_object(e) == num(early, "id"); });
  REQUIRE(from_early.size() == 4);
  CHECK(str(from_early[0], "call") == "dlopen");
  CHECK(str(from_early[0], "file") == "libdiff_plugin.so");
  CHECK(from_early[0]["ok"] == true);
  CHECK(num(from_early[0], "object") == num(plugin, "id"));
  CHECK(num(plugin, "opened_by") == num(from_early[0], "seq"));
  CHECK(num(plugin, "parent") == num(early, "id"));
  CHECK(str(from_early[1], "call") == "dlsym");
  CHECK(str(from_early[1], "symbol") == "diff_plugin_name");
  CHECK(num(from_early[1], "object") == num(plugin, "id"));
  CHECK(str(from_early[2], "symbol") == "diff_early_missing");
  CHECK(from_early[2]["ok"] == false);
  CHECK(str(from_early[2], "error") == line_after(t.run.out, "early ctor missing: dlerror="));
  CHECK(str(from_early[3], "symbol") == "puts");
  // They come before main's call.
  json exe = the_object(j, "/diff_early");
  auto from_main =
      events_where(j, [&](const json& e) { return caller_object(e) == num(exe, "id"); });
  REQUIRE(from_main.size() == 1);
  CHECK(num(from_main[0], "seq") > num(from_early[3], "seq"));
}

TEST_CASE("dlsym references bound to GLIBC_2.2.5 and GLIBC_2.34 are both intercepted",
          "[recording]") {
  for (const char* which : {"old", "new"}) {
    SECTION(which) {
      std::string prog = std::string("diff_symver_") + which;
      Traced t = trace_of({fixture(prog)});
      const json& j = t.trace;
      INFO("program output:\n" << t.run.out << "\ntrace:\n" << j.dump(1));
      json exe = the_object(j, "/" + prog);
      json next_a = the_object(j, "/libdiff_next_a.so");
      auto syms = events_where(j, [&](const json& e) {
        return str(e, "call") == "dlsym" && caller_object(e) == num(exe, "id");
      });
      REQUIRE(syms.size() == 4);
      CHECK(str(syms[0], "symbol") == std::string("diff_symver_marker_") + which);
      CHECK(syms[0]["ok"] == true);
      CHECK(num(syms[0], "object") == num(exe, "id"));
      CHECK(str(syms[1], "symbol") == "who");
      CHECK(num(syms[1], "object") == num(next_a, "id"));
      CHECK(str(syms[2], "symbol") == "diff_symver_missing");
      CHECK(syms[2]["ok"] == false);
      CHECK(str(syms[2], "error") == line_after(t.run.out, "missing: dlerror="));
      CHECK(str(syms[3], "symbol") == "puts");
    }
  }
}

// The recorder loads a copy of itself into each new dlmopen namespace, by its real path. LD_PRELOAD
// may name it by a relative path or through a symlink: the copies are still the recorder's own.
TEST_CASE("the recorder's copies in dlmopen namespaces are marked, whatever LD_PRELOAD calls it",
          "[recording]") {
  settle_fixtures();
  const std::string dir = temp_dir("recorder_copies");
  const fs::path lib = fs::path(preload_path());
  fs::create_symlink(lib, fs::path(dir) / "libdltrace-link.so");
  const std::vector<std::pair<std::string, std::string>> names = {
      {"relative", fs::relative(lib, dir).string()}, {"symlink", dir + "/libdltrace-link.so"}};
  for (const auto& [label, name] : names) {
    SECTION(label) {
      RunOptions opts;
      opts.cwd = dir;
      opts.env["LD_PRELOAD"] = name;
      opts.env["DLTRACE_QUIET"] = "1";
      opts.env["DLTRACE_OUTPUT"] = dir + "/" + label + ".trace";
      const ProcessResult r = run({fixture("diff_dlmopen")}, opts);
      INFO("LD_PRELOAD=" << name << "\n" << describe(r));
      REQUIRE(r.exit_code == 0);
      const json j = export_json(dir + "/" + label + ".trace");
      int copies = 0;
      for (const auto& o : j["objects"]) {
        const std::string base = fs::path(str(o, "path")).filename().string();
        if (num(o, "namespace") == 0 || base.rfind("libdltrace", 0) != 0) continue;
        ++copies;
        INFO(o.dump());
        CHECK(o["flags"].dump().find("\"recorder\"") != std::string::npos);
      }
      CHECK(copies >= 2);
    }
  }
}

TEST_CASE("recording of dlmopen and of errors from failed calls", "[recording]") {
  Traced t = trace_of({fixture("diff_dlmopen")});
  const json& j = t.trace;
  INFO("program output:\n" << t.run.out << "\ntrace:\n" << j.dump(1));
  auto dlmopens = events_where(j, [](const json& e) { return str(e, "call") == "dlmopen"; });
  // NEWLM, same lmid, LM_ID_BASE, NEWLM bare, NEWLM|GLOBAL, existing|GLOBAL.
  REQUIRE(dlmopens.size() == 6);
  CHECK(dlmopens[0]["ok"] == true);
  CHECK(num(dlmopens[0], "namespace") > 0);
  for (int k : {4, 5}) {
    CHECK(dlmopens[k]["ok"] == false);
    CHECK(str(dlmopens[k], "error") == "invalid mode: Invalid argument");
  }
  // The copy in the new namespace is a separate object, in that namespace, opened by dlmopen.
  auto ns_copies = objects_ending(j, "/libdiff_ns.so");
  REQUIRE(ns_copies.size() >= 2);
  bool found_new = false;
  for (const auto& o : ns_copies)
    if (num(o, "opened_by") == num(dlmopens[0], "seq")) {
      found_new = true;
      CHECK(num(o, "namespace") > 0);
      CHECK(str(o, "cause") == "dlopen");
    }
  CHECK(found_new);

  Traced e = trace_of({fixture("diff_dlerror"), "all"});
  INFO("dlerror program output:\n" << e.run.out << "\ntrace:\n" << e.trace.dump(1));
  auto missing = events_where(e.trace, [](const json& ev) {
    return str(ev, "call") == "dlopen" && str(ev, "file") == "libdiff_does_not_exist.so";
  });
  REQUIRE(missing.size() == 1);
  CHECK(str(missing[0], "error") == line_after(e.run.out, "first dlerror: dlerror="));
  auto nested = events_where(e.trace, [](const json& ev) {
    return str(ev, "call") == "dlopen" && str(ev, "file") == "libdiff_nested_does_not_exist.so";
  });
  REQUIRE(nested.size() == 1);
  CHECK(str(nested[0], "error") == line_after(e.run.out, "after outer dlopen: dlerror="));
  auto noload = events_where(e.trace, [](const json& ev) {
    return str(ev, "call") == "dlopen" && ends_with(str(ev, "file"), "/libdiff_err_unloaded.so");
  });
  REQUIRE(noload.size() == 1);
  CHECK(noload[0]["ok"] == false);
  CHECK(is_null(noload[0], "error"));  // RTLD_NOLOAD of an unloaded file: NULL, no error
  CHECK(str(noload[0], "flags_text").find("RTLD_NOLOAD") != std::string::npos);
}

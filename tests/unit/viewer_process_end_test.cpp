// How a process ended, in every view: exit, _exit, a fatal signal, exec (with the program it
// became), an end observed by `dltrace run`, and no recorded end (unknown). Traces written with
// the recorder's TraceWriter, the end fields set directly in the header.
#include <catch2/catch.hpp>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "commands/show_command.h"
#include "commands/stats_command.h"
#include "commands/tree_command.h"
#include "render/chrome_export.h"
#include "render/html_report.h"
#include "render/json_export.h"
#include "viewer_test_trace.h"

using namespace dltrace;
using nlohmann::json;
using test::has;

namespace {

struct End {
  format::EndKind kind = format::EndKind::kRunning;
  int32_t code = 0;
  uint32_t via = format::kEndViaNone;
  const char* exec_target = nullptr;
};

// A process `pid` (child of `ppid`) running `exe` that made one dlsym and ended as `end` says.
std::string write_ended_trace(const std::string& path, const End& end, int32_t pid = 4242,
                              int32_t ppid = 1, const char* exe = "/bin/sh",
                              std::vector<const char*> argv = {"sh", "-c", "x"},
                              uint64_t start = 1000) {
  preload::TraceWriter w;
  if (std::string err = test::open_writer(w, path, 1 << 20, 8); !err.empty()) return err;
  w.write_process(exe, "/", int(argv.size()), argv.data());
  test::add_object(w, exe, format::ObjectCause::kStartup, 0, format::kNoId, 0);
  format::EventSlot e = test::make_event(w.reserve_seq(), w.intern_string("getenv"));
  w.commit(e);
  format::FileHeader* h = w.header();
  h->pid = pid;
  h->ppid = ppid;
  h->start_monotonic_ns = start;
  const uint32_t exec_target = end.exec_target ? w.intern_string(end.exec_target) : format::kNoId;
  if (end.kind != format::EndKind::kRunning) {
    w.set_end(end.kind, end.code, format::EndVia(end.via), exec_target);
    h->end_monotonic_ns = start;  // "after 0.000 ms"
  } else {
    h->exec_target = exec_target;
  }
  return {};
}

std::unique_ptr<TraceReader> open(const std::string& path) {
  std::string error;
  auto reader = TraceReader::open(path, &error);
  INFO(error);
  REQUIRE(reader);
  return reader;
}

std::string show_text(const TraceReader& r) {
  return test::rendered_text([&](std::FILE* f) { CHECK(viewer::show_trace(r, {}, f).ok()); });
}
std::string stats_text(const TraceReader& r, bool as_json = false) {
  viewer::StatsOptions o;
  o.json = as_json;
  return test::rendered_text([&](std::FILE* f) { CHECK(viewer::stats_trace(r, o, f).ok()); });
}
json export_json(const TraceReader& r) {
  viewer::JsonWriter w;
  REQUIRE(viewer::write_json_export(r, {}, w).ok());
  return json::parse(w.str());
}
json export_jsonl_process(const TraceReader& r) {
  viewer::JsonWriter w;
  viewer::JsonExportOptions o;
  o.flavor = viewer::JsonFlavor::kJsonl;
  REQUIRE(viewer::write_json_export(r, o, w).ok());
  const std::string text(w.str());
  return json::parse(text.substr(0, text.find('\n')));
}
std::string chrome_text(const TraceReader& r) {
  viewer::JsonWriter w;
  REQUIRE(viewer::write_chrome_export(r, w).ok());
  return std::string(w.str());
}
std::string tree_line(const std::string& path, const TraceReader& r) {
  std::vector<viewer::NamedTrace> traces = {{path, &r}};
  const std::string out = test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::process_tree_trace(traces, {}, false, f).ok()); });
  return out.substr(0, out.find('\n'));
}

struct Case {
  const char* name;
  End end;
  const char* show;  // show's "end:" line (without the time)
  const char* tree;  // tree's [summary] of the process
  const char* json_end;
  const char* json_via;  // nullptr: null
  const char* chrome;    // the process-end instant's name; nullptr: none
};

const Case kCases[] = {
    {"exit",
     {format::EndKind::kExit, 0, format::kEndViaExit},
     "  end: exited with status 0 after",
     "[exit 0]",
     "exit",
     "exit",
     "exit 0"},
    {"_exit",
     {format::EndKind::kExit, 4, format::kEndViaUnderscoreExit},
     "  end: exited with status 4 after 0.000 ms via _exit\n",
     "[exit 4 via _exit]",
     "exit",
     "_exit",
     "exit 4 via _exit"},
    {"fatal signal",
     {format::EndKind::kSignal, 11, format::kEndViaFatalSignal},
     "  end: killed by signal 11 (SIGSEGV) after",
     "[killed by signal 11 (SIGSEGV)]",
     "signal",
     "signal-handler",
     "killed by signal 11 (SIGSEGV)"},
    {"exec",
     {format::EndKind::kExec, 0, format::kEndViaExec, "/usr/bin/ls"},
     "  end: exec'ed /usr/bin/ls after",
     "[exec → ls]",
     "exec",
     "exec",
     "exec → ls"},
    {"observed by run",
     {format::EndKind::kExit, 127, format::kEndViaObserved},
     "  end: exited with status 127 after 0.000 ms (observed by dltrace run)\n",
     "[exit 127, observed by dltrace run]",
     "exit",
     "observed",
     "exit 127, observed by dltrace run"},
    {"unknown",
     {},
     "  end: no recorded end: killed by SIGKILL, vanished, or still running\n",
     "[no recorded end: killed by SIGKILL, vanished, or still running]",
     "unknown",
     nullptr,
     nullptr},
};

}  // namespace

TEST_CASE("every view says how the process ended", "[viewer][process][end]") {
  for (const Case& c : kCases) {
    DYNAMIC_SECTION(c.name) {
      test::ScratchDir dir;
      const std::string path = dir.file("e.trace");
      REQUIRE(write_ended_trace(path, c.end) == "");
      auto reader = open(path);
      const ProcessInfo& p = reader->process();
      CHECK(p.end == c.end.kind);
      CHECK(p.end_via == c.end.via);
      CHECK(p.exec_target == (c.end.exec_target ? c.end.exec_target : ""));

      const std::string show = show_text(*reader);
      INFO(show);
      CHECK(has(show, c.show));

      const std::string tree = tree_line(path, *reader);
      INFO(tree);
      CHECK(has(tree, c.tree));

      for (const json& process : {export_json(*reader)["process"], export_jsonl_process(*reader)}) {
        INFO(process.dump());
        CHECK(process["end"] == c.json_end);
        if (c.json_via) {
          CHECK(process["end_via"] == c.json_via);
        } else {
          CHECK(process["end_via"].is_null());
        }
        if (c.end.kind == format::EndKind::kExec) {
          CHECK(process["exec_target"] == c.end.exec_target);
          CHECK(process["exit_status"].is_null());
          CHECK(process["signal"].is_null());
        } else {
          CHECK(process["exec_target"].is_null());
        }
        if (c.end.kind == format::EndKind::kExit) CHECK(process["exit_status"] == c.end.code);
        if (c.end.kind == format::EndKind::kSignal) CHECK(process["signal"] == c.end.code);
      }

      const std::string stats = stats_text(*reader);
      INFO(stats);
      const std::string show_end = std::string(c.show).substr(std::string("  end: ").size());
      // stats says the same as show, without the time.
      const std::string stats_end = show_end.substr(0, show_end.find(" after"));
      CHECK(has(stats, "  end:       " + stats_end));
      if (show_end.find(" (observed") != std::string::npos)
        CHECK(has(stats, "(observed by dltrace run)"));
      if (show_end.find(" via _exit") != std::string::npos) CHECK(has(stats, " via _exit"));
      const json stats_json = json::parse(stats_text(*reader, true));
      CHECK(stats_json["process"]["end"] == c.json_end);
      if (c.json_via) {
        CHECK(stats_json["process"]["end_via"] == c.json_via);
      } else {
        CHECK(stats_json["process"]["end_via"].is_null());
      }

      const std::string chrome = chrome_text(*reader);
      INFO(chrome);
      if (c.chrome) {
        CHECK(has(chrome, std::string("\"name\":\"") + c.chrome + "\""));
      } else {
        CHECK_FALSE(has(chrome, "\"cat\":\"process\""));
      }
    }
  }
}

TEST_CASE("html says how the process ended", "[viewer][process][end][html]") {
  test::ScratchDir dir;
  const std::string observed = dir.file("o.trace"), unknown = dir.file("u.trace");
  REQUIRE(write_ended_trace(observed, {format::EndKind::kExit, 127, format::kEndViaObserved}) ==
          "");
  REQUIRE(write_ended_trace(unknown, {}) == "");
  auto html_of = [](const TraceReader& r) {
    return test::rendered_text(
        [&](std::FILE* f) { CHECK(viewer::write_html_report(r, {}, f).ok()); });
  };
  const std::string o = html_of(*open(observed));
  CHECK(has(o, "exited with status 127 after"));
  CHECK(has(o, "(observed by dltrace run)"));
  const std::string u = html_of(*open(unknown));
  CHECK(has(u, "no recorded end: killed by SIGKILL, vanished, or still running"));
}

TEST_CASE("process tree: an image that exec'ed continues in the next trace of its pid",
          "[viewer][process][tree][end]") {
  // `dash -c 'exec ls'`: one pid, two traces; then the pid is reused by an unrelated process.
  test::ScratchDir dir;
  const std::string sh = dir.file("a.trace"), ls = dir.file("b.trace"), reuse = dir.file("c.trace");
  REQUIRE(write_ended_trace(sh, {format::EndKind::kExec, 0, format::kEndViaExec, "/usr/bin/ls"},
                            500, 1, "/usr/bin/dash", {"sh", "-c", "exec ls"}, 1000) == "");
  REQUIRE(write_ended_trace(ls, {format::EndKind::kExit, 0, format::kEndViaExit}, 500, 1,
                            "/usr/bin/ls", {"ls"}, 2000) == "");
  REQUIRE(write_ended_trace(reuse, {format::EndKind::kExit, 0, format::kEndViaExit}, 500, 1,
                            "/usr/bin/cat", {"cat"}, 3000) == "");
  auto a = open(sh), b = open(ls), c = open(reuse);
  std::vector<viewer::NamedTrace> traces = {{reuse, c.get()}, {ls, b.get()}, {sh, a.get()}};
  const std::string out = test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::process_tree_trace(traces, {}, false, f).ok()); });
  INFO(out);
  CHECK(has(out, "pid 500 sh -c exec ls  [exec → ls] a.trace\n"));
  CHECK(has(out, "└── pid 500 (exec) ls  [exit 0] b.trace\n"));
  // ls ended with exit: the next process with its pid is not an exec of it.
  CHECK(has(out, "\npid 500 cat  [exit 0] c.trace\n"));
  CHECK_FALSE(has(out, "(exec) cat"));
}

TEST_CASE("show and export name the pids seen outside a PID namespace", "[viewer][process]") {
  test::ScratchDir dir;
  const std::string path = dir.file("z.trace");
  REQUIRE(write_ended_trace(path, {format::EndKind::kExit, 0, format::kEndViaExit}, 1, 0,
                            "/opt/chrome/chrome", {"chrome", "--type=zygote"}) == "");
  auto bytes = test::read_file(path);
  auto* h = reinterpret_cast<format::FileHeader*>(bytes.data());
  h->outer_pid = 4010;
  h->outer_ppid = 4000;
  test::write_file(path, bytes.data(), bytes.size());
  auto reader = open(path);
  CHECK(reader->process().outer_pid == 4010);
  CHECK(reader->process().outer_ppid == 4000);
  const std::string show = show_text(*reader);
  INFO(show);
  CHECK(has(show,
            "process 1 (parent 0), outside its PID namespace 4010 (parent 4000): "
            "/opt/chrome/chrome\n"));
  const json p = export_json(*reader)["process"];
  CHECK(p["outer_pid"] == 4010);
  CHECK(p["outer_ppid"] == 4000);
}

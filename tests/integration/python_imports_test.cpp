// Python-aware tree and stats on real runs of /usr/bin/python3 (Debian's, with python3-numpy):
// each extension module under the script's import statement that caused it, native load time per
// top-level import, and one trace per process for multiprocessing (fork, spawn) and subprocess,
// shown as a process tree. Fixtures: tests/fixtures/python_imports (lines found by MARK comments).
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;
using nlohmann::json;

namespace {

const char* const kPython = "/usr/bin/python3";

std::string dir() {
  return fixture("python_imports");
}

bool has_python() {
  if (access(kPython, X_OK) == 0) return true;
  WARN("no " << kPython << "; skipped");
  return false;
}

// 1-based line of the first line of `path` containing "MARK:<marker>".
int marker_line(const std::string& path, const std::string& marker) {
  std::ifstream in(path);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n)
    if (line.find("MARK:" + marker) != std::string::npos) return n;
  FAIL("no MARK:" << marker << " in " << path);
  return 0;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Display columns of a tree line's prefix (branches "├── ", bars "│   ", spaces).
size_t depth_column(const std::string& line) {
  size_t col = 0;
  for (size_t i = 0; i < line.size();) {
    if (line[i] == ' ') {
      ++i;
    } else if (line.compare(i, 3, "│") == 0 || line.compare(i, 3, "├") == 0 ||
               line.compare(i, 3, "└") == 0 || line.compare(i, 3, "─") == 0) {
      i += 3;
    } else {
      break;
    }
    ++col;
  }
  return col;
}

// Index of the first line containing `needle`, or lines.size().
size_t find_line(const std::vector<std::string>& lines, const std::string& needle,
                 size_t from = 0) {
  for (size_t i = from; i < lines.size(); ++i)
    if (lines[i].find(needle) != std::string::npos) return i;
  return lines.size();
}

// The lines below line `at` in the tree (deeper than it), as [at + 1, end).
size_t block_end(const std::vector<std::string>& lines, size_t at) {
  const size_t col = depth_column(lines[at]);
  size_t end = at + 1;
  while (end < lines.size() && depth_column(lines[end]) > col) ++end;
  return end;
}

std::string frame_text(const json& f) {
  return f["file"].get<std::string>() + ":" + std::to_string(f["line"].get<int>());
}

// The innermost frame outside importlib's bootstrap (the import statement itself) and outside
// ctypes' CDLL code (the CDLL(...) line).
std::string import_site(const json& stack) {
  for (const json& f : stack) {
    const std::string file = f["file"];
    if (file.rfind("<frozen importlib._bootstrap", 0) == 0) continue;
    if (file.ends_with("/ctypes/__init__.py") && f["function"] != "<module>") continue;
    return frame_text(f);
  }
  return {};
}

bool via_import(const json& stack) {
  return stack[0]["file"].get<std::string>().rfind("<frozen importlib._bootstrap", 0) == 0;
}

ProcessResult viewer(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {viewer_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

}  // namespace

TEST_CASE("tree and stats attribute each extension module to the import that caused it",
          "[python][imports]") {
  if (!has_python()) return;
  const std::string app = dir() + "/app.py";
  const std::string trace = temp_dir("pyimports") + "/app.trace";
  const ProcessResult r = run_traced({kPython, app}, trace);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  const bool numpy = r.out.find("\"numpy\": true") != std::string::npos;
  if (!numpy) WARN("numpy is not importable by " << kPython << ": its part is skipped");

  const json j = export_json(trace);
  const ProcessResult tree = viewer({"tree", trace, "--color=never"});
  INFO(tree.out << tree.err);
  REQUIRE(tree.exit_code == 0);
  const std::vector<std::string> lines = lines_of(tree.out);

  // The group line of a top-level statement of app.py, and how many loads it claims.
  auto group = [&](const std::string& marker) {
    const std::string head =
        "python " + app + ":" + std::to_string(marker_line(app, marker)) + ": ";
    const size_t at = find_line(lines, head);
    REQUIRE(at < lines.size());
    return at;
  };
  // The dlopen events with a Python stack whose outermost frame is app.py at `marker`. numpy's
  // deepest imports hit the recorder's 64-frame limit before reaching app.py: those stacks
  // count for `import numpy` when they are inside numpy's package.
  auto loads_at = [&](const std::string& marker) {
    std::vector<const json*> out;
    const int line = marker_line(app, marker);
    for (const json& e : j["events"]) {
      if (e["call"] != "dlopen" || !e["python_stack"].is_array() || e["python_stack"].empty())
        continue;
      const json& stack = e["python_stack"];
      const json& top = stack.back();
      if (top["file"] == app && top["line"] == line) {
        out.push_back(&e);
      } else if (marker == "numpy-import" && stack.size() >= 64 &&
                 std::ranges::any_of(stack, [](const json& f) {
                   return f["file"].get<std::string>().find("/numpy/") != std::string::npos;
                 })) {
        out.push_back(&e);
      }
    }
    return out;
  };
  // Checks that every load that brought in an object (or failed), other than those nested in
  // another load's constructors, is a line in the group's block, with its import site.
  auto check_group = [&](const std::string& marker, const std::vector<const json*>& loads) {
    const size_t at = group(marker);
    const size_t end = block_end(lines, at);
    size_t top_level = 0;
    for (const json* e : loads) {
      INFO(e->dump());
      if ((*e)["nested"] == true) continue;
      if ((*e)["ok"] == true && (*e)["new_objects"].empty()) continue;  // already loaded
      ++top_level;
      const std::string path = (*e)["file"].get<std::string>();
      const size_t line = find_line(lines, path + "  dlopen(", at);
      CHECK(line < end);  // under the statement's line
      if (line >= end) continue;
      CHECK(lines[line].find(" incl. constructors") != std::string::npos);
      const std::string site = import_site((*e)["python_stack"]);
      const std::string top = app + ":" + std::to_string(marker_line(app, marker));
      if (site != top) {
        REQUIRE(line + 1 < lines.size());
        const std::string label = via_import((*e)["python_stack"]) ? "import at " : "python ";
        CHECK(lines[line + 1].find(label + site) != std::string::npos);
      }
    }
    CHECK(lines[at].find("(" + std::to_string(top_level) + " load") != std::string::npos);
    return top_level;
  };

  SECTION("import json: _json, imported by json/scanner.py") {
    const auto loads = loads_at("json-import");
    REQUIRE(!loads.empty());
    CHECK(check_group("json-import", loads) >= 1);
    CHECK(lines[group("json-import")].find(": import json  # MARK:json-import") !=
          std::string::npos);
    CHECK(tree.out.find("import at /usr/lib/python3") != std::string::npos);
  }
  SECTION("import numpy: every numpy extension module under the import line") {
    if (!numpy) return;
    const auto loads = loads_at("numpy-import");
    size_t numpy_modules = 0;
    for (const json* e : loads)
      if ((*e)["file"].get<std::string>().find("/numpy/") != std::string::npos) ++numpy_modules;
    INFO("numpy extension modules: " << numpy_modules);
    CHECK(numpy_modules >= 5);
    check_group("numpy-import", loads);
    // Stacks cut at 64 frames got their statement from a complete stack through a shared
    // module frame: none is left unattributed.
    CHECK(tree.out.find("Python stack cut") == std::string::npos);
  }
  SECTION("an import inside a function: the function's line under the calling statement") {
    const auto loads = loads_at("local-call");
    REQUIRE(loads.size() == 1);
    check_group("local-call", loads);
    const size_t at = find_line(lines, "/_decimal.");
    REQUIRE(at + 1 < lines.size());
    CHECK(lines[at + 1].find("import at " + app + ":" +
                             std::to_string(marker_line(app, "local-import")) +
                             " in load_decimal") != std::string::npos);
  }
  SECTION("ctypes.CDLL: the CDLL line, not ctypes' own code") {
    const auto loads = loads_at("ctypes-load");
    REQUIRE(loads.size() == 1);
    CHECK(check_group("ctypes-load", loads) == 1);
    const size_t at = find_line(lines, "/libresolv.so.2  dlopen(");
    REQUIRE(at + 1 < lines.size());
    CHECK(lines[at + 1].find("caller ") != std::string::npos);
    CHECK(lines[at + 1].find("ctypes/__init__.py") == std::string::npos);
  }
  SECTION("stats: native load time per top-level import, the same loads as the tree") {
    const ProcessResult stats = viewer({"stats", trace, "--top", "50"});
    INFO(stats.out << stats.err);
    REQUIRE(stats.exit_code == 0);
    CHECK(stats.out.find("native load time per top-level import") != std::string::npos);
    for (const std::string marker : {"json-import", "local-call", "ctypes-load", "numpy-import"}) {
      if (marker == "numpy-import" && !numpy) continue;
      INFO(marker);
      const std::string where = app + ":" + std::to_string(marker_line(app, marker)) + ": ";
      const auto row = lines_of(stats.out);
      const size_t at = find_line(row, where);
      REQUIRE(at < row.size());
      // "  <total> <loads> <objects>  app.py:N: source": every dlopen made for the statement.
      std::istringstream cols(row[at]);
      std::string value, unit;
      size_t count = 0;
      cols >> value >> unit >> count;
      CHECK(count == loads_at(marker).size());
    }
    const ProcessResult js = viewer({"stats", trace, "--json"});
    REQUIRE(js.exit_code == 0);
    const json sj = json::parse(js.out);
    REQUIRE(sj["top_level_imports"].is_array());
    REQUIRE(!sj["top_level_imports"].empty());
    // Sorted by time, most first.
    uint64_t previous = UINT64_MAX;
    for (const json& t : sj["top_level_imports"]) {
      CHECK(t["total_ns"].get<uint64_t>() <= previous);
      previous = t["total_ns"].get<uint64_t>();
    }
    if (numpy) {
      CHECK(sj["top_level_imports"][0]["statement"]["line"] == marker_line(app, "numpy-import"));
    }
  }
}

TEST_CASE("multiprocessing (fork, spawn) and subprocess: one trace per process, a process tree",
          "[python][process]") {
  if (!has_python()) return;
  const std::string out_dir = temp_dir("pyprocs");
  const ProcessResult r = run_traced({kPython, dir() + "/processes.py"}, out_dir + "/");
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  // "main PID", "fork PID _decimal 0", "spawn PID _decimal 0", "subprocess PID".
  std::map<std::string, int> pid;
  for (const std::string& line : lines_of(r.out)) {
    std::istringstream in(line);
    std::string what;
    int n = 0;
    if (in >> what >> n) pid[what] = n;
  }
  REQUIRE(pid.size() == 4);

  const std::vector<std::string> traces = traces_in(out_dir);
  std::map<int, json> by_pid;
  for (const std::string& t : traces) {
    json j = export_json(t);
    const int p = j["process"]["pid"];
    INFO(t);
    CHECK(by_pid.count(p) == 0);  // one trace per process
    by_pid[p] = std::move(j);
  }
  for (const auto& [what, p] : pid) {
    INFO(what << " " << p);
    REQUIRE(by_pid.count(p) == 1);
    if (what != "main") CHECK(by_pid[p]["process"]["ppid"] == pid["main"]);
  }
  // Anything else is multiprocessing's resource tracker (started for the spawn context).
  for (const auto& [p, j] : by_pid) {
    if (std::ranges::any_of(pid, [&](const auto& kv) { return kv.second == p; })) continue;
    INFO(j["process"].dump());
    CHECK(j["process"]["ppid"] == pid["main"]);
    CHECK(j["process"]["argv"].dump().find("resource_tracker") != std::string::npos);
  }
  CHECK(traces.size() == by_pid.size());

  const ProcessResult tree = viewer({"tree", out_dir, "--color=never"});
  INFO(tree.out << tree.err);
  REQUIRE(tree.exit_code == 0);
  const std::vector<std::string> lines = lines_of(tree.out);
  auto process_line = [&](int p) {
    const size_t at = find_line(lines, "pid " + std::to_string(p) + " ");
    REQUIRE(at < lines.size());
    return at;
  };
  const size_t main_at = process_line(pid["main"]);
  CHECK(main_at == 0);  // the one root
  for (const std::string what : {"fork", "spawn", "subprocess"}) {
    INFO(what);
    const size_t at = process_line(pid[what]);
    CHECK(at > main_at);
    CHECK(depth_column(lines[at]) == 4);  // a child of the main process
    CHECK((lines[at].find("(fork)") != std::string::npos) == (what == "fork"));
  }
  // Each child's own loads are under it: _decimal in both multiprocessing children, whose block
  // ends at the next process line.
  for (const std::string what : {"fork", "spawn"}) {
    INFO(what);
    const size_t at = process_line(pid[what]);
    const size_t next = find_line(lines, "── pid ", at + 1);
    CHECK(find_line(lines, "/_decimal.", at) < next);
  }
  // The fork child's objects from before the fork are folded: shown under the parent only.
  const size_t fork_at = process_line(pid["fork"]);
  const size_t fork_end = find_line(lines, "── pid ", fork_at + 1);
  CHECK(find_line(lines, "loaded before the fork hidden", fork_at) < fork_end);
  std::string inherited;
  for (const json& o : by_pid[pid["fork"]]["objects"])
    if (o["cause"] == "dlopen" && o["opened_by"].is_null()) inherited = o["path"];
  INFO("inherited: " << inherited);
  REQUIRE(!inherited.empty());
  const size_t first_child = find_line(lines, "── pid ", main_at + 1);
  CHECK(find_line(lines, inherited + "  dlopen(", main_at) < first_child);
  const size_t again = find_line(lines, inherited, fork_at);
  CHECK((again >= fork_end || again == lines.size()));
}

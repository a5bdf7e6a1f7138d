// Hostile traces (tests/hostile/hostile_traces.h): every string of a trace is shown escaped by
// every text command (one test per command), JSON exports keep the exact bytes, the files a
// trace names are opened only if regular and never printed, and nesting work is bounded.
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "analysis/elf_file.h"
#include "analysis/file_kind.h"
#include "commands/explain_command.h"
#include "commands/scopes_command.h"
#include "commands/show_command.h"
#include "commands/stats_command.h"
#include "commands/tree_command.h"
#include "hostile_traces.h"
#include "render/json_export.h"
#include "render/json_writer.h"
#include "viewer_test_trace.h"

using namespace dltrace;

namespace {

std::unique_ptr<TraceReader> open_trace(const std::string& path) {
  std::string error;
  auto reader = TraceReader::open(path, &error);
  INFO(error);
  REQUIRE(reader);
  return reader;
}

// The first control byte other than '\n' (or an invalid UTF-8 byte, or U+202E) in `text`, or -1.
long first_unsafe_byte(const std::string& text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\n') || c == 0x7f) return static_cast<long>(i);
    if (c == 0xff || c == 0xfe) return static_cast<long>(i);
  }
  if (const size_t at = text.find(test::kBidiOverride); at != std::string::npos)
    return static_cast<long>(at);
  return -1;
}

// What every text command must show of the escape trace: nothing a terminal acts on, the
// attacker's escapes visible as text, and no forged line.
void require_escaped(const std::string& out) {
  INFO(out);
  CHECK(first_unsafe_byte(out) == -1);
  CHECK(out.find("\\x1b]0;pwned\\x07") != std::string::npos);
  CHECK(out.find("\\x1b[2J") != std::string::npos);
  CHECK(out.find("\n0 problems") == std::string::npos);
}

struct EscapeTrace {
  test::ScratchDir dir;
  std::string path = dir.file("escape.trace");
  EscapeTrace() { REQUIRE(test::write_escape_trace(path) == ""); }
};

}  // namespace

TEST_CASE("show prints a trace's strings escaped", "[viewer][hostile][escape][show]") {
  EscapeTrace t;
  auto reader = open_trace(t.path);
  viewer::ShowOptions options;
  options.stacks = true;
  options.color = viewer::ColorMode::kNever;
  require_escaped(test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::show_trace(*reader, options, f).ok()); }));
}

TEST_CASE("tree prints a trace's strings escaped", "[viewer][hostile][escape][tree]") {
  EscapeTrace t;
  auto reader = open_trace(t.path);
  viewer::TreeOptions options;
  options.all = true;
  require_escaped(test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::tree_trace(*reader, options, false, f).ok()); }));
  // The process tree of several traces: the command line is the trace's too.
  auto second = open_trace(t.path);
  std::vector<viewer::NamedTrace> traces = {{t.path, reader.get()}, {t.path, second.get()}};
  require_escaped(test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::process_tree_trace(traces, options, false, f).ok()); }));
}

TEST_CASE("explain prints a trace's strings escaped", "[viewer][hostile][escape][explain]") {
  EscapeTrace t;
  auto reader = open_trace(t.path);
  viewer::ExplainOptions options;
  options.probes = true;
  require_escaped(test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::explain_trace_to(*reader, options, f).ok()); }));
}

TEST_CASE("scopes prints a trace's strings escaped", "[viewer][hostile][escape][scopes]") {
  EscapeTrace t;
  auto reader = open_trace(t.path);
  viewer::ScopesOptions options;
  require_escaped(test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::scopes_trace(*reader, options, f).ok()); }));
  // One object's search list, and the failed load's.
  options.for_object = "#2";
  require_escaped(test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::scopes_trace(*reader, options, f).ok()); }));
}

TEST_CASE("stats prints a trace's strings escaped", "[viewer][hostile][escape][stats]") {
  EscapeTrace t;
  auto reader = open_trace(t.path);
  viewer::StatsOptions options;
  require_escaped(test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::stats_trace(*reader, options, f).ok()); }));
}

TEST_CASE("the JSON export keeps the exact bytes of strings that are not UTF-8",
          "[viewer][hostile][json]") {
  EscapeTrace t;
  auto reader = open_trace(t.path);
  for (auto flavor : {viewer::JsonFlavor::kJson, viewer::JsonFlavor::kJsonl}) {
    viewer::JsonWriter w;
    viewer::JsonExportOptions options;
    options.flavor = flavor;
    REQUIRE(viewer::write_json_export(*reader, options, w).ok());
    std::vector<nlohmann::json> docs;
    if (flavor == viewer::JsonFlavor::kJson) {
      docs.push_back(nlohmann::json::parse(w.str()));
    } else {
      std::string_view rest = w.str();
      while (!rest.empty()) {
        const size_t nl = rest.find('\n');
        docs.push_back(nlohmann::json::parse(rest.substr(0, nl)));
        rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      }
    }
    // Every string the trace holds, as the export must give it back.
    std::vector<std::string> expected = {reader->process().exe, reader->process().cwd,
                                         reader->process().config};
    for (const auto& a : reader->process().argv) expected.push_back(a);
    for (const auto& o : reader->objects()) {
      expected.push_back(o.path);
      if (!o.soname.empty()) expected.push_back(o.soname);
    }
    reader->for_each_event([&](const format::EventSlot& e) {
      for (uint32_t id : {e.name, e.version, e.error})
        if (id != format::kNoId) expected.emplace_back(reader->string(id));
      for (const auto& f : reader->py_stack(e.py_stack)) {
        expected.emplace_back(reader->string(f.file));
        expected.emplace_back(reader->string(f.function));
      }
      return true;
    });
    // Each "<member>_raw" decodes (by the documented escapes) to bytes; every expected string
    // must be among the decoded raw forms or the plain (valid UTF-8) strings.
    std::set<std::string> recovered;
    auto decode = [](const std::string& raw) {
      std::string out;
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '\\') {
          out += raw[i];
        } else if (raw[i + 1] == '\\') {
          out += '\\';
          ++i;
        } else if (raw[i + 1] == 'x') {
          out += static_cast<char>(std::stoi(raw.substr(i + 2, 2), nullptr, 16));
          i += 3;
        } else {  // \uHHHH: the code point, UTF-8
          const unsigned cp = static_cast<unsigned>(std::stoi(raw.substr(i + 2, 4), nullptr, 16));
          if (cp < 0x800) {
            out += static_cast<char>(0xc0 | (cp >> 6));
          } else {
            out += static_cast<char>(0xe0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
          }
          out += static_cast<char>(0x80 | (cp & 0x3f));
          i += 5;
        }
      }
      return out;
    };
    std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& j) {
      if (j.is_object()) {
        for (const auto& [k, v] : j.items()) {
          if (k.ends_with("_raw") && v.is_string()) recovered.insert(decode(v.get<std::string>()));
          if (k.ends_with("_raw") && v.is_array())
            for (const auto& a : v) recovered.insert(decode(a.get<std::string>()));
          walk(v);
        }
      } else if (j.is_array()) {
        for (const auto& v : j) walk(v);
      } else if (j.is_string()) {
        recovered.insert(j.get<std::string>());
      }
    };
    for (const auto& d : docs) walk(d);
    for (const auto& s : expected) {
      std::string hex;
      for (unsigned char c : s) hex += fmt::format("{:02x}", c);
      INFO(hex);
      CHECK(recovered.contains(s));
    }
  }
}

TEST_CASE("the viewer opens only regular files a trace names, and never prints them",
          "[viewer][hostile][files]") {
  test::ScratchDir dir;
  const std::string fifo = dir.file("fifo.so"), secret = dir.file("secret.so");
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  std::ofstream(secret) << "root:SECRET-HASH-LINE:19000:0:99999:7:::\n";
  mkdir(dir.file("subdir.so").c_str(), 0755);

  // The ELF reader refuses a FIFO and a device at once (no open that blocks, no endless read),
  // and a regular file that is not ELF by its magic.
  CHECK(viewer::read_elf_file(fifo).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(viewer::read_elf_file("/dev/zero").status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(viewer::read_elf_file(secret).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(viewer::classify_file(fifo, 62).kind == viewer::FileKind::Kind::kNotRegular);

  const std::string path = dir.file("pointing.trace");
  REQUIRE(test::write_pointing_trace(path, {fifo, "/dev/zero", secret, dir.file("subdir.so")}) ==
          "");
  auto reader = open_trace(path);
  const auto start = std::chrono::steady_clock::now();
  std::string all;
  viewer::ShowOptions show;
  show.stacks = true;
  all +=
      test::rendered_text([&](std::FILE* f) { CHECK(viewer::show_trace(*reader, show, f).ok()); });
  all += test::rendered_text([&](std::FILE* f) {
    CHECK(viewer::tree_trace(*reader, viewer::TreeOptions{}, false, f).ok());
  });
  all += test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::stats_trace(*reader, viewer::StatsOptions{}, f).ok()); });
  all += test::rendered_text([&](std::FILE* f) {
    CHECK(viewer::explain_trace_to(*reader, viewer::ExplainOptions{}, f).ok());
  });
  all += test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::scopes_trace(*reader, viewer::ScopesOptions{}, f).ok()); });
  viewer::JsonWriter w;
  CHECK(viewer::write_json_export(*reader, viewer::JsonExportOptions{}, w).ok());
  all += w.str();
  INFO(all);
  CHECK(all.find("SECRET-HASH-LINE") == std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
}

TEST_CASE("a trace argument that is a FIFO is refused without blocking",
          "[viewer][hostile][files]") {
  test::ScratchDir dir;
  const std::string fifo = dir.file("t.trace");
  REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
  std::string error;
  CHECK(TraceReader::open(fifo, &error) == nullptr);
  CHECK(error.find("not a regular file") != std::string::npos);
}

TEST_CASE("100,000 nested dlopens: show, explain and tree stay linear and bounded",
          "[viewer][hostile][nesting]") {
  test::ScratchDir dir;
  const std::string path = dir.file("nested.trace");
  REQUIRE(test::write_nested_trace(path, 100000) == "");
  auto reader = open_trace(path);

  auto start = std::chrono::steady_clock::now();
  viewer::ShowOptions show;
  show.color = viewer::ColorMode::kNever;
  const std::string out =
      test::rendered_text([&](std::FILE* f) { CHECK(viewer::show_trace(*reader, show, f).ok()); });
  const auto show_time = std::chrono::steady_clock::now() - start;
  // Indentation stops at kMaxIndentDepth levels; the deepest call says its depth.
  size_t longest = 0;
  for (size_t at = 0, nl; at < out.size(); at = nl + 1) {
    nl = out.find('\n', at);
    if (nl == std::string::npos) nl = out.size();
    longest = std::max(longest, nl - at);
  }
  CHECK(longest < 400);
  CHECK(out.find("[depth 99999]") != std::string::npos);
  CHECK(out.size() < 40u * 1024 * 1024);

  start = std::chrono::steady_clock::now();
  const std::string explained = test::rendered_text([&](std::FILE* f) {
    CHECK(viewer::explain_trace_to(*reader, viewer::ExplainOptions{}, f).ok());
  });
  const auto explain_time = std::chrono::steady_clock::now() - start;
  // The load tree hangs each object under the previous one: building it must not walk the
  // chain once per object.
  start = std::chrono::steady_clock::now();
  const std::string tree = test::rendered_text([&](std::FILE* f) {
    CHECK(viewer::tree_trace(*reader, viewer::TreeOptions{}, false, f).ok());
  });
  const auto tree_time = std::chrono::steady_clock::now() - start;
  CHECK(tree.find("more below") != std::string::npos);  // cut at its depth limit
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  INFO("show " << duration_cast<milliseconds>(show_time).count() << " ms, explain "
               << duration_cast<milliseconds>(explain_time).count() << " ms, tree "
               << duration_cast<milliseconds>(tree_time).count() << " ms");
  CHECK(show_time < std::chrono::seconds(20));
  CHECK(explain_time < std::chrono::seconds(20));
  CHECK(tree_time < std::chrono::seconds(20));
}

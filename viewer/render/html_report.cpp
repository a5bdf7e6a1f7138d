#include "render/html_report.h"

#include <fmt/format.h>
#include <signal.h>
#include <string.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/elf_file.h"
#include "analysis/explain.h"
#include "analysis/scope_graph.h"
#include "common/dlopen_flags.h"
#include "model/call_nesting.h"
#include "model/in_flight.h"
#include "model/load_graph.h"
#include "model/trace_model.h"
#include "render/dot_layout.h"
#include "render/dot_load_graph.h"
#include "render/dot_scope_graph.h"
#include "render/html_assets.h"
#include "render/html_findings.h"
#include "render/json_writer.h"
#include "util/status.h"

namespace dltrace::viewer {
namespace {

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out.append("&amp;");
        break;
      case '<':
        out.append("&lt;");
        break;
      case '>':
        out.append("&gt;");
        break;
      case '"':
        out.append("&quot;");
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

class HtmlReport {
 public:
  HtmlReport(const HtmlReportContent& content, const HtmlReportOptions& options, std::FILE* out)
      : reader_(content.model.reader()),
        model_(content.model),
        load_graph_(content.load_graph),
        scope_graph_(content.scope_graph),
        explain_(content.findings),
        options_(options),
        out_(out) {}

  absl::Status run() {
    const ProcessInfo& p = reader_.process();
    const std::string title =
        fmt::format("dltrace: {} (pid {})", p.exe.empty() ? "?" : p.exe, p.pid);
    put(
        fmt::format("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                    "<title>{}</title>\n<style>{}</style></head><body>\n<h1>{}</h1>\n",
                    html_escape(title), html_assets::kStyle, html_escape(title)));
    put("<nav><a href=\"#findings\">Findings</a><a href=\"#load-graph\">Load graph</a>"
        "<a href=\"#scope-graph\">Scope graph</a><a href=\"#events\">Events</a></nav>\n");
    summary();
    findings();
    load_graph();
    scope_graph();
    events();
    put(fmt::format("<script>{}</script>\n</body></html>\n", html_assets::kScript));
    if (std::fflush(out_) != 0 || std::ferror(out_)) return TraceError("cannot write the report");
    return absl::OkStatus();
  }

 private:
  void put(std::string_view s) { std::fwrite(s.data(), 1, s.size(), out_); }

  void row(std::string_view key, std::string_view value) {
    put(fmt::format("<tr><td>{}</td><td>{}</td></tr>\n", html_escape(key), html_escape(value)));
  }

  void summary() {
    const ProcessInfo& p = reader_.process();
    put("<section id=\"summary\"><table class=\"summary\">\n");
    row("process", fmt::format("{} (parent {}){}", p.pid, p.ppid, outer_pids_text(p)));
    row("executable", p.exe);
    std::string argv;
    for (const auto& a : p.argv) argv.append(argv.empty() ? "" : " ").append(a);
    row("argv", argv);
    row("end", end_text(p, fmt::format("after {:.3f} ms", model_.relative_ms(p.end_monotonic_ns))));
    for (const format::EventSlot& e : calls_in_flight(reader_))
      row("inside a call", in_flight_text(model_, e));
    if (!p.config.empty()) row("override config", p.config);
    const uint64_t dropped = reader_.recovery().dropped_events;
    row("events", fmt::format("{} recorded, {} readable", reader_.last_seq(),
                              reader_.last_seq() - std::min(reader_.last_seq(), dropped)));
    row("objects", fmt::format("{}", reader_.objects().size()));
    put("</table>\n");
    for (const auto& s : recovery_sentences(reader_)) {
      put(fmt::format("<p class=\"note\">{}</p>\n", html_escape(s)));
    }
    put("</section>\n");
  }

  void load_graph() {
    put("<section id=\"load-graph\"><h2>Load graph</h2>\n<p>Edges: dlopen calls with their "
        "flags (orange: changed by an override), dashed: DT_NEEDED; red: failed dlopens (hover "
        "for the error).");
    if (!options_.all) put(" System libraries are folded into one node.");
    put("</p>\n<div class=\"graph\">");
    LoadGraphOptions graph_options;
    graph_options.all = options_.all;
    auto dot = load_graph_dot(load_graph_, graph_options);
    absl::StatusOr<std::string> svg = dot.ok() ? dot_to_svg(*dot) : dot.status();
    if (svg.ok()) {
      put(*svg);
    } else {
      put(
          fmt::format("<p class=\"note\">The load graph could not be drawn: {}. Draw part of "
                      "it with <code>dltrace dot --focus NAME TRACE | dot -Tsvg</code>.</p>",
                      html_escape(std::string(svg.status().message()))));
    }
    put("</div></section>\n");
  }

  // What `dltrace explain` says, first: the answers before the pictures. The analysis is kept
  // for the scope graph.
  void findings() {
    put("<section id=\"findings\"><h2>Findings</h2>\n<div id=\"findings-explain\">");
    put(findings_html(explain_));
    put("</div></section>\n");
  }

  void scope_graph() {
    put("<section id=\"scope-graph\"><h2>Scope graph</h2>\n<p>One box per search list: each "
        "namespace's global scope and every dlopen group's local scope, objects in lookup order; "
        "red: an object whose symbol lookup failed, pointing at the object that has the symbol.");
    if (!options_.all) put(" System libraries are folded into one node per scope.");
    put("</p>\n<div id=\"scope-graph-svg\" class=\"graph\">");
    ScopeGraphOptions graph_options;
    graph_options.all = options_.all;
    auto dot = scope_graph_dot(scope_graph_, explain_, graph_options);
    absl::StatusOr<std::string> svg = dot.ok() ? dot_to_svg(*dot) : dot.status();
    if (svg.ok()) {
      put(*svg);
    } else {
      put(fmt::format(
          "<p class=\"note\">The scope graph could not be drawn: {}. Draw part of "
          "it with <code>dltrace dot --graph scope --focus NAME TRACE | dot -Tsvg</code>."
          "</p>",
          html_escape(std::string(svg.status().message()))));
    }
    put("</div></section>\n");
  }

  // ---- the event table ----

  std::string string_or(uint32_t id, std::string_view fallback) const {
    return reader_.has_string(id) ? std::string(reader_.string(id)) : std::string(fallback);
  }
  std::string object_label(uint32_t id) const {
    const ObjectRecord* o = reader_.object(id);
    return o ? model_.name_of(*o) : std::string("?");
  }
  std::string handle_text(const format::EventSlot& e) const {
    if (is_sym_call(e.call) && e.handle == 0) return "RTLD_DEFAULT";
    if (is_sym_call(e.call) && e.handle == static_cast<uint64_t>(-1)) return "RTLD_NEXT";
    std::string s = fmt::format("{:#x}", e.handle);
    if (e.handle_object != format::kNoId) s.append(" ").append(object_label(e.handle_object));
    return s;
  }

  void arguments_and_result(const format::EventSlot& e, std::string& args, std::string& result) {
    const bool ok = e.bits & format::kEventOk;
    if (is_open_call(e.call)) {
      if (e.call == static_cast<uint16_t>(format::CallKind::kDlmopen)) {
        args = fmt::format("ns={}, ", e.lmid);
      }
      args.append(fmt::format("\"{}\", {}", string_or(e.name, "NULL"), flags_to_string(e.flags)));
      if ((e.bits & format::kEventOverridden) || e.flags != e.effective_flags) {
        args.append(fmt::format(" => {} [override]", flags_to_string(e.effective_flags)));
      }
      if (in_flight(e)) {
        result = "never returned: the process ended inside it";
        return;
      }
      if (!ok) {
        result = "NULL";
        return;
      }
      result = fmt::format("{:#x} {}", e.handle, object_label(e.object));
      if (e.bits & format::kEventNoLoad) result.append(" (already loaded)");
      auto fresh = model_.new_objects(e.seq);
      if (!fresh.empty()) {
        result.append(" new:");
        for (uint32_t id : fresh) result.append(" ").append(object_label(id));
      }
    } else if (is_sym_call(e.call)) {
      args = fmt::format("{}, \"{}\"", handle_text(e), string_or(e.name, "?"));
      if (e.call == static_cast<uint16_t>(format::CallKind::kDlvsym)) {
        args.append(fmt::format("@\"{}\"", string_or(e.version, "?")));
      }
      if (e.address == 0) {
        result = "NULL";
        return;
      }
      result = fmt::format("{:#x}", e.address);
      if (const ObjectRecord* o = model_.object_for(e.address, e.seq, e.object)) {
        result.append(fmt::format(" {}+{:#x}", model_.name_of(*o), e.address - o->base));
      }
    } else {
      args = handle_text(e);
      result = fmt::format("{}", e.result);
      auto gone = model_.unloaded_by(e.seq);
      if (!gone.empty()) {
        result.append(" unloaded:");
        for (uint32_t id : gone) result.append(" ").append(object_label(id));
      }
    }
  }

  // One JSON row per event, written as it is read. '<' is escaped so that no string can
  // close the <script> element that holds the data.
  void event_row(const format::EventSlot& e, int depth) {
    std::string args, result;
    arguments_and_result(e, args, result);
    std::string json =
        fmt::format("[{},{:.4f},{},", e.seq, model_.relative_ms(model_.time_ns(e)), e.tid);
    JsonWriter::append_string(json, call_name(e.call));
    json.append(fmt::format(",{},", depth));
    JsonWriter::append_string(json, args);
    json.push_back(',');
    JsonWriter::append_string(json, result);
    json.append(fmt::format(",{:.4f},", static_cast<double>(model_.duration_ns(e)) / 1e6));
    JsonWriter::append_string(json, reader_.has_string(e.error) ? reader_.string(e.error) : "");
    json.append((e.bits & format::kEventOk) ? ",1]" : ",0]");
    std::string safe;
    safe.reserve(json.size() + 8);
    for (char c : json) {
      if (c == '<')
        safe.append("\\u003c");
      else
        safe.push_back(c);
    }
    put(safe);
  }

  void events() {
    put("<section id=\"events\"><h2>Events</h2>\n<div id=\"controls\">"
        "<input id=\"filter\" type=\"search\" placeholder=\"filter: words that must all appear "
        "(call, file, symbol, tid, error...)\">"
        "<label><input id=\"failed-only\" type=\"checkbox\"> failed only</label>"
        "<button id=\"prev\">&larr; previous</button><button id=\"next\">next &rarr;</button>"
        "<span id=\"page-info\"></span></div>\n"
        "<table class=\"events\"><thead><tr><th class=\"asc\">seq</th><th>time (ms)</th>"
        "<th>tid</th><th>call</th><th>arguments</th><th>result</th><th>duration (ms)</th>"
        "<th>error</th></tr></thead><tbody></tbody></table>\n"
        "<noscript><p class=\"note\">The event table needs JavaScript.</p></noscript>\n"
        "</section>\n<script type=\"application/json\" id=\"events-data\">[");
    bool first = true;
    CallNesting nesting;  // as `show` indents
    reader_.for_each_event([&](const format::EventSlot& e) {
      const int depth = nesting.depth_of(e);
      if (!first) put(",\n");
      first = false;
      event_row(e, depth);
      return true;
    });
    put("]</script>\n");
  }

  const TraceReader& reader_;
  const TraceModel& model_;
  const LoadGraph& load_graph_;
  const ScopeGraph& scope_graph_;
  const ExplainResult& explain_;
  const HtmlReportOptions& options_;
  std::FILE* out_;
};

}  // namespace

absl::Status write_html_report(const HtmlReportContent& content, const HtmlReportOptions& options,
                               std::FILE* out) {
  return HtmlReport(content, options, out).run();
}

absl::Status write_html_report(const TraceReader& reader, const HtmlReportOptions& options,
                               std::FILE* out) {
  const TraceModel model(reader);
  const LoadGraph load_graph(model, PythonGrouping::kNone);
  ElfCache elf;
  const ScopeGraph scope_graph(model, elf);
  const ExplainResult findings = explain_trace(model, elf, scope_graph);
  return write_html_report({model, load_graph, scope_graph, findings}, options, out);
}

}  // namespace dltrace::viewer

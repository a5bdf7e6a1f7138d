#include "render/stats_json.h"

#include <optional>

#include "render/json_export.h"
#include "render/json_writer.h"

namespace dltrace::viewer {
namespace {

void py_line_json(JsonWriter& w, const std::optional<PyLine>& line) {
  if (!line) {
    w.null();
    return;
  }
  w.begin_object();
  w.key("file").value(line->file);
  w.key("line").value(line->line);
  w.key("function").value(line->function);
  w.end_object();
}

void process_json(JsonWriter& w, const TraceReader& reader) {
  const ProcessInfo& p = reader.process();
  const Recovery& r = reader.recovery();
  w.key("process").begin_object();
  w.key("pid").value(p.pid);
  w.key("exe").value(p.exe);
  write_process_end(w, p);
  w.end_object();
  w.key("completeness").begin_object();
  w.key("summary").value(end_text(p));
  w.key("complete").value(r.clean() && p.end != format::EndKind::kRunning);
  w.key("truncated").value(r.truncated);
  w.key("damaged").value(!r.clean());
  w.key("notes").begin_array();
  for (const auto& s : recovery_sentences(reader)) w.value(s);
  w.end_array();
  w.end_object();
}

void calls_json(JsonWriter& w, const TraceStats& stats) {
  w.key("calls").begin_object();
  for (uint16_t k = 1; k < kCallKinds; ++k) {
    w.key(call_name(k)).begin_object();
    w.key("total").value(stats.calls[k].total);
    w.key("failed").value(stats.calls[k].failed);
    w.end_object();
  }
  w.end_object();
  w.key("threads").begin_array();
  for (const ThreadStats& t : stats.threads) {
    w.begin_object();
    w.key("tid").value(t.tid);
    w.key("total").value(t.all.total);
    w.key("failed").value(t.all.failed);
    for (uint16_t k = 1; k < kCallKinds; ++k) w.key(call_name(k)).value(t.calls[k]);
    w.end_object();
  }
  w.end_array();
  w.key("top_symbols").begin_array();
  for (const SymbolStats& s : stats.top_symbols) {
    w.begin_object();
    w.key("symbol").value(s.symbol);
    w.key("version");
    if (s.version.empty()) {
      w.null();
    } else {
      w.value(s.version);
    }
    w.key("lookups").value(s.lookups.total);
    w.key("failed").value(s.lookups.failed);
    w.end_object();
  }
  w.end_array();
}

void slowest_loads_json(JsonWriter& w, const TraceStats& stats) {
  w.key("slowest_loads").begin_array();
  for (const LoadTiming& l : stats.slowest_loads) {
    w.begin_object();
    w.key("seq").value(l.seq);
    w.key("call").value(call_name(l.call));
    w.key("tid").value(l.tid);
    w.key("file");
    if (l.file) {
      w.value(*l.file);
    } else {
      w.null();
    }
    w.key("duration_ns").value(l.duration_ns);
    w.key("self_ns").value(l.self_ns);
    w.key("ok").value(l.ok);
    w.key("new_objects").value(l.new_objects);
    w.key("error");
    if (l.error.empty()) {
      w.null();
    } else {
      w.value(l.error);
    }
    w.end_object();
  }
  w.end_array();
}

void python_json(JsonWriter& w, const PythonLoads& python, const TraceModel& model) {
  w.key("python_loads").value(python.count);
  w.key("top_level_imports").begin_array();
  for (const TopLevelLoads& t : python.top_level) {
    w.begin_object();
    w.key("statement");
    py_line_json(w, t.line);
    w.key("total_ns").value(t.total_ns);
    w.key("loads").value(t.loads);
    w.key("objects").value(t.objects);
    w.key("failed").value(t.failed);
    w.key("truncated").value(t.truncated);
    w.end_object();
  }
  w.end_array();
  w.key("slowest_python_loads").begin_array();
  for (const PyLoad& l : python.slowest) {
    w.begin_object();
    w.key("seq").value(l.seq);
    w.key("file").value(l.file);
    w.key("module").value(python_module_name(l, model));
    w.key("duration_ns").value(l.duration_ns);
    w.key("ok").value(l.ok);
    w.key("nested").value(l.nested);
    w.key("via_import").value(l.where.via_import);
    w.key("import");
    py_line_json(w, l.where.site);
    w.key("top_level");
    py_line_json(w, l.where.top);
    w.end_object();
  }
  w.end_array();
}

}  // namespace

absl::Status write_stats_json(const TraceStats& stats, const TraceModel& model, std::FILE* out) {
  const TraceReader& reader = model.reader();
  JsonWriter w(out);
  w.begin_object();
  w.key("format").value("dltrace-stats");
  w.key("version").value(1);
  process_json(w, reader);
  w.key("in_flight").begin_array();  // calls the process ended inside
  for (const std::string& s : stats.in_flight) w.value(s);
  w.end_array();
  w.key("events").begin_object();
  w.key("recorded").value(reader.last_seq());
  w.key("readable").value(stats.readable);
  w.key("dropped").value(reader.recovery().dropped_events);
  w.end_object();
  w.key("failed_calls").value(stats.failed);
  w.key("failure_calls").value(stats.outcomes.failures);
  w.key("probe_calls").value(stats.outcomes.probes);
  calls_json(w, stats);
  slowest_loads_json(w, stats);
  python_json(w, stats.python, model);
  w.end_object();
  w.end_line();
  return w.finish();
}

}  // namespace dltrace::viewer

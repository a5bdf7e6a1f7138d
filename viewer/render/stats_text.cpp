#include "render/stats_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <utility>

#include "render/duration_text.h"
#include "render/visible_text.h"

namespace dltrace::viewer {
namespace {

class StatsText {
 public:
  StatsText(const TraceStats& stats, const TraceModel& model)
      : stats_(stats), model_(model), reader_(model.reader()) {}

  std::string text() && {
    summary();
    calls();
    threads();
    symbols();
    slowest_loads();
    python();
    return fmt::to_string(buf_);
  }

 private:
  template <typename... Args>
  void put(fmt::format_string<shown_t<Args>...> f, Args&&... args) {
    append_visible_format(buf_, f, std::forward<Args>(args)...);
  }

  void summary() {
    const ProcessInfo& p = reader_.process();
    const Recovery& r = reader_.recovery();
    put("process {}: {}\n", p.pid, p.exe.empty() ? "?" : p.exe);
    put("  end:       {}\n", end_text(p));
    for (const std::string& s : stats_.in_flight) put("             {}\n", s);
    if (r.clean()) {
      put("  trace:     complete (not truncated, nothing damaged)\n");
    } else {
      put("  trace:     truncated or damaged; what was recovered is counted below\n");
      for (const auto& s : recovery_sentences(reader_)) put("             {}\n", s);
    }
    put("  events:    {} recorded, {} readable, {} dropped\n", reader_.last_seq(), stats_.readable,
        r.dropped_events);
    put("  failed:    {} call(s)\n", stats_.failed);
    put("  outcome:   {} failure(s), {} probe(s) (misses the program expected: explain --probes)\n",
        stats_.outcomes.failures, stats_.outcomes.probes);
  }

  void calls() {
    put("\ncalls\n  {:<8} {:>10} {:>10}\n", "call", "total", "failed");
    for (uint16_t k = 1; k < kCallKinds; ++k) {
      put("  {:<8} {:>10} {:>10}\n", call_name(k), stats_.calls[k].total, stats_.calls[k].failed);
    }
    if (stats_.calls[0].total) {
      put("  {:<8} {:>10} {:>10}\n", "unknown", stats_.calls[0].total, stats_.calls[0].failed);
    }
  }

  void threads() {
    put("\nthreads\n  {:>8} {:>10} {:>8}", "tid", "calls", "failed");
    for (uint16_t k = 1; k <= format::kCallKindCount; ++k) put(" {:>8}", call_name(k));
    put("\n");
    for (const ThreadStats& t : stats_.threads) {
      put("  {:>8} {:>10} {:>8}", t.tid, t.all.total, t.all.failed);
      for (uint16_t k = 1; k <= format::kCallKindCount; ++k) put(" {:>8}", t.calls[k]);
      put("\n");
    }
  }

  void symbols() {
    const auto& symbols = stats_.top_symbols;
    put("\ntop {} symbol(s) looked up (of {})\n", symbols.size(), stats_.distinct_symbols);
    if (symbols.empty()) return;
    put("  {:>8} {:>8}  {}\n", "lookups", "failed", "symbol");
    for (const SymbolStats& s : symbols) {
      put("  {:>8} {:>8}  {}{}{}\n", s.lookups.total, s.lookups.failed, s.symbol,
          s.version.empty() ? "" : "@", s.version);
    }
  }

  void slowest_loads() {
    const auto& loads = stats_.slowest_loads;
    put("\nslowest {} load(s) (duration includes constructors; self excludes nested traced "
        "calls)\n",
        loads.size());
    if (loads.empty()) return;
    put("  {:>12} {:>12} {:>8}  {}\n", "duration", "self", "seq", "call");
    for (const LoadTiming& l : loads) {
      put("  {:>12} {:>12} {:>8}  {}({})", duration_text(l.duration_ns), duration_text(l.self_ns),
          l.seq, call_name(l.call), l.file ? fmt::format("\"{}\"", *l.file) : "NULL");
      if (!l.ok) {
        put(" failed{}{}", l.error.empty() ? "" : ": ", l.error);
      } else if (l.new_objects) {
        put(" +{} object(s)", l.new_objects);
      }
      put("\n");
    }
  }

  // The native-load complement of `python -X importtime`: time in dlopen (constructors included)
  // per top-level statement of the script, then the slowest single loads with the import that
  // caused each. Nothing for a process that ran no Python code.
  void python() {
    const PythonLoads& python = stats_.python;
    if (python.count == 0) return;
    SourceLines sources(reader_.process().cwd);
    const size_t statements = std::min(stats_.top, python.top_level.size());
    put("\nnative load time per top-level import: {} of {} statement(s), {} dlopen call(s) from "
        "Python\n"
        "(dlopen time including constructors; nested loads count once, in the load around them)\n",
        statements, python.top_level.size(), python.count);
    if (statements) {
      // calls: every dlopen made for the statement, also of objects already loaded.
      put("  {:>12} {:>6} {:>8}  {}\n", "total", "calls", "objects", "statement");
      for (size_t k = 0; k < statements; ++k) {
        const TopLevelLoads& t = python.top_level[k];
        put("  {:>12} {:>6} {:>8}  {}", duration_text(t.total_ns), t.loads, t.objects,
            py_line_text(t.line));
        if (const auto source = sources.line(t.line.file, t.line.line)) put(": {}", *source);
        if (t.failed) put(" ({} failed)", t.failed);
        if (t.truncated) put(" (Python stack cut at {} frames)", kRecordedPythonFrames);
        put("\n");
      }
    }
    put("\nslowest {} load(s) from Python (of {}), with the import that caused each\n",
        python.slowest.size(), python.count);
    if (python.slowest.empty()) return;
    put("  {:>12} {:>8}  {}\n", "duration", "seq", "module  <- statement");
    for (const PyLoad& l : python.slowest) {
      put("  {:>12} {:>8}  {}", duration_text(l.duration_ns), l.seq, python_module_name(l, model_));
      if (!l.ok) put(" (failed)");
      if (l.where.site) {
        put("  <- {}{}", l.where.via_import ? "import at " : "", py_line_text(*l.where.site));
      }
      if (l.where.top && l.where.top != l.where.site) {
        put(" <- {}", py_line_text(*l.where.top));
      }
      put("\n");
    }
  }

  const TraceStats& stats_;
  const TraceModel& model_;
  const TraceReader& reader_;
  fmt::memory_buffer buf_;
};

}  // namespace

std::string stats_text(const TraceStats& stats, const TraceModel& model) {
  return StatsText(stats, model).text();
}

}  // namespace dltrace::viewer

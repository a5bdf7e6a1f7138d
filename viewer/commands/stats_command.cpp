// `dltrace stats TRACE [--top N] [--json]`: counts per call and per thread, the most looked-up
// symbols, the slowest loads (total and self time), dropped events and how complete the trace is.
//
// One pass over the events with bounded memory: per-call, per-thread and per-symbol aggregates,
// a per-thread stack of the calls still open (for self time), the N slowest loads, and the loads
// made from Python summed per Python stack (analysis/python_imports).
#include "commands/stats_command.h"

#include <algorithm>
#include <array>
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "absl/container/flat_hash_map.h"
#include "analysis/outcome.h"
#include "analysis/python_imports.h"
#include "commands/command.h"
#include "model/trace_model.h"
#include "render/duration_text.h"
#include "render/json_export.h"
#include "render/json_writer.h"
#include "util/progress.h"

namespace dltrace::viewer {
namespace {

constexpr size_t kCalls = 6;  // CallKind 1..5; slot 0 counts unknown calls
constexpr size_t kMaxOpenDepth = 64;  // a damaged trace must not grow the per-thread stack

struct Count {
  uint64_t total = 0;
  uint64_t failed = 0;
  void add(bool ok) {
    ++total;
    if (!ok) ++failed;
  }
};

struct ThreadStats {
  uint32_t tid = 0;
  Count all;
  std::array<uint64_t, kCalls> calls{};
};

struct SymbolStats {
  std::string symbol;
  std::string version;  // dlvsym only
  Count lookups;
};

// One dlopen/dlmopen call, once its nested calls are all known.
struct Load {
  uint64_t seq = 0;
  uint16_t call = 0;
  uint32_t tid = 0;
  std::optional<std::string> file;  // nullopt: dlopen(NULL)
  uint64_t duration_ns = 0;
  uint64_t self_ns = 0;
  bool ok = false;
  size_t new_objects = 0;
  std::string error;
};

// A traced call still open on a thread: its seq and the time of its direct children so far.
struct Open {
  uint64_t seq;
  uint64_t duration_ns;
  uint64_t children_ns;
  format::EventSlot event;  // kept only for open calls (finalized into a Load)
};

size_t call_index(uint16_t call) { return call >= 1 && call < kCalls ? call : 0; }

class StatsCollector {
 public:
  StatsCollector(const TraceReader& reader, size_t top)
      : reader_(reader), model_(reader), top_(top), python_loads_(reader_, model_, top) {}

  void event(const format::EventSlot& e) {
    const bool ok = (e.bits & format::kEventOk) != 0;
    ++readable_;
    if (!ok) ++failed_;
    calls_[call_index(e.call)].add(ok);

    ThreadStats& t = threads_[e.tid];
    t.tid = e.tid;
    t.all.add(ok);
    ++t.calls[call_index(e.call)];

    if (is_sym_call(e.call)) symbol(e, ok);
    nesting(e);
    python_loads_.add(e);
  }

  // Closes the calls still open at the end of the trace.
  void finish() {
    for (auto& [tid, stack] : open_) {
      while (!stack.empty()) pop(stack);
    }
    open_.clear();
    std::ranges::sort(slowest_, [](const Load& a, const Load& b) {
      return a.duration_ns != b.duration_ns ? a.duration_ns > b.duration_ns : a.seq < b.seq;
    });
    python_ = std::move(python_loads_).finish();
  }

  void print_text(std::FILE* out);
  void print_json(JsonWriter& w) const;
  // The failed calls by class, as explain counts them (analysis/outcome.h).
  void set_outcomes(const OutcomeCounts& counts) { outcomes_ = counts; }

 private:
  // The module's file name: the resolved object's, else the requested one's.
  std::string module_name(const PyLoad& l) const {
    if (const ObjectRecord* o = l.object != format::kNoId ? reader_.object(l.object) : nullptr) {
      return model_.name_of(*o);
    }
    return l.file.empty() ? std::string("NULL") : std::string(basename_of(l.file));
  }

  void python_text(fmt::memory_buffer& b);
  void python_json(JsonWriter& w) const;
  void symbol(const format::EventSlot& e, bool ok) {
    std::string key(reader_.has_string(e.name) ? reader_.string(e.name) : "?");
    const bool versioned = e.call == static_cast<uint16_t>(format::CallKind::kDlvsym);
    std::string version;
    if (versioned) {
      version = reader_.has_string(e.version) ? reader_.string(e.version) : "?";
      key += '@';
      key += version;
    }
    auto [it, fresh] = symbols_.try_emplace(std::move(key));
    if (fresh) {
      it->second.symbol = reader_.has_string(e.name) ? reader_.string(e.name) : "?";
      it->second.version = std::move(version);
    }
    it->second.lookups.add(ok);
  }

  // parent_seq names the enclosing traced call on the same thread, and a parent's seq comes
  // before its children's: a per-thread stack of open calls finds it, and a call is complete
  // (all its children seen) once an event on its thread is not nested in it.
  void nesting(const format::EventSlot& e) {
    auto& stack = open_[e.tid];
    while (!stack.empty() && stack.back().seq != e.parent_seq) pop(stack);
    const uint64_t duration = model_.duration_ns(e);
    if (!stack.empty()) stack.back().children_ns += duration;
    if (stack.size() >= kMaxOpenDepth) pop(stack);
    stack.push_back(Open{e.seq, duration, 0, e});
  }

  void pop(std::vector<Open>& stack) {
    const Open done = stack.back();
    stack.pop_back();
    if (is_open_call(done.event.call)) loaded(done);
  }

  void loaded(const Open& o) {
    const format::EventSlot& e = o.event;
    Load load;
    load.seq = e.seq;
    load.call = e.call;
    load.tid = e.tid;
    load.duration_ns = o.duration_ns;
    load.self_ns = o.duration_ns - std::min(o.duration_ns, o.children_ns);
    if (top_ == 0) return;
    // Keep the N slowest (ties: the earlier call) without holding every load.
    if (slowest_.size() >= top_) {
      auto fastest = std::ranges::min_element(slowest_, [](const Load& a, const Load& b) {
        return a.duration_ns != b.duration_ns ? a.duration_ns < b.duration_ns : a.seq > b.seq;
      });
      if (fastest->duration_ns >= load.duration_ns) return;
      slowest_.erase(fastest);
    }
    if (reader_.has_string(e.name)) load.file = std::string(reader_.string(e.name));
    load.ok = (e.bits & format::kEventOk) != 0;
    load.new_objects = model_.new_objects(e.seq).size();
    if (reader_.has_string(e.error)) load.error = reader_.string(e.error);
    slowest_.push_back(std::move(load));
  }

  std::vector<const SymbolStats*> top_symbols() const {
    std::vector<const SymbolStats*> out;
    out.reserve(symbols_.size());
    for (const auto& [key, s] : symbols_) out.push_back(&s);
    auto by_count = [](const SymbolStats* a, const SymbolStats* b) {
      if (a->lookups.total != b->lookups.total) return a->lookups.total > b->lookups.total;
      if (a->symbol != b->symbol) return a->symbol < b->symbol;
      return a->version < b->version;
    };
    const size_t n = std::min(top_, out.size());
    std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), out.end(), by_count);
    out.resize(n);
    return out;
  }

  std::vector<const ThreadStats*> thread_list() const {
    std::vector<const ThreadStats*> out;
    for (const auto& [tid, t] : threads_) out.push_back(&t);
    std::ranges::sort(out, {}, &ThreadStats::tid);
    return out;
  }

  // "exited with status 0", "killed by signal 9 (SIGKILL)", "exec'ed /usr/bin/ls", ...
  std::string end_text() const { return viewer::end_text(reader_.process()); }

  const TraceReader& reader_;
  TraceModel model_;
  size_t top_;
  uint64_t readable_ = 0;
  uint64_t failed_ = 0;
  std::array<Count, kCalls> calls_{};
  absl::flat_hash_map<uint32_t, ThreadStats> threads_;
  absl::flat_hash_map<std::string, SymbolStats> symbols_;
  absl::flat_hash_map<uint32_t, std::vector<Open>> open_;
  std::vector<Load> slowest_;
  PythonLoadCollector python_loads_;  // loads made by Python code, attributed to their statements
  PythonLoads python_;                // what it found, once finished
  OutcomeCounts outcomes_;
};

// The native-load complement of `python -X importtime`: time in dlopen (constructors included)
// per top-level statement of the script, then the slowest single loads with the import that
// caused each. Nothing for a process that ran no Python code.
void StatsCollector::python_text(fmt::memory_buffer& b) {
  if (python_.count == 0) return;
  auto put = [&b]<typename... Args>(fmt::format_string<Args...> f, Args&&... args) {
    fmt::format_to(std::back_inserter(b), f, std::forward<Args>(args)...);
  };
  SourceLines sources(reader_.process().cwd);
  const size_t statements = std::min(top_, python_.top_level.size());
  put("\nnative load time per top-level import: {} of {} statement(s), {} dlopen call(s) from "
      "Python\n"
      "(dlopen time including constructors; nested loads count once, in the load around them)\n",
      statements, python_.top_level.size(), python_.count);
  if (statements) {
    // calls: every dlopen made for the statement, also of objects already loaded.
    put("  {:>12} {:>6} {:>8}  {}\n", "total", "calls", "objects", "statement");
    for (size_t k = 0; k < statements; ++k) {
      const TopLevelLoads& t = python_.top_level[k];
      put("  {:>12} {:>6} {:>8}  {}", duration_text(t.total_ns), t.loads, t.objects,
          py_line_text(t.line));
      if (const auto source = sources.line(t.line.file, t.line.line)) put(": {}", *source);
      if (t.failed) put(" ({} failed)", t.failed);
      if (t.truncated) put(" (Python stack cut at {} frames)", kRecordedPythonFrames);
      put("\n");
    }
  }
  put("\nslowest {} load(s) from Python (of {}), with the import that caused each\n",
      python_.slowest.size(), python_.count);
  if (python_.slowest.empty()) return;
  put("  {:>12} {:>8}  {}\n", "duration", "seq", "module  <- statement");
  for (const PyLoad& l : python_.slowest) {
    put("  {:>12} {:>8}  {}", duration_text(l.duration_ns), l.seq, module_name(l));
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

void StatsCollector::print_text(std::FILE* out) {
  fmt::memory_buffer b;
  auto put = [&b]<typename... Args>(fmt::format_string<Args...> f, Args&&... args) {
    fmt::format_to(std::back_inserter(b), f, std::forward<Args>(args)...);
  };
  const ProcessInfo& p = reader_.process();
  const Recovery& r = reader_.recovery();
  put("process {}: {}\n", p.pid, p.exe.empty() ? "?" : p.exe);
  put("  end:       {}\n", end_text());
  if (r.clean()) {
    put("  trace:     complete (not truncated, nothing damaged)\n");
  } else {
    put("  trace:     truncated or damaged; what was recovered is counted below\n");
    for (const auto& s : recovery_sentences(reader_)) put("             {}\n", s);
  }
  put("  events:    {} recorded, {} readable, {} dropped\n", reader_.last_seq(), readable_,
      r.dropped_events);
  put("  failed:    {} call(s)\n", failed_);
  put("  outcome:   {} failure(s), {} probe(s) (misses the program expected: explain --probes)\n",
      outcomes_.failures, outcomes_.probes);

  put("\ncalls\n  {:<8} {:>10} {:>10}\n", "call", "total", "failed");
  for (uint16_t k = 1; k < kCalls; ++k) {
    put("  {:<8} {:>10} {:>10}\n", call_name(k), calls_[k].total, calls_[k].failed);
  }
  if (calls_[0].total) put("  {:<8} {:>10} {:>10}\n", "unknown", calls_[0].total, calls_[0].failed);

  put("\nthreads\n  {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n", "tid", "calls", "failed",
      "dlopen", "dlmopen", "dlsym", "dlvsym", "dlclose");
  for (const ThreadStats* t : thread_list()) {
    put("  {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}\n", t->tid, t->all.total, t->all.failed,
        t->calls[1], t->calls[2], t->calls[3], t->calls[4], t->calls[5]);
  }

  const auto symbols = top_symbols();
  put("\ntop {} symbol(s) looked up (of {})\n", symbols.size(), symbols_.size());
  if (!symbols.empty()) {
    put("  {:>8} {:>8}  {}\n", "lookups", "failed", "symbol");
    for (const SymbolStats* s : symbols) {
      put("  {:>8} {:>8}  {}{}{}\n", s->lookups.total, s->lookups.failed, s->symbol,
          s->version.empty() ? "" : "@", s->version);
    }
  }

  put("\nslowest {} load(s) (duration includes constructors; self excludes nested traced calls)\n",
      slowest_.size());
  if (!slowest_.empty()) {
    put("  {:>12} {:>12} {:>8}  {}\n", "duration", "self", "seq", "call");
    for (const Load& l : slowest_) {
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
  python_text(b);
  std::fwrite(b.data(), 1, b.size(), out);
}

void StatsCollector::print_json(JsonWriter& w) const {
  const ProcessInfo& p = reader_.process();
  const Recovery& r = reader_.recovery();
  w.begin_object();
  w.key("format").value("dltrace-stats");
  w.key("version").value(1);
  w.key("process").begin_object();
  w.key("pid").value(p.pid);
  w.key("exe").value(p.exe);
  write_process_end(w, p);
  w.end_object();
  w.key("completeness").begin_object();
  w.key("summary").value(end_text());
  w.key("complete").value(r.clean() && p.end != format::EndKind::kRunning);
  w.key("truncated").value(r.truncated);
  w.key("damaged").value(!r.clean());
  w.key("notes").begin_array();
  for (const auto& s : recovery_sentences(reader_)) w.value(s);
  w.end_array();
  w.end_object();
  w.key("events").begin_object();
  w.key("recorded").value(reader_.last_seq());
  w.key("readable").value(readable_);
  w.key("dropped").value(r.dropped_events);
  w.end_object();
  w.key("failed_calls").value(failed_);
  w.key("failure_calls").value(outcomes_.failures);
  w.key("probe_calls").value(outcomes_.probes);
  w.key("calls").begin_object();
  for (uint16_t k = 1; k < kCalls; ++k) {
    w.key(call_name(k)).begin_object();
    w.key("total").value(calls_[k].total);
    w.key("failed").value(calls_[k].failed);
    w.end_object();
  }
  w.end_object();
  w.key("threads").begin_array();
  for (const ThreadStats* t : thread_list()) {
    w.begin_object();
    w.key("tid").value(t->tid);
    w.key("total").value(t->all.total);
    w.key("failed").value(t->all.failed);
    for (uint16_t k = 1; k < kCalls; ++k) w.key(call_name(k)).value(t->calls[k]);
    w.end_object();
  }
  w.end_array();
  w.key("top_symbols").begin_array();
  for (const SymbolStats* s : top_symbols()) {
    w.begin_object();
    w.key("symbol").value(s->symbol);
    w.key("version");
    if (s->version.empty()) w.null(); else w.value(s->version);
    w.key("lookups").value(s->lookups.total);
    w.key("failed").value(s->lookups.failed);
    w.end_object();
  }
  w.end_array();
  w.key("slowest_loads").begin_array();
  for (const Load& l : slowest_) {
    w.begin_object();
    w.key("seq").value(l.seq);
    w.key("call").value(call_name(l.call));
    w.key("tid").value(l.tid);
    w.key("file");
    if (l.file) w.value(*l.file); else w.null();
    w.key("duration_ns").value(l.duration_ns);
    w.key("self_ns").value(l.self_ns);
    w.key("ok").value(l.ok);
    w.key("new_objects").value(l.new_objects);
    w.key("error");
    if (l.error.empty()) w.null(); else w.value(l.error);
    w.end_object();
  }
  w.end_array();
  python_json(w);
  w.end_object();
  w.end_line();
}

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

void StatsCollector::python_json(JsonWriter& w) const {
  w.key("python_loads").value(python_.count);
  w.key("top_level_imports").begin_array();
  for (const TopLevelLoads& t : python_.top_level) {
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
  for (const PyLoad& l : python_.slowest) {
    w.begin_object();
    w.key("seq").value(l.seq);
    w.key("file").value(l.file);
    w.key("module").value(module_name(l));
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

absl::Status run_stats(const StatsOptions& o) {
  auto reader = open_trace(o.trace);
  if (!reader.ok()) return reader.status();
  const auto source = with_progress(**reader);  // prints at the end
  return stats_trace(*source, o, stdout);
}

}  // namespace

absl::Status stats_trace(const TraceReader& reader, const StatsOptions& options, std::FILE* out) {
  StatsCollector stats(reader, options.top);
  reader.for_each_event([&](const format::EventSlot& e) {
    stats.event(e);
    return true;
  });
  stats.finish();
  stats.set_outcomes(count_outcomes(reader));
  if (options.json) {
    JsonWriter w(out);
    stats.print_json(w);
    DLTRACE_RETURN_IF_ERROR(w.finish());
  } else {
    stats.print_text(out);
  }
  if (std::fflush(out) != 0 || std::ferror(out)) return TraceError("cannot write the output");
  return absl::OkStatus();
}

void register_stats_command(CLI::App& app, CommandResult& result) {
  auto opts = std::make_shared<StatsOptions>();
  CLI::App* cmd = app.add_subcommand(
      "stats",
      "Summary of a trace: how the process ended and whether the trace is complete (clean exit,\n"
      "killed by a signal, no clean end recorded, truncated or damaged), events recorded /\n"
      "readable / dropped, calls per kind and per thread (total and failed), the symbols looked\n"
      "up most often (dlsym/dlvsym, with failures) and the slowest dlopen/dlmopen calls.\n"
      "A load's duration includes the constructors it ran; its self time subtracts the traced\n"
      "calls nested in it (e.g. a constructor's own dlopen), so a slow plugin that only looks\n"
      "slow because it loads another one shows a small self time.\n\n"
      "Example:\n"
      "  dltrace run -o app.trace -- python3 app.py\n"
      "  dltrace stats app.trace --top 5\n"
      "  dltrace stats app.trace --json | jq '.slowest_loads[0]'");
  cmd->add_option("trace", opts->trace, "trace file written by `dltrace run`")->required();
  cmd->add_option("--top,-n", opts->top, "rows in the top-symbols and slowest-loads tables")
      ->capture_default_str();
  cmd->add_flag("--json", opts->json, "one JSON object instead of text (format \"dltrace-stats\")");
  cmd->callback([opts, &result] { result.set(run_stats(*opts)); });
}

}  // namespace dltrace::viewer

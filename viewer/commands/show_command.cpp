// `dltrace show TRACE`: the event log, one event per line, nested calls indented.
#include <charconv>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <csignal>
#include <cstring>

#include "analysis/symbolizer.h"
#include "commands/command.h"
#include "commands/show_command.h"
#include "dltrace/flags.h"
#include "model/trace_model.h"
#include "util/progress.h"

namespace dltrace::viewer {
namespace {

struct Filter {
  uint64_t first = 0;
  uint64_t last = UINT64_MAX;
  uint32_t call_mask = 0;  // bit per CallKind; 0 = all
  bool failed_only = false;

  bool accepts(const format::EventSlot& e) const {
    if (e.seq < first || e.seq > last) return false;
    if (call_mask != 0 && (e.call >= 32 || !(call_mask & (1u << e.call)))) return false;
    if (failed_only && (e.bits & format::kEventOk)) return false;
    return true;
  }
};

bool parse_u64(std::string_view s, uint64_t* out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

absl::StatusOr<Filter> make_filter(const ShowOptions& o) {
  Filter f;
  f.failed_only = o.failed;
  if (!o.seq_range.empty()) {
    std::string_view r = o.seq_range;
    const size_t dash = r.find('-');
    std::string_view a = r.substr(0, dash);
    std::string_view b = dash == std::string_view::npos ? a : r.substr(dash + 1);
    if ((!a.empty() && !parse_u64(a, &f.first)) || (!b.empty() && !parse_u64(b, &f.last)) ||
        (a.empty() && b.empty())) {
      return UsageError(fmt::format("--seq '{}': expected A-B, A-, -B or A", o.seq_range));
    }
  }
  for (const auto& list : o.calls) {
    // CLI11 already split on ','; split again in case a value still holds one.
    for (std::string_view rest = list; !rest.empty();) {
      const size_t comma = rest.find(',');
      const std::string_view name = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (name.empty()) continue;
      bool known = false;
      for (uint16_t k = 1; k <= 5; ++k) {
        if (call_name(k) == name) {
          f.call_mask |= 1u << k;
          known = true;
        }
      }
      if (!known) {
        return UsageError(fmt::format("--call: unknown call '{}'; use dlopen, dlmopen, dlsym, dlvsym, dlclose", name));
      }
    }
  }
  return f;
}

std::string signal_text(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? fmt::format("signal {} (SIG{})", sig, abbrev) : fmt::format("signal {}", sig);
}

class ShowPrinter {
 public:
  ShowPrinter(const TraceReader& reader, bool stacks, std::FILE* out)
      : out_(out),
        reader_(reader), model_(reader), stacks_(stacks), symbolizer_(reader.process().exe) {}

  void header() {
    const ProcessInfo& p = reader_.process();
    out("process {} (parent {}): {}\n", p.pid, p.ppid, p.exe.empty() ? "?" : p.exe);
    std::string argv;
    for (const auto& a : p.argv) {
      if (!argv.empty()) argv += ' ';
      argv += a;
    }
    out("  argv: {}\n", argv);
    switch (p.end) {
      case format::EndKind::kExit:
        out("  end: exited with status {} after {:.3f} ms\n", p.end_code,
            model_.relative_ms(p.end_monotonic_ns));
        break;
      case format::EndKind::kSignal:
        out("  end: killed by {} after {:.3f} ms\n", signal_text(p.end_code),
            model_.relative_ms(p.end_monotonic_ns));
        break;
      case format::EndKind::kRunning:
        out("  end: no clean end recorded: the process was killed or is still running\n");
        break;
    }
    if (!p.config.empty()) out("  config: {}\n", p.config);
    if (p.recorder_flags & format::kRecorderCallerEmulated) {
      out("  note: callers were emulated (no return-address trampoline); the caller object of "
          "a call may be approximate\n");
    }
    out("  events: {} recorded, {} readable\n", reader_.last_seq(),
        reader_.last_seq() - std::min(reader_.last_seq(), reader_.recovery().dropped_events));
    for (const auto& s : recovery_sentences(reader_)) out("  recovery: {}\n", s);
    out("{:>10}  {:>7}  {}\n", "time(ms)", "tid", "call");
  }

  void event(const format::EventSlot& e) {
    const int depth = depth_of(e);
    out("{:>10.3f}  {:>7}  {:{}}{}", model_.relative_ms(model_.time_ns(e)), e.tid, "", depth * 2,
        call_name(e.call));
    if (is_open_call(e.call)) {
      open_event(e);
    } else if (is_sym_call(e.call)) {
      sym_event(e);
    } else if (is_close_call(e.call)) {
      close_event(e);
    } else {
      out("(?)");
    }
    out("  [{:.3f} ms]", static_cast<double>(model_.duration_ns(e)) / 1e6);
    if (e.error != format::kNoId && reader_.has_string(e.error)) {
      out("  error: {}", reader_.string(e.error));
    }
    out("\n");
    if (stacks_) stack(e, depth);
  }

  void flush() {
    std::fwrite(buf_.data(), 1, buf_.size(), out_);
    buf_.clear();
  }

 private:
  template <typename... Args>
  void out(fmt::format_string<Args...> f, Args&&... args) {
    fmt::format_to(std::back_inserter(buf_), f, std::forward<Args>(args)...);
    if (buf_.size() > (1u << 20)) flush();
  }

  // Depth from parent_seq: a per-thread stack of enclosing calls (events come in seq order and a
  // parent's seq is reserved before its children's).
  int depth_of(const format::EventSlot& e) {
    auto& st = open_[e.tid];
    while (!st.empty() && st.back().first != e.parent_seq) st.pop_back();
    int depth = 0;
    if (e.parent_seq != 0) depth = st.empty() ? 1 : st.back().second + 1;
    if (st.size() > 64) st.clear();  // a damaged trace must not grow this without bound
    st.emplace_back(e.seq, depth);
    return depth;
  }

  std::string quoted(uint32_t id) const {
    if (id == format::kNoId) return "NULL";
    if (!reader_.has_string(id)) return "\"?\"";
    return fmt::format("\"{}\"", reader_.string(id));
  }

  std::string object_label(uint32_t id) const {
    const ObjectRecord* o = reader_.object(id);
    return o ? model_.name_of(*o) : std::string("?");
  }

  std::string handle_text(const format::EventSlot& e) const {
    if (is_sym_call(e.call) && e.handle == 0) return "RTLD_DEFAULT";
    if (is_sym_call(e.call) && e.handle == static_cast<uint64_t>(-1)) return "RTLD_NEXT";
    std::string s = fmt::format("{:#x}", e.handle);
    if (e.handle_object != format::kNoId) s += " " + object_label(e.handle_object);
    return s;
  }

  void open_event(const format::EventSlot& e) {
    out("(");
    if (e.call == static_cast<uint16_t>(format::CallKind::kDlmopen)) out("ns={}, ", e.lmid);
    out("{}, {}", quoted(e.name), flags_to_string(e.flags));
    if ((e.bits & format::kEventOverridden) || e.flags != e.effective_flags) {
      out(" => {} [override", flags_to_string(e.effective_flags));
      const auto& config = reader_.process().config;
      if (!config.empty() || e.override_line) {
        out(" {}:{}", config.empty() ? "config" : basename_of(config), e.override_line);
      }
      out("]");
    }
    out(")");
    if (!(e.bits & format::kEventOk) && e.handle == 0) {
      out(" = NULL");
      return;
    }
    out(" = {:#x}", e.handle);
    if (const ObjectRecord* o = reader_.object(e.object)) {
      // The full path only when it says more than the requested name.
      const std::string_view path = model_.path_of(*o);
      const bool same = e.name != format::kNoId && reader_.string(e.name) == path;
      out(" {}", same || path.empty() ? model_.name_of(*o) : std::string(path));
    }
    if (e.bits & format::kEventNoLoad) out(" (already loaded)");
    auto fresh = model_.new_objects(e.seq);
    if (!fresh.empty()) {
      out(" new:");
      for (uint32_t id : fresh) out(" {}", object_label(id));
    }
  }

  void sym_event(const format::EventSlot& e) {
    out("({}, {}", handle_text(e), quoted(e.name));
    if (e.call == static_cast<uint16_t>(format::CallKind::kDlvsym)) out("@{}", quoted(e.version));
    out(")");
    if (e.address == 0) {
      out(" = NULL");
      return;
    }
    out(" = {:#x}", e.address);
    const ObjectRecord* o = model_.object_for(e.address, e.seq, e.object);
    if (o) out(" {}+{:#x}", model_.name_of(*o), e.address - o->base);
  }

  void close_event(const format::EventSlot& e) {
    out("({}) = {}", handle_text(e), e.result);
    auto gone = model_.unloaded_by(e.seq);
    if (!gone.empty()) {
      out(" unloaded:");
      for (size_t i = 0; i < gone.size(); ++i) out("{} {}", i ? "," : "", object_label(gone[i]));
    } else if (e.bits & format::kEventUnloaded) {
      out(" unloaded");
    }
  }

  void stack(const format::EventSlot& e, int depth) {
    const int indent = 21 + depth * 2;
    if (e.stack != format::kNoId) {
      int i = 0;
      for (uint64_t ip : reader_.stack(e.stack)) {
        out("{:{}}#{:<2} {:#x}", "", indent, i++, ip);
        const ObjectRecord* o = ip ? reader_.object_at(ip - 1, e.seq) : nullptr;
        if (o) {
          const SymbolInfo& s = symbolizer_.lookup(*o, ip);
          out(" {}", model_.name_of(*o));
          if (!s.function.empty()) {
            out(" {}+{:#x}", s.function, s.function_offset);
          } else {
            out("+{:#x}", ip - o->base);
          }
          if (!s.file.empty()) out(" ({}:{})", s.file, s.line);
        } else {
          out(" ?");
        }
        out("\n");
      }
    }
    if (e.py_stack != format::kNoId) {
      for (const format::PyFrame& f : reader_.py_stack(e.py_stack)) {
        out("{:{}}py {}:{} {}\n", "", indent, reader_.string(f.file), f.line,
            reader_.string(f.function));
      }
    }
  }

  std::FILE* out_;
  const TraceReader& reader_;
  TraceModel model_;
  bool stacks_;
  Symbolizer symbolizer_;
  fmt::memory_buffer buf_;
  absl::flat_hash_map<uint32_t, std::vector<std::pair<uint64_t, int>>> open_;
};

absl::Status run_show(const ShowOptions& o) {
  if (auto filter = make_filter(o); !filter.ok()) return filter.status();  // usage errors first
  auto reader = open_trace(o.trace);
  if (!reader.ok()) return reader.status();
  const auto source = with_progress(**reader, stdout);  // the log streams to stdout
  return show_trace(*source, o, stdout);
}

}  // namespace

absl::Status show_trace(const TraceReader& reader, const ShowOptions& o, std::FILE* out) {
  auto filter = make_filter(o);
  if (!filter.ok()) return filter.status();
  ShowPrinter printer(reader, o.stacks, out);
  printer.header();
  const Filter& f = *filter;
  reader.for_each_event([&](const format::EventSlot& e) {
    if (f.accepts(e)) printer.event(e);
    return true;
  });
  printer.flush();
  if (std::fflush(out) != 0 || std::ferror(out)) return TraceError("cannot write the output");
  return absl::OkStatus();
}

void register_show_command(CLI::App& app, CommandResult& result) {
  auto opts = std::make_shared<ShowOptions>();
  CLI::App* cmd = app.add_subcommand(
      "show",
      "The event log: one line per dlopen/dlmopen/dlsym/dlvsym/dlclose call, in order:\n"
      "time (ms since the process started), thread id, the call with its arguments and decoded\n"
      "flags (requested => effective when an override changed them), the result (opened\n"
      "object and the objects it brought in; symbol address with its defining object+offset;\n"
      "dlclose result and what it unloaded), duration and the dlerror() text. Calls made inside\n"
      "another traced call (e.g. from a constructor) are indented under it.\n"
      "The header says how the process ended and what could not be recovered from a damaged\n"
      "or truncated trace.\n\n"
      "Example:\n"
      "  dltrace run -- python3 app.py\n"
      "  dltrace show dltrace.python3.1234.trace --failed\n"
      "  dltrace show dltrace.python3.1234.trace --call dlopen --stacks");
  cmd->add_option("trace", opts->trace, "trace file written by `dltrace run`")->required();
  cmd->add_flag("--stacks", opts->stacks,
                "print the symbolized native stack (and Python stack) under each event");
  cmd->add_option("--seq", opts->seq_range, "only events with seq in A-B (A-, -B, A also work)");
  cmd->add_option("--call", opts->calls, "only these calls, comma-separated: dlopen,dlsym,...")
      ->delimiter(',');
  cmd->add_flag("--failed", opts->failed, "only calls that failed");
  cmd->callback([opts, &result] { result.set(run_show(*opts)); });
}

}  // namespace dltrace::viewer

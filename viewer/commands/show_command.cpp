// `dltrace show TRACE`: the event log, one event per line, nested calls indented; with
// --follow, the log of a trace that is still being written, like tail -f.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

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
      for (uint16_t k = 1; k <= format::kCallKindCount; ++k) {
        if (call_name(k) == name) {
          f.call_mask |= 1u << k;
          known = true;
        }
      }
      if (!known) {
        std::string names;
        for (uint16_t k = 1; k <= format::kCallKindCount; ++k)
          names += fmt::format("{}{}", k > 1 ? ", " : "", call_name(k));
        return UsageError(fmt::format("--call: unknown call '{}'; use {}", name, names));
      }
    }
  }
  return f;
}

// Per-thread stacks of enclosing calls, for the indentation of nested calls. Kept apart from the
// printer so that --follow carries it from one read of the trace to the next.
class NestingTracker {
 public:
  // Depth from parent_seq: events come in seq order and a parent's seq is reserved before its
  // children's.
  int depth_of(const format::EventSlot& e) {
    auto& st = open_[e.tid];
    while (!st.empty() && st.back().first != e.parent_seq) st.pop_back();
    int depth = 0;
    if (e.parent_seq != 0) depth = st.empty() ? 1 : st.back().second + 1;
    if (st.size() > 64) st.clear();  // a damaged trace must not grow this without bound
    st.emplace_back(e.seq, depth);
    return depth;
  }

 private:
  absl::flat_hash_map<uint32_t, std::vector<std::pair<uint64_t, int>>> open_;
};

class ShowPrinter {
 public:
  ShowPrinter(const TraceReader& reader, bool stacks, bool color, NestingTracker& nesting,
              std::FILE* out)
      : out_(out),
        reader_(reader),
        model_(reader),
        stacks_(stacks),
        style_{color},
        nesting_(nesting),
        symbolizer_(reader.process().exe) {}

  // `following`: the trace is still being written, so "no end yet" is the normal case.
  void header(bool following = false) {
    const ProcessInfo& p = reader_.process();
    out("process {} (parent {}){}: {}\n", p.pid, p.ppid, outer_pids_text(p),
        p.exe.empty() ? "?" : p.exe);
    std::string argv;
    for (const auto& a : p.argv) {
      if (!argv.empty()) argv += ' ';
      argv += a;
    }
    out("  argv: {}\n", argv);
    if (following && p.end == format::EndKind::kRunning) {
      out("  end: still running; following the trace (Ctrl-C to stop)\n");
    } else {
      out("  end: {}\n", end_text());
    }
    if (!p.config.empty()) out("  config: {}\n", p.config);
    if (p.recorder_flags & format::kRecorderCallerEmulated) {
      out("  note: callers were emulated (no return-address trampoline); the caller object of "
          "a call may be approximate\n");
    }
    out("  events: {} recorded, {} readable\n", reader_.last_seq(),
        reader_.last_seq() - std::min(reader_.last_seq(), reader_.recovery().dropped_events));
    for (const auto& s : recovery_sentences(reader_)) out("  recovery: {}\n", s);
    out("{}{:>10}  {:>7}  {}{}\n", style_.dim(), "time(ms)", "tid", "call", style_.reset());
  }

  std::string end_text() const {
    const ProcessInfo& p = reader_.process();
    return viewer::end_text(p,
                            fmt::format("after {:.3f} ms", model_.relative_ms(p.end_monotonic_ns)));
  }

  // The closing line of --follow.
  void footer() {
    out("{}-- process {} {}{}\n", style_.dim(), reader_.process().pid, end_text(),
        style_.reset());
  }

  void event(const format::EventSlot& e) {
    const int depth = nesting_.depth_of(e);
    const bool failed = !(e.bits & format::kEventOk);
    out("{}{:>10.3f}  {:>7}{}  {:{}}{}{}{}", style_.dim(), model_.relative_ms(model_.time_ns(e)),
        e.tid, style_.reset(), "", depth * 2, failed ? style_.red() : "", style_.bold(),
        call_name(e.call));
    out("{}", style_.reset());
    if (is_open_call(e.call)) {
      open_event(e);
    } else if (is_sym_call(e.call)) {
      sym_event(e);
    } else if (is_close_call(e.call)) {
      close_event(e);
    } else {
      out("(?)");
    }
    out("  {}[{:.3f} ms]{}", style_.dim(), static_cast<double>(model_.duration_ns(e)) / 1e6,
        style_.reset());
    if (e.error != format::kNoId && reader_.has_string(e.error)) {
      out("  {}error: {}{}", style_.red(), reader_.string(e.error), style_.reset());
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
      out(" {}=> {} [override", style_.yellow(), flags_to_string(e.effective_flags));
      const auto& config = reader_.process().config;
      if (!config.empty() || e.override_line) {
        out(" {}:{}", config.empty() ? "config" : basename_of(config), e.override_line);
      }
      out("]{}", style_.reset());
    }
    out(")");
    if (!(e.bits & format::kEventOk) && e.handle == 0) {
      out(" = {}NULL{}", style_.red(), style_.reset());
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
      out(" = {}NULL{}", style_.red(), style_.reset());
      return;
    }
    out(" = {:#x}", e.address);
    const ObjectRecord* o = model_.object_for(e.address, e.seq, e.object);
    if (o) out(" {}+{:#x}", model_.name_of(*o), e.address - o->base);
  }

  void close_event(const format::EventSlot& e) {
    const bool failed = !(e.bits & format::kEventOk);
    out("({}) = {}{}{}", handle_text(e), failed ? style_.red() : "", e.result,
        failed ? style_.reset() : "");
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
  TerminalStyle style_;
  NestingTracker& nesting_;
  Symbolizer symbolizer_;
  fmt::memory_buffer buf_;
};

absl::Status finish_output(std::FILE* out) {
  if (std::fflush(out) != 0 || std::ferror(out)) return TraceError("cannot write the output");
  return absl::OkStatus();
}

// ---- --follow ----

// What has been printed so far, across re-reads of the growing trace. Events are printed in seq
// order; a seq that is reserved but not committed yet (a call still running) holds back the
// ones after it for at most FollowControl::hold_back, then is skipped and printed late if it
// ever shows up.
class FollowCursor {
 public:
  explicit FollowCursor(const FollowControl& control) : control_(control) {}

  // Prints the events of `reader` not printed yet; `ended`: the process is gone, nothing
  // missing will ever be committed.
  void print_new(const TraceReader& reader, const Filter& filter, ShowPrinter& printer,
                 bool ended) {
    const auto now = std::chrono::steady_clock::now();
    for (auto it = skipped_.begin(); it != skipped_.end();) {
      if (auto e = reader.event(*it)) {
        if (filter.accepts(*e)) printer.event(*e);
        it = skipped_.erase(it);
      } else {
        ++it;
      }
    }
    const uint64_t last = reader.last_seq();
    while (done_ < last) {
      const uint64_t seq = done_ + 1;
      if (auto e = reader.event(seq)) {
        if (filter.accepts(*e)) printer.event(*e);
        done_ = seq;
        stall_seq_ = 0;
        continue;
      }
      // Missing: torn, overwritten by the ring, or still running.
      if (const uint64_t slots = reader.header().slot_count; slots && last - seq >= slots) {
        done_ = seq;  // a newer event has taken its slot: it is gone for good
        continue;
      }
      if (stall_seq_ != seq) {
        stall_seq_ = seq;
        stall_since_ = now;
        stall_last_ = last;
      }
      if (!ended && now - stall_since_ < control_.hold_back) break;
      // Everything reserved before the stall began had hold_back to commit: skip what is still
      // missing among those, remembering a bounded number to print late.
      const uint64_t give_up_to = ended ? last : stall_last_;
      for (uint64_t s = seq; s <= give_up_to; ++s) {
        if (auto e = reader.event(s)) {
          if (filter.accepts(*e)) printer.event(*e);
        } else if (!ended && skipped_.size() < kMaxSkipped) {
          skipped_.insert(s);
        }
      }
      done_ = std::max(done_, give_up_to);
      stall_seq_ = 0;
    }
  }

 private:
  static constexpr size_t kMaxSkipped = 4096;

  const FollowControl& control_;
  uint64_t done_ = 0;  // every seq up to here was printed, filtered out or given up on
  uint64_t stall_seq_ = 0;
  uint64_t stall_last_ = 0;
  std::chrono::steady_clock::time_point stall_since_;
  std::set<uint64_t> skipped_;
};

// Whether the trace file is not there yet, or not yet grown to its header (the recorder
// creates it, then sizes it).
bool not_there_yet(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return errno == ENOENT;
  return S_ISREG(st.st_mode) && st.st_size < static_cast<off_t>(format::kHeaderSize);
}

// Sleeps one poll interval; returns early when a signal arrives.
void nap(std::chrono::milliseconds interval) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(interval).count();
  timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
  ::nanosleep(&ts, nullptr);
}

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_sigint(int) { g_interrupted = 1; }

// Ends --follow cleanly on SIGINT while it runs, then restores the previous handler.
class SigintScope {
 public:
  SigintScope() {
    g_interrupted = 0;
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &previous_);
  }
  ~SigintScope() { ::sigaction(SIGINT, &previous_, nullptr); }
  SigintScope(const SigintScope&) = delete;
  SigintScope& operator=(const SigintScope&) = delete;

 private:
  struct sigaction previous_ {};
};

absl::Status run_show(const ShowOptions& o) {
  if (auto filter = make_filter(o); !filter.ok()) return filter.status();  // usage errors first
  if (o.follow) {
    SigintScope sigint;
    FollowControl control;
    control.stop = [] { return g_interrupted != 0; };
    return follow_trace(o, control, stdout);
  }
  auto reader = open_trace(o.trace);
  if (!reader.ok()) return reader.status();
  const auto source = with_progress(**reader, stdout);  // the log streams to stdout
  return show_trace(*source, o, stdout);
}

}  // namespace

absl::Status follow_trace(const ShowOptions& o, const FollowControl& control, std::FILE* out) {
  auto filter = make_filter(o);
  if (!filter.ok()) return filter.status();
  const bool color = use_color_for(o.color, fileno(out));
  NestingTracker nesting;
  FollowCursor cursor(control);
  bool waiting_noted = false;
  bool header_done = false;
  int32_t pid = 0;
  while (true) {
    const bool stop = control.stop();
    if (!header_done && not_there_yet(o.trace)) {
      if (stop) return absl::OkStatus();
      if (!waiting_noted) {
        std::fprintf(stderr, "dltrace: waiting for %s to appear\n", o.trace.c_str());
        waiting_noted = true;
      }
      nap(control.poll_interval);
      continue;
    }
    auto reader = open_trace(o.trace);
    if (!reader.ok()) return reader.status();
    const TraceReader& r = **reader;
    if (header_done && r.process().pid != pid) {
      return TraceError(fmt::format("{}: the file now holds the trace of another process ({})",
                                    o.trace, r.process().pid));
    }
    const bool ended = r.process().end != format::EndKind::kRunning;
    ShowPrinter printer(r, o.stacks, color, nesting, out);
    if (!header_done) {
      printer.header(/*following=*/true);
      header_done = true;
      pid = r.process().pid;
    }
    cursor.print_new(r, *filter, printer, ended);
    if (ended) printer.footer();
    printer.flush();
    DLTRACE_RETURN_IF_ERROR(finish_output(out));
    if (ended || stop) return absl::OkStatus();
    nap(control.poll_interval);
  }
}

absl::Status show_trace(const TraceReader& reader, const ShowOptions& o, std::FILE* out) {
  auto filter = make_filter(o);
  if (!filter.ok()) return filter.status();
  NestingTracker nesting;
  ShowPrinter printer(reader, o.stacks, use_color_for(o.color, fileno(out)), nesting, out);
  printer.header();
  const Filter& f = *filter;
  reader.for_each_event([&](const format::EventSlot& e) {
    if (f.accepts(e)) printer.event(e);
    return true;
  });
  printer.flush();
  return finish_output(out);
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
      "  dltrace show dltrace.python3.1234.trace --call dlopen --stacks\n"
      "  dltrace show --follow dltrace.python3.1234.trace   # while it runs");
  cmd->add_option("trace", opts->trace, "trace file written by `dltrace run`")->required();
  cmd->add_flag("--stacks", opts->stacks,
                "print the symbolized native stack (and Python stack) under each event");
  cmd->add_option("--seq", opts->seq_range, "only events with seq in A-B (A-, -B, A also work)");
  cmd->add_option("--call", opts->calls, "only these calls, comma-separated: dlopen,dlsym,...")
      ->delimiter(',');
  cmd->add_flag("--failed", opts->failed, "only calls that failed");
  auto color = std::make_shared<std::string>("auto");
  cmd->add_option("--color", *color,
                  "auto (default: only on a terminal with NO_COLOR unset), always or never")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  cmd->add_flag("--follow,-f", opts->follow,
                "keep reading a trace that is still being written (like tail -f); ends when the "
                "process ends or on Ctrl-C");
  cmd->callback([opts, color, &result] {
    opts->color = parse_color_mode(*color).value_or(ColorMode::kAuto);
    result.set(run_show(*opts));
  });
}

}  // namespace dltrace::viewer

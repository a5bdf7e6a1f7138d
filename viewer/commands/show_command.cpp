// `dltrace show TRACE`: the event log, one event per line, nested calls indented
// (render/event_log_text); with --follow, the log of a trace that is still being written, like
// tail -f (model/follow_cursor).
#include "commands/show_command.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>

#include "commands/command.h"
#include "model/call_nesting.h"
#include "model/event_filter.h"
#include "model/follow_cursor.h"
#include "model/trace_model.h"
#include "render/event_log_text.h"
#include "util/progress.h"

namespace dltrace::viewer {
namespace {

absl::Status finish_output(std::FILE* out) {
  if (std::fflush(out) != 0 || std::ferror(out)) return TraceError("cannot write the output");
  return absl::OkStatus();
}

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

extern "C" void on_sigint(int) {
  g_interrupted = 1;
}

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

absl::StatusOr<EventFilter> filter_of(const ShowOptions& o) {
  return make_event_filter(o.seq_range, o.calls, o.failed);
}

absl::Status run_show(const ShowOptions& o) {
  if (auto filter = filter_of(o); !filter.ok()) return filter.status();  // usage errors first
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
  auto filter = filter_of(o);
  if (!filter.ok()) return filter.status();
  const bool color = use_color_for(o.color, fileno(out));
  CallNesting nesting;
  FollowCursor cursor(control.hold_back);
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
    auto reader = open_trace(o.trace, /*note_version=*/!header_done);
    if (!reader.ok()) return reader.status();
    const TraceReader& r = **reader;
    if (header_done && r.process().pid != pid) {
      return TraceError(fmt::format("{}: the file now holds the trace of another process ({})",
                                    o.trace, r.process().pid));
    }
    const bool ended = r.process().end != format::EndKind::kRunning;
    const TraceModel model(r);
    EventLogText printer(model, o.stacks, color, nesting, out);
    if (!header_done) {
      printer.header(/*following=*/true);
      header_done = true;
      pid = r.process().pid;
    }
    cursor.read_new(r, ended, [&](const format::EventSlot& e) {
      if (filter->accepts(e)) printer.event(e);
    });
    if (ended) printer.footer();
    printer.flush();
    DLTRACE_RETURN_IF_ERROR(finish_output(out));
    if (ended || stop) return absl::OkStatus();
    nap(control.poll_interval);
  }
}

absl::Status show_trace(const TraceReader& reader, const ShowOptions& o, std::FILE* out) {
  auto filter = filter_of(o);
  if (!filter.ok()) return filter.status();
  const TraceModel model(reader);
  CallNesting nesting;
  EventLogText printer(model, o.stacks, use_color_for(o.color, fileno(out)), nesting, out);
  printer.header();
  const EventFilter& f = *filter;
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

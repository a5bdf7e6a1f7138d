// `dltrace stats TRACE [--top N] [--json]`: counts per call and per thread, the most looked-up
// symbols, the slowest loads (total and self time), dropped events and how complete the trace is.
// The numbers are analysis/trace_stats; render/stats_text and render/stats_json print them.
#include "commands/stats_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>

#include "analysis/trace_stats.h"
#include "commands/command.h"
#include "model/trace_model.h"
#include "render/stats_json.h"
#include "render/stats_text.h"
#include "util/progress.h"

namespace dltrace::viewer {
namespace {

absl::Status run_stats(const StatsOptions& o) {
  auto reader = open_trace(o.trace);
  if (!reader.ok()) return reader.status();
  const auto source = with_progress(**reader);  // prints at the end
  return stats_trace(*source, o, stdout);
}

}  // namespace

absl::Status stats_trace(const TraceReader& reader, const StatsOptions& options, std::FILE* out) {
  const TraceModel model(reader);
  TraceStats stats = compute_trace_stats(model, options.top);
  stats.outcomes = count_outcomes(reader);
  if (options.json) {
    DLTRACE_RETURN_IF_ERROR(write_stats_json(stats, model, out));
  } else {
    const std::string text = stats_text(stats, model);
    std::fwrite(text.data(), 1, text.size(), out);
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

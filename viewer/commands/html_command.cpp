// `dltrace html TRACE -o REPORT.html [--all]`: one self-contained HTML report
// (render/html_report.h).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "commands/command.h"
#include "model/trace_model.h"
#include "render/html_report.h"

namespace dltrace::viewer {
namespace {

struct HtmlOptions {
  std::string trace;
  std::string output;  // "-": stdout
  HtmlReportOptions report;
};

absl::Status run_html(const HtmlOptions& o) {
  auto reader = open_trace(o.trace);
  if (!reader.ok()) return reader.status();
  if (o.output == "-") return write_html_report(**reader, o.report, stdout);
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(o.output.c_str(), "w"),
                                                       &std::fclose);
  if (!file) return TraceError(fmt::format("cannot create {}: {}", o.output, std::strerror(errno)));
  DLTRACE_RETURN_IF_ERROR(write_html_report(**reader, o.report, file.get()));
  if (std::fclose(file.release()) != 0) {
    return TraceError(fmt::format("cannot write {}: {}", o.output, std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

void register_html_command(CLI::App& app, CommandResult& result) {
  auto opts = std::make_shared<HtmlOptions>();
  CLI::App* cmd = app.add_subcommand(
      "html",
      "One self-contained HTML report (no network needed to view it): the process and how it\n"
      "ended, explain's findings (evidence, fixes, the override rule to copy), the load graph and\n"
      "the scope graph drawn as SVG, and every event in a table you can filter (all words must\n"
      "match), sort (click a column) and page through.\n\n"
      "Example:\n"
      "  dltrace html app.trace -o report.html && xdg-open report.html");
  cmd->add_option("trace", opts->trace, "trace file written by `dltrace run`")->required();
  cmd->add_option("-o,--output", opts->output, "the report file (- for stdout)")->required();
  cmd->add_flag("--all,-a", opts->report.all, "draw every system library in the load graph");
  cmd->callback([opts, &result] { result.set(run_html(*opts)); });
}

}  // namespace dltrace::viewer

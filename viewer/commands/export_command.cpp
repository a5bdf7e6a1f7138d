// `dltrace export --format json|jsonl TRACE [-o FILE]`: machine-readable export.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "analysis/elf_file.h"
#include "analysis/outcome.h"
#include "commands/command.h"
#include "model/trace_model.h"
#include "render/chrome_export.h"
#include "render/json_export.h"
#include "util/progress.h"

namespace dltrace::viewer {
namespace {

struct ExportOptions {
  std::string format = "json";
  std::string trace;
  std::string output;  // "" or "-": stdout
  bool no_stacks = false;
  bool no_symbols = false;
};

absl::Status run_export(const ExportOptions& o) {
  JsonExportOptions json;
  if (o.format == "json") {
    json.flavor = JsonFlavor::kJson;
  } else if (o.format == "jsonl") {
    json.flavor = JsonFlavor::kJsonl;
  } else if (o.format != "chrome") {
    return UsageError(fmt::format("unknown --format '{}'; use json, jsonl or chrome", o.format));
  }
  json.stacks = !o.no_stacks;
  json.symbolize = !o.no_symbols;

  auto reader = open_trace(o.trace);
  if (!reader.ok()) return reader.status();

  std::FILE* out = stdout;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(nullptr, &std::fclose);
  if (!o.output.empty() && o.output != "-") {
    file.reset(std::fopen(o.output.c_str(), "w"));
    if (!file) {
      return TraceError(fmt::format("cannot create {}: {}", o.output, std::strerror(errno)));
    }
    out = file.get();
  }
  JsonWriter writer(out);
  const auto source = with_progress(**reader, out);  // none when it streams to the terminal
  if (o.format == "chrome") {
    DLTRACE_RETURN_IF_ERROR(write_chrome_export(*source, writer));
  } else {
    // Failed calls carry "kind": "probe" | "failure", classified as explain does.
    TraceModel model(*source);
    ElfCache elf;
    OutcomeClassifier outcomes(model, elf);
    json.failed_kind = [&outcomes](const format::EventSlot& e) {
      return outcome_name(outcomes.classify(e).outcome);
    };
    DLTRACE_RETURN_IF_ERROR(write_json_export(*source, json, writer));
  }
  if (file && std::fclose(file.release()) != 0) {
    return TraceError(fmt::format("cannot write {}: {}", o.output, std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

void register_export_command(CLI::App& app, CommandResult& result) {
  auto opts = std::make_shared<ExportOptions>();
  CLI::App* cmd = app.add_subcommand(
      "export",
      "Machine-readable export of a trace.\n"
      "  json:  one object {format, version, process, dropped_events, objects[], events[]}\n"
      "  jsonl: one object per line: a {\"type\":\"process\"} line, then \"object\" and \"event\"\n"
      "         lines in sequence order (an object just before the first event at or after\n"
      "         its load_seq), for streaming very large traces.\n"
      "  chrome: the Trace Event format that Perfetto (ui.perfetto.dev) and chrome://tracing\n"
      "         open: a track per thread, dlopen/dlclose as spans (nested loads inside their\n"
      "         parent), dlsym as instants; ts in microseconds since the process started.\n"
      "Addresses are \"0x...\" strings; NULL handles/addresses and fields that do not apply are\n"
      "null. time_ns is the raw CLOCK_MONOTONIC value at call start (process.start_monotonic_ns\n"
      "is the origin). seq, load_seq and unload_seq come from one counter.\n\n"
      "Example:\n"
      "  dltrace export --format json dltrace.python3.1234.trace -o trace.json\n"
      "  dltrace export --format jsonl dltrace.python3.1234.trace | grep '\"ok\":false'");
  cmd->add_option("--format,-f", opts->format,
                  "json | jsonl | chrome (Trace Event format for Perfetto, chrome://tracing)")
      ->capture_default_str()
      ->check(CLI::IsMember({"json", "jsonl", "chrome"}));  // also what completion offers
  cmd->add_option("trace", opts->trace, "trace file written by `dltrace run`")->required();
  cmd->add_option("-o,--output", opts->output, "write here instead of stdout");
  cmd->add_flag("--no-stacks", opts->no_stacks, "leave stack and python_stack null (faster)");
  cmd->add_flag("--no-symbols", opts->no_symbols,
                "do not read debug info: stack frames get object and offset only");
  cmd->callback([opts, &result] { result.set(run_export(*opts)); });
}

}  // namespace dltrace::viewer

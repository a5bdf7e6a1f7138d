// `dltrace explain TRACE [--json] [--no-info] [--probes]`: every failure of the trace with the
// evidence and the fix, and the probes (failed calls the program expected) folded into one
// summary; exit status 0 when no problems (errors or warnings) were found, 1 otherwise.
#include "commands/explain_command.h"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "analysis/elf_file.h"
#include "analysis/explain.h"
#include "analysis/scope_graph.h"
#include "commands/command.h"
#include "model/in_flight.h"
#include "model/trace_model.h"
#include "render/json_writer.h"
#include "render/terminal_style.h"
#include "util/progress.h"

namespace dltrace::viewer {
namespace {

std::string fact_of(const Finding& f, std::string_view key) {
  for (const auto& [k, v] : f.facts)
    if (k == key) return v;
  return {};
}

void print_finding(const Finding& f, const TerminalStyle& style, std::FILE* out) {
  StyleCode colour = f.severity == Severity::kError     ? style.red()
                     : f.severity == Severity::kWarning ? style.yellow()
                                                        : style.dim();
  const bool probe = f.kind == "probe";
  print_visible(
      out, "\n{}{}{} [{}]{}{}: {}{}{}\n", colour, probe ? "probe" : severity_name(f.severity),
      style.reset(), probe ? fact_of(f, "outcome_rule") : f.kind,
      f.seq ? fmt::format(" #{}", f.seq) : "",
      f.repeats ? fmt::format(" (+{} more failed call{} {})", f.repeats, f.repeats == 1 ? "" : "s",
                              probe ? "like it" : "with this cause")
                : "",
      style.bold(), f.title, style.reset());
  for (const auto& line : f.evidence) print_visible(out, "  {}\n", line);
  if (f.fixes.empty()) return;
  print_visible(out, "  {}fix{}:\n", style.bold(), f.fixes.size() > 1 ? " (any one)" : "");
  int n = 0;
  for (const auto& fix : f.fixes) {
    print_visible(out, "    {}. {}\n", ++n, fix.text);
    if (fix.config.empty()) continue;
    std::string_view rule = fix.config;
    while (!rule.empty()) {
      size_t nl = rule.find('\n');
      print_visible(out, "         {}\n", rule.substr(0, nl));
      if (nl == std::string_view::npos) break;
      rule.remove_prefix(nl + 1);
    }
  }
}

void print_text(const TraceReader& reader, const ExplainResult& result, const ExplainOptions& o,
                std::FILE* out) {
  TerminalStyle style{o.color};
  size_t errors = 0, warnings = 0, infos = 0;
  for (const auto& f : result.findings) {
    if (f.severity == Severity::kError) ++errors;
    if (f.severity == Severity::kWarning) ++warnings;
    if (f.severity == Severity::kInfo) ++infos;
  }
  const ProcessInfo& p = reader.process();
  print_visible(
      out, "{}{} problem{}{} ({} error{}, {} warning{}), {} note{}{} — pid {}, {}\n", style.bold(),
      result.problems, result.problems == 1 ? "" : "s", style.reset(), errors,
      errors == 1 ? "" : "s", warnings, warnings == 1 ? "" : "s", infos, infos == 1 ? "" : "s",
      result.probe_calls
          ? fmt::format(", {} probe{}", result.probe_calls, result.probe_calls == 1 ? "" : "s")
          : "",
      p.pid, p.exe.empty() ? std::string("unknown program") : p.exe);
  for (const auto& sentence : recovery_sentences(reader))
    print_visible(out, "{}note: {}{}\n", style.yellow(), sentence, style.reset());
  for (const auto& f : result.findings) {
    if (f.severity == Severity::kInfo && o.no_info) continue;
    print_finding(f, style, out);
  }
  if (o.probes)
    for (const auto& f : result.probes) print_finding(f, style, out);
  if (result.findings.empty() && result.probe_calls == 0)
    print_visible(out, "No failed calls, duplicates or interpositions.\n");
  if (result.probe_calls) {
    print_visible(out, "\n{}{}{}{}\n", style.dim(), probe_summary(result),
                  o.probes ? "" : " (--probes lists them)", style.reset());
  }
}

void finding_json(JsonWriter& w, const Finding& f) {
  w.begin_object();
  w.key("kind").value(f.kind);
  w.key("severity").value(f.kind == "probe" ? "probe" : severity_name(f.severity));
  if (f.seq) {
    w.key("seq").value(f.seq);
  } else {
    w.key("seq").null();
  }
  w.key("repeats").value(f.repeats);
  w.key("title").value(f.title);
  for (const auto& [key, value] : f.facts) w.key(std::string_view(key)).value(value);
  w.key("evidence").begin_array();
  for (const auto& line : f.evidence) w.value(line);
  w.end_array();
  w.key("fixes").begin_array();
  for (const auto& fix : f.fixes) {
    w.begin_object();
    w.key("text").value(fix.text);
    if (fix.config.empty()) {
      w.key("config").null();
    } else {
      w.key("config").value(fix.config);
    }
    w.end_object();
  }
  w.end_array();
  w.end_object();
}

absl::Status print_json(const TraceReader& reader, const ExplainResult& result,
                        OutcomeClassifier& outcomes, const ExplainOptions& o, std::FILE* out) {
  JsonWriter w(out);
  w.begin_object();
  w.key("format").value("dltrace-explain");
  w.key("version").value(1);
  w.key("pid").value(reader.process().pid);
  w.key("exe").value(reader.process().exe);
  w.key("problems").value(result.problems);
  w.key("failure_calls").value(result.failure_calls);
  w.key("probe_calls").value(result.probe_calls);
  w.key("recovery").begin_array();
  for (const auto& sentence : recovery_sentences(reader)) w.value(sentence);
  w.end_array();
  w.key("findings").begin_array();
  for (const auto& f : result.findings) {
    if (f.severity == Severity::kInfo && o.no_info) continue;
    finding_json(w, f);
  }
  w.end_array();
  w.key("probes").begin_object();
  w.key("count").value(result.probe_calls);
  w.key("summary").value(probe_summary(result, SIZE_MAX));
  w.key("groups").begin_array();
  for (const ProbeGroup& g : result.probe_groups) {
    w.begin_object();
    w.key("name").value(g.name);
    w.key("label").value(g.label);
    w.key("count").value(g.count);
    w.key("first_seq").value(g.first_seq);
    w.end_object();
  }
  w.end_array();
  if (o.probes) {
    w.key("findings").begin_array();
    for (const auto& f : result.probes) finding_json(w, f);
    w.end_array();
  }
  w.end_object();
  // Every failed call with its class: "kind": "probe" | "failure" (the spec's event field),
  // classified again as the events stream past, so nothing is kept per call.
  w.key("failed_calls").begin_array();
  reader.for_each_event([&](const format::EventSlot& e) {
    if (!failed_call(e) || (!is_open_call(e.call) && !is_sym_call(e.call))) return true;
    const Classification c = outcomes.classify(e);
    w.begin_object();
    w.key("seq").value(e.seq);
    w.key("call").value(call_name(e.call));
    w.key(is_open_call(e.call) ? "file" : "symbol").value(reader.string(e.name));
    w.key("kind").value(outcome_name(c.outcome));
    w.key("severity").value(c.probe() ? "probe" : severity_name(c.severity));
    w.key("rule").value(c.rule);
    if (c.convention.empty()) {
      w.key("convention").null();
    } else {
      w.key("convention").value(c.convention);
    }
    w.key("reason").value(c.reason);
    w.end_object();
    return true;
  });
  w.end_array();
  w.end_object();
  w.end_line();
  return w.finish();
}

}  // namespace

absl::StatusOr<size_t> explain_trace_to(const TraceReader& reader, const ExplainOptions& options,
                                        std::FILE* out) {
  TraceModel model(reader);
  ElfCache elf;
  ScopeGraph graph(model, elf);
  OutcomeClassifier outcomes(model, elf);
  ExplainResult result = explain_trace(model, elf, graph, outcomes);
  if (options.json) {
    DLTRACE_RETURN_IF_ERROR(print_json(reader, result, outcomes, options, out));
  } else {
    print_text(reader, result, options, out);
  }
  if (std::fflush(out) != 0 || std::ferror(out)) return TraceError("cannot write the output");
  return result.problems;
}

void register_explain_command(CLI::App& app, CommandResult& result) {
  auto opts = std::make_shared<ExplainOptions>();
  auto color = std::make_shared<std::string>("auto");
  CLI::App* cmd = app.add_subcommand(
      "explain",
      "Why each failed dlopen/dlsym/dlvsym failed, and how to fix it: the missing symbol or\n"
      "library, where it does exist (loaded objects, files on disk), why it was not visible\n"
      "(RTLD_LOCAL scope, not exported, another namespace, wrong copy loaded), and concrete\n"
      "fixes — including the dltrace override rule that fixes it without a rebuild, when one\n"
      "does. Also flags libraries loaded twice, symbols defined twice in one scope, dlsym\n"
      "results from another object than expected, RTLD_DEEPBIND loads and overrides in effect.\n"
      "Failed calls the program expected and handled (probes: an RTLD_NOLOAD question, an\n"
      "optional hook such as GModule's g_module_check_init, a name found elsewhere right\n"
      "after) are not problems: they are folded into one summary line (--probes lists them).\n"
      "Exit status: 0 no problems (only probes missed), 1 problems found (errors or\n"
      "warnings), 2 usage.\n\n"
      "Examples:\n"
      "  dltrace run -o app.trace -- ./host plugin.so\n"
      "  dltrace explain app.trace\n"
      "  dltrace explain app.trace --json | jq -r '.findings[0].fixes[] | select(.config) | "
      ".config'");
  cmd->add_option("trace", opts->trace, "trace file written by `dltrace run`")->required();
  cmd->add_flag("--json", opts->json, "one JSON object (format \"dltrace-explain\")");
  cmd->add_flag("--no-info", opts->no_info, "leave out informational findings");
  cmd->add_flag("--probes", opts->probes,
                "also list the failed calls classified as probes (expected misses), with why");
  cmd->add_option("--color", *color, "auto|always|never (auto: on a terminal without NO_COLOR)")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  cmd->callback([opts, color, &result] {
    auto reader = open_trace(opts->trace);
    if (!reader.ok()) {
      result.set(reader.status());
      return;
    }
    ExplainOptions o = *opts;
    o.color = !o.json && use_color(parse_color_mode(*color).value_or(ColorMode::kAuto),
                                   isatty(STDOUT_FILENO) == 1);
    const auto source = with_progress(**reader);  // prints at the end
    auto problems = explain_trace_to(*source, o, stdout);
    if (!problems.ok()) {
      result.set(problems.status());
      return;
    }
    result.exit_code = *problems > 0 ? kExitTraceProblem : kExitOk;
  });
}

}  // namespace dltrace::viewer

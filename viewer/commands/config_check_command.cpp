// `dltrace config check CONFIG [--trace TRACE]`: validates an override config with the same
// parser the recorder uses, prints each rule as understood and, against a trace, the rules that
// never matched any dlopen/dlmopen in it.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands/command.h"
#include "common/config.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {
namespace {

struct ConfigCheckOptions {
  std::string config;
  std::string trace;
};

// Whether `rule` matched some dlopen/dlmopen of the trace: by what the recorder logged for the
// event (OverrideEntry lines) or by matching the call's name, the opened object's path and
// soname, and the calling object, as the recorder would have.
std::vector<bool> matched_rules(const config::Config& cfg, const TraceReader& reader,
                                uint64_t* calls) {
  std::vector<bool> hit(cfg.rules.size(), false);
  reader.for_each_event([&](const format::EventSlot& e) {
    const auto call = static_cast<format::CallKind>(e.call);
    if (call != format::CallKind::kDlopen && call != format::CallKind::kDlmopen) return true;
    ++*calls;
    std::vector<OverrideRecord> applied = reader.overrides_for(e.seq);
    config::Subject s;
    std::string name(reader.string(e.name));
    s.name = name;
    const ObjectRecord* obj = e.object != format::kNoId ? reader.object(e.object) : nullptr;
    if (obj != nullptr) {
      s.resolved = obj->path;
      s.soname = obj->soname;
    }
    const ObjectRecord* caller =
        e.caller_object != format::kNoId ? reader.object(e.caller_object) : nullptr;
    if (caller != nullptr) s.caller = caller->path;
    for (size_t i = 0; i < cfg.rules.size(); ++i) {
      if (hit[i]) continue;
      const auto& rule = cfg.rules[i];
      bool logged = e.override_line == rule.line;
      for (const auto& a : applied) logged |= a.line == rule.line;
      if (logged || (!name.empty() && config::matches(rule, s))) hit[i] = true;
    }
    return true;
  });
  return hit;
}

int run_config_check(const ConfigCheckOptions& o) {
  config::Config cfg;
  config::Error error;
  if (!config::load_file(o.config.c_str(), &cfg, &error)) {
    std::fprintf(stderr, "%s\n", config::format_error(o.config, error).c_str());
    return kExitTraceProblem;
  }
  fmt::print("{}: {} rule{}\n", o.config, cfg.rules.size(), cfg.rules.size() == 1 ? "" : "s");
  for (size_t i = 0; i < cfg.rules.size(); ++i)
    fmt::print("rule {} (line {}): {}\n", i + 1, cfg.rules[i].line, config::describe(cfg.rules[i]));
  if (o.trace.empty()) return kExitOk;

  std::string why;
  std::unique_ptr<TraceReader> reader = TraceReader::open(o.trace, &why);
  if (reader == nullptr) return report_error(TraceError(fmt::format("{}: {}", o.trace, why)));
  uint64_t calls = 0;
  std::vector<bool> hit = matched_rules(cfg, *reader, &calls);
  fmt::print("\nagainst {} ({} dlopen/dlmopen call{}):\n", o.trace, calls, calls == 1 ? "" : "s");
  size_t never = 0;
  for (size_t i = 0; i < cfg.rules.size(); ++i) {
    if (hit[i]) continue;
    ++never;
    fmt::print("rule {} (line {}) never matched: {}\n", i + 1, cfg.rules[i].line,
               config::describe(cfg.rules[i]));
  }
  if (never == 0) fmt::print("every rule matched at least one call\n");
  if (!reader->recovery().clean() || reader->recovery().dropped_events != 0)
    fmt::print(
        "note: the trace is incomplete ({} events not readable); a rule may have matched "
        "one of them\n",
        reader->recovery().dropped_events);
  return kExitOk;
}

}  // namespace

void register_config_command(CLI::App& app, CommandResult& result) {
  CLI::App* config = app.add_subcommand("config", "Work with flag-override config files.");
  config->require_subcommand(1);
  auto opts = std::make_shared<ConfigCheckOptions>();
  CLI::App* check = config->add_subcommand(
      "check",
      "Validate an override config (the TOML file named by DLTRACE_CONFIG or `dltrace run -c`)\n"
      "with the recorder's own parser and print each rule as understood. On an error prints\n"
      "FILE:LINE:COL: message and exits 1. With --trace, also lists the rules that never\n"
      "matched any dlopen/dlmopen in that trace.\n\n"
      "Example:\n"
      "  dltrace config check dltrace.toml --trace dltrace.python3.1234.trace");
  check->add_option("config", opts->config, "override config file (TOML)")->required();
  check->add_option("--trace", opts->trace, "trace to test the rules against");
  check->callback([opts, &result] { result.exit_code = run_config_check(*opts); });
}

}  // namespace dltrace::viewer

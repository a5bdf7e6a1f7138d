// `dltrace scopes TRACE [--for NAME [--at SEQ]] [--json]`: the symbol scopes ld.so used.
// Without --for: each namespace's global scope in order (with why each object is in it and
// since when), then the local scope of every dlopen group. With --for: the exact list of
// objects an object's undefined symbols are looked up in, scope by scope, as LD_DEBUG=scopes
// prints it, at the object's load (or at event SEQ). The lists are analysis/scope_graph;
// render/scopes_text and render/scopes_json print them.
#include "commands/scopes_command.h"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "analysis/elf_file.h"
#include "analysis/scope_graph.h"
#include "analysis/scope_queries.h"
#include "commands/command.h"
#include "model/trace_model.h"
#include "render/scopes_json.h"
#include "render/scopes_text.h"
#include "render/terminal_style.h"
#include "util/progress.h"

namespace dltrace::viewer {
namespace {

// --for NAME: the objects NAME means, else the failed dlopen of that name.
absl::Status scopes_for(const ScopeGraph& graph, const ScopesOptions& o, std::FILE* out) {
  const auto objects = objects_named(graph.model(), o.for_object);
  if (objects.empty() && !o.json) {
    if (const auto failed = failed_load_scopes(graph, o.for_object)) {
      write_failed_load_scopes_text(graph, *failed, o.for_object, o.color, out);
      return absl::OkStatus();
    }
  }
  if (objects.empty()) {
    return absl::NotFoundError(
        fmt::format("no object named \"{}\" in the trace (give a basename, soname, path or #id; "
                    "`dltrace tree` lists them)",
                    o.for_object));
  }
  if (o.json) return write_object_scopes_json(graph, objects, o.at_seq, out);
  write_object_scopes_text(graph, objects, o.at_seq, o.color, out);
  return absl::OkStatus();
}

absl::Status run_scopes(ScopesOptions o, ColorMode color) {
  auto reader = open_trace(o.trace);
  if (!reader.ok()) return reader.status();
  o.color = use_color(color, isatty(STDOUT_FILENO) == 1) && !o.json;
  const auto source = with_progress(**reader);  // prints at the end
  DLTRACE_RETURN_IF_ERROR(scopes_trace(*source, o, stdout));
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) return TraceError("cannot write the output");
  return absl::OkStatus();
}

}  // namespace

absl::Status scopes_trace(const TraceReader& reader, const ScopesOptions& options, std::FILE* out) {
  const TraceModel model(reader);
  ElfCache elf;
  const ScopeGraph graph(model, elf);
  if (!options.for_object.empty()) return scopes_for(graph, options, out);
  if (options.json) return write_scope_lists_json(graph, out);
  write_scope_lists_text(graph, options.color, out);
  return absl::OkStatus();
}

void register_scopes_command(CLI::App& app, CommandResult& result) {
  auto opts = std::make_shared<ScopesOptions>();
  auto color = std::make_shared<std::string>("auto");
  auto at = std::make_shared<uint64_t>(0);
  CLI::App* cmd = app.add_subcommand(
      "scopes",
      "The symbol scopes the dynamic linker used, reconstructed from the trace and the ELF files\n"
      "(DT_NEEDED read from disk, checked against the recorded build-id).\n"
      "The global scope of each namespace comes first: the executable, the preloads, their\n"
      "DT_NEEDED closure breadth-first, then every group opened or promoted RTLD_GLOBAL, in\n"
      "order. Then one local scope per dlopen group: the opened object and its dependencies.\n"
      "An object's undefined symbols are looked up in the global scope, then in the local\n"
      "scope of its group (the other way round with RTLD_DEEPBIND). A symbol defined only in\n"
      "a group opened RTLD_LOCAL is therefore invisible to every other group.\n\n"
      "Examples:\n"
      "  dltrace scopes app.trace\n"
      "  dltrace scopes app.trace --for _json.cpython-311-x86_64-linux-gnu.so\n"
      "  dltrace scopes app.trace --for libplugin.so --at 120   # the state at event #120");
  cmd->add_option("trace", opts->trace, "trace file written by `dltrace run`")->required();
  cmd->add_option("--for", opts->for_object,
                  "print the search list of one object (basename, soname, path or #id)");
  cmd->add_option("--at", *at, "with --for: the state at this event seq instead of at its load");
  cmd->add_flag("--json", opts->json, "JSON instead of text (format \"dltrace-scopes\")");
  cmd->add_option("--color", *color, "auto|always|never (auto: on a terminal without NO_COLOR)")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  cmd->callback([opts, color, at, cmd, &result] {
    if (cmd->count("--at")) {
      if (opts->for_object.empty()) {
        result.set(UsageError("--at needs --for NAME"));
        return;
      }
      opts->at_seq = *at;
    }
    result.set(run_scopes(*opts, parse_color_mode(*color).value_or(ColorMode::kAuto)));
  });
}

}  // namespace dltrace::viewer

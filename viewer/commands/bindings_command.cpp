// `dltrace bindings TRACE [--for OBJ] [--symbol NAME] [--json]`: for each symbol reference of
// each object in the trace, the definition it binds to under ld.so's rules, offline: what
// LD_DEBUG=bindings (with LD_BIND_NOW) would have printed, from the trace and the ELF files.
// The engine is analysis/symbol_bindings; render/bindings_output prints it.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "analysis/elf_file.h"
#include "analysis/scope_graph.h"
#include "analysis/scope_queries.h"
#include "analysis/symbol_bindings.h"
#include "analysis/symbol_copies.h"
#include "commands/command.h"
#include "model/trace_model.h"
#include "render/bindings_output.h"

namespace dltrace::viewer {
namespace {

struct BindingsOptions {
  std::string trace;
  std::string for_object;
  std::string symbol;
  bool json = false;
};

absl::Status run_bindings(const BindingsOptions& o) {
  auto reader = open_trace(o.trace);
  if (!reader.ok()) return reader.status();
  const TraceModel model(**reader);
  ElfCache elf;
  const ScopeGraph graph(model, elf);
  std::vector<const ObjectRecord*> objects;
  if (o.for_object.empty()) {
    for (const ObjectRecord* obj : model.objects_by_load())
      if (!(obj->flags & format::kObjectVdso)) objects.push_back(obj);
  } else {
    objects = objects_named(model, o.for_object);
    if (objects.empty())
      return absl::NotFoundError(
          fmt::format("no object named \"{}\" in the trace (give a basename, soname, path or "
                      "#id; `dltrace tree` lists them)",
                      o.for_object));
  }
  std::vector<SymbolBinding> bindings;
  for (const ObjectRecord* obj : objects) {
    for (SymbolBinding& b : bind_object(graph, *obj, relocation_seq(*obj)))
      if (o.symbol.empty() || b.symbol == o.symbol) bindings.push_back(std::move(b));
  }
  // The two copies explain reports, so that the references they split are named as such.
  std::vector<ApiCopy> copies = find_api_copies(graph);
  std::erase_if(copies, [](const ApiCopy& c) { return !c.reported(); });
  if (o.json) return write_bindings_json(model, bindings, copies, stdout);
  write_bindings_text(model, bindings, copies, stdout);
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) return TraceError("cannot write the output");
  return absl::OkStatus();
}

}  // namespace

void register_bindings_command(CLI::App& app, CommandResult& result) {
  auto opts = std::make_shared<BindingsOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bindings",
      "Which definition each symbol reference of each object binds to, offline: what\n"
      "LD_DEBUG=bindings (with LD_BIND_NOW=1) prints, computed from the trace and the ELF\n"
      "files under ld.so's rules (the object's scopes in order, symbol versions, protected\n"
      "symbols, copy relocations). References that bind nowhere are listed after, then, where\n"
      "two copies of one API split the references listed, how many bind to each copy.\n\n"
      "Examples:\n"
      "  dltrace bindings app.trace --for libplugin.so\n"
      "  dltrace bindings app.trace --symbol PyObject_GetAttr --json");
  cmd->add_option("trace", opts->trace, "trace file written by `dltrace run`")->required();
  cmd->add_option("--for", opts->for_object,
                  "only the references of this object (basename, soname, path or #id)");
  cmd->add_option("--symbol", opts->symbol, "only the references to this symbol");
  cmd->add_flag("--json", opts->json, "JSON instead of text (format \"dltrace-bindings\")");
  cmd->callback([opts, &result] { result.set(run_bindings(*opts)); });
}

}  // namespace dltrace::viewer

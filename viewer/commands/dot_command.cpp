// `dltrace dot --graph load|scope TRACE [--all] [--focus NAME] [-o FILE]`: Graphviz DOT of the
// load graph (render/dot_load_graph.h) or the symbol-scope graph (render/dot_scope_graph.h).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "commands/command.h"
#include "model/trace_model.h"
#include "render/dot_load_graph.h"
#include "render/dot_scope_graph.h"

namespace dltrace::viewer {
namespace {

struct DotOptions {
  std::string graph = "load";
  std::string trace;
  std::string output;  // "" or "-": stdout
  LoadGraphOptions load;
};

absl::Status write_output(const std::string& text, const std::string& path) {
  if (path.empty() || path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    if (std::fflush(stdout) != 0 || std::ferror(stdout))
      return TraceError("cannot write the output");
    return absl::OkStatus();
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "w"), &std::fclose);
  if (!file) return TraceError(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  const bool written = std::fwrite(text.data(), 1, text.size(), file.get()) == text.size();
  if (std::fclose(file.release()) != 0 || !written) {
    return TraceError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status run_dot(const DotOptions& o) {
  if (o.graph != "load" && o.graph != "scope") {
    return UsageError(fmt::format("unknown --graph '{}'; use load or scope", o.graph));
  }
  auto reader = open_trace(o.trace);
  if (!reader.ok()) return reader.status();
  auto text = o.graph == "load"
                  ? load_graph_dot(**reader, o.load)
                  : scope_graph_dot(**reader, ScopeGraphOptions{o.load.all, o.load.focus});
  if (!text.ok()) return text.status();
  return write_output(*text, o.output);
}

}  // namespace

void register_dot_command(CLI::App& app, CommandResult& result) {
  auto opts = std::make_shared<DotOptions>();
  CLI::App* cmd = app.add_subcommand(
      "dot",
      "Graphviz DOT of the load graph: every object a node (name, path below it), an edge\n"
      "from the object whose code called dlopen to what it opened, labelled with the flags\n"
      "(requested → effective, orange, when an override changed them), dashed edges for\n"
      "DT_NEEDED, failed dlopens as red nodes with the dlerror() text as tooltip. System\n"
      "libraries that were not dlopen'ed are folded into one node unless --all.\n"
      "--graph scope draws the symbol scopes: one cluster per namespace's global scope and\n"
      "per dlopen group, objects in lookup order, and a red edge from each object whose\n"
      "symbol lookup failed to the object that has the symbol out of its sight.\n\n"
      "Example:\n"
      "  dltrace dot app.trace | dot -Tsvg -o load.svg\n"
      "  dltrace dot --focus libplugin.so --all app.trace -o plugin.dot");
  cmd->add_option("trace", opts->trace, "trace file written by `dltrace run`")->required();
  cmd->add_option("--graph,-g", opts->graph, "load (default) or scope")
      ->capture_default_str()
      ->check(CLI::IsMember({"load", "scope"}));  // also what completion offers
  cmd->add_flag("--all,-a", opts->load.all, "draw system libraries and the recorder one by one");
  cmd->add_option("--focus", opts->load.focus,
                  "only this object (basename, soname or path), what led to it and what it "
                  "brought in");
  cmd->add_option("-o,--output", opts->output, "write here instead of stdout");
  cmd->callback([opts, &result] { result.set(run_dot(*opts)); });
}

}  // namespace dltrace::viewer

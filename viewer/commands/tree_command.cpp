// `dltrace tree TRACE... [--all] [--depth N] [--color=auto|always|never]`: every object in load
// order, as a tree of who loaded whom, like libtree but explaining the run that happened:
// DT_NEEDED children under the object that needed them, dlopen'ed objects under the object whose
// code called dlopen (labelled with the call), failed dlopens as red leaves under their caller.
// Loads made by Python code are grouped under the script statement that caused them. With
// several traces (one per process), the process tree with each process's load tree under it.
#include "commands/tree_command.h"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "analysis/symbol_copies.h"
#include "commands/command.h"
#include "model/load_graph.h"
#include "model/process_tree.h"
#include "model/trace_model.h"
#include "render/tree_text.h"
#include "util/progress.h"

namespace dltrace::viewer {
namespace {

// The load tree of one trace, Python loads grouped under their statements.
std::string load_tree_of(const TraceReader& reader, const TreeOptions& options, bool color,
                         bool fork_child) {
  const TraceModel model(reader);
  const LoadGraph graph(model, PythonGrouping::kByStatement);
  return load_tree_text(graph, {.all = options.all,
                                .depth = options.depth,
                                .color = color,
                                .fork_child = fork_child,
                                .duplicates = duplicates_brought_by_dlopen(model)});
}

absl::Status write_all(const std::string& text, std::FILE* out) {
  std::fwrite(text.data(), 1, text.size(), out);
  if (std::fflush(out) != 0 || std::ferror(out)) return TraceError("cannot write the output");
  return absl::OkStatus();
}

absl::Status run_tree(const TreeOptions& o) {
  auto paths = expand_trace_paths(o.traces);
  if (!paths.ok()) return paths.status();
  const bool color = use_color(o.color, isatty(STDOUT_FILENO) == 1);
  const bool any_directory = std::ranges::any_of(o.traces, [](const std::string& p) {
    std::error_code ec;
    return std::filesystem::is_directory(p, ec);
  });
  if (paths->size() == 1 && !any_directory) {
    auto reader = open_trace(paths->front());
    if (!reader.ok()) return reader.status();
    const auto source = with_progress(**reader);  // prints at the end
    return tree_trace(*source, o, color, stdout);
  }
  // Several traces: one unreadable trace must not hide the others.
  std::vector<std::unique_ptr<TraceReader>> readers;
  std::vector<NamedTrace> traces;
  for (const std::string& path : *paths) {
    auto reader = open_trace(path);
    if (!reader.ok()) {
      report_error(reader.status());
      continue;
    }
    readers.push_back(*std::move(reader));
    traces.push_back(NamedTrace{path, readers.back().get()});
  }
  if (traces.empty()) return TraceError("none of the traces could be read");
  DLTRACE_RETURN_IF_ERROR(process_tree_trace(traces, o, color, stdout));
  if (traces.size() < paths->size()) {
    return TraceError(fmt::format("{} of {} traces could not be read (named above)",
                                  paths->size() - traces.size(), paths->size()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status tree_trace(const TraceReader& reader, const TreeOptions& options, bool color,
                        std::FILE* out) {
  return write_all(load_tree_of(reader, options, color, /*fork_child=*/false), out);
}

absl::Status process_tree_trace(const std::vector<NamedTrace>& traces, const TreeOptions& options,
                                bool color, std::FILE* out) {
  std::vector<const ProcessInfo*> processes;
  std::vector<std::string> paths;
  for (const NamedTrace& t : traces) {
    processes.push_back(&t.reader->process());
    paths.push_back(t.path);
  }
  const ProcessTree tree = build_process_tree(processes);
  // One trace's model at a time, made when its process is printed.
  auto load_tree = [&](size_t i) {
    return load_tree_of(*traces[i].reader, options, color,
                        tree.nodes[i].origin == ProcessOrigin::kFork);
  };
  return write_all(process_tree_text(tree, processes, paths, color, load_tree), out);
}

absl::StatusOr<std::vector<std::string>> expand_trace_paths(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
      out.push_back(path);
      continue;
    }
    std::vector<std::string> found;
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.ends_with(".trace") && it->is_regular_file(ec)) found.push_back(it->path().string());
    }
    if (ec) return TraceError(fmt::format("{}: {}", path, ec.message()));
    if (found.empty())
      return TraceError(fmt::format("{}: no *.trace files in this directory", path));
    std::ranges::sort(found);
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

void register_tree_command(CLI::App& app, CommandResult& result) {
  auto opts = std::make_shared<TreeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "tree",
      "Load order as a tree of who loaded whom. Roots: the executable (with its DT_NEEDED\n"
      "libraries below it) and LD_PRELOAD objects. A dlopen'ed object hangs under the object\n"
      "whose code called dlopen, labelled with the call: requested name, flags requested →\n"
      "effective (overrides marked), namespace, load time including constructors, and whether\n"
      "it went into the global scope. Its own DT_NEEDED libraries hang under it. A failed\n"
      "dlopen is a red ✗ leaf under its caller, with the dlerror() text. A second, dim line\n"
      "names the function that called dlopen.\n"
      "Loads made by Python code (extension modules, ctypes) are grouped under the top-level\n"
      "statement of the script that caused them (`python app.py:3: import numpy`, with their\n"
      "total load time); each load's line adds the import inside the package when it differs.\n"
      "Several traces, or a directory of them (DLTRACE_OUTPUT ending in '/'), give the process\n"
      "tree (pid/ppid, fork, exec), each process with its load tree; a fork child's objects\n"
      "from before the fork are folded.\n"
      "System libraries (/lib, /usr/lib, the vDSO, the loader) that were not dlopen'ed are\n"
      "folded into one count unless --all; so is dltrace's own recorder.\n\n"
      "Example:\n"
      "  dltrace run -o app.trace -- python3 -c 'import ctypes'\n"
      "  dltrace tree app.trace\n"
      "  dltrace tree app.trace --all --depth 2 --color=never | less\n"
      "  dltrace run -o traces/ -- python3 app.py && dltrace tree traces/");
  cmd->add_option("traces", opts->traces,
                  "trace file written by `dltrace run`; several, or a directory of them: the "
                  "process tree")
      ->required();
  cmd->add_flag("--all,-a", opts->all,
                "also show system libraries, the recorder and a fork child's inherited objects");
  cmd->add_option("--depth,-d", opts->depth, "show at most N levels below the roots")
      ->check(CLI::NonNegativeNumber);
  auto color = std::make_shared<std::string>("auto");
  cmd->add_option("--color", *color,
                  "auto (default: only on a terminal with NO_COLOR unset), always or never")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  cmd->callback([opts, color, &result] {
    opts->color = *color == "always"  ? ColorMode::kAlways
                  : *color == "never" ? ColorMode::kNever
                                      : ColorMode::kAuto;
    result.set(run_tree(*opts));
  });
}

}  // namespace dltrace::viewer

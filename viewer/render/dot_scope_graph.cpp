#include "render/dot_scope_graph.h"

#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "analysis/elf_file.h"
#include "analysis/explain.h"
#include "analysis/scope_graph.h"
#include "common/dlopen_flags.h"
#include "fmt/format.h"
#include "model/trace_model.h"
#include "render/dot_text.h"
#include "util/status.h"

namespace dltrace::viewer {
namespace {

bool names(const TraceModel& m, const ObjectRecord& o, std::string_view name) {
  std::string_view path = m.path_of(o);
  return name == path || name == o.soname || name == basename_of(path);
}

class ScopeDot {
 public:
  ScopeDot(const ScopeGraph& graph, const ExplainResult& findings, const ScopeGraphOptions& options)
      : model_(graph.model()), graph_(graph), findings_(findings), options_(options) {}

  absl::StatusOr<std::string> render() {
    collect_failures();
    std::vector<size_t> lists;
    for (size_t i = 0; i < graph_.lists().size(); ++i) {
      if (options_.focus.empty() || list_has_focus(graph_.lists()[i])) lists.push_back(i);
    }
    if (!options_.focus.empty() && lists.empty())
      return UsageError(
          fmt::format("--focus: no object named \"{}\" in the trace", options_.focus));

    out_ =
        "digraph scopes {\n  graph [rankdir=LR, fontname=\"sans-serif\", compound=true,"
        " label=\"symbol scopes: lookups search each scope left to right, the global scope first\","
        " labelloc=t];\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#f5f5f5\","
        " fontname=\"sans-serif\", fontsize=10];\n  edge [fontname=\"sans-serif\", fontsize=9];\n";
    for (size_t i : lists) cluster(i);
    failures();
    out_ += "}\n";
    return out_;
  }

 private:
  bool list_has_focus(const SearchList& list) const {
    for (const auto& m : list.members) {
      const ObjectRecord* o = model_.reader().object(m.object);
      if (o && names(model_, *o, options_.focus)) return true;
    }
    return false;
  }

  std::string title(const SearchList& list) const {
    if (list.kind == SearchList::Kind::kGlobal)
      return fmt::format("global scope, namespace {}", list.lmid);
    std::string text = fmt::format("local scope of dlopen #{}", list.opened_by);
    if (auto e = model_.reader().event(list.opened_by))
      text += fmt::format(": \"{}\" {}", dot_clean(model_.reader().string(e->name)),
                          flags_to_string(e->effective_flags));
    return text;
  }

  void cluster(size_t index) {
    const SearchList& list = graph_.lists()[index];
    const bool global = list.kind == SearchList::Kind::kGlobal;
    out_ += fmt::format(
        "  subgraph cluster_{} {{\n    label={};\n    style=\"rounded\";\n"
        "    color=\"{}\";\n",
        index, dot_quoted(title(list)), global ? "#2b6cb0" : "#718096");
    std::string previous;
    size_t folded = 0;
    std::string folded_names;
    for (const auto& m : list.members) {
      const ObjectRecord* o = model_.reader().object(m.object);
      if (!o) continue;
      const bool system = !options_.all && is_system_path(model_.path_of(*o)) &&
                          !model_.is_main_program(*o) && o->cause != format::ObjectCause::kDlopen &&
                          !keep_.contains(std::string(model_.path_of(*o)));
      if (system || (o->flags & format::kObjectRecorder && !options_.all)) {
        ++folded;
        folded_names += (folded_names.empty() ? "" : ", ") + model_.name_of(*o);
        node_of_[{index, o->id}] = fmt::format("s{}_sys", index);
        continue;
      }
      std::string id = fmt::format("s{}_o{}", index, o->id);
      node_of_[{index, o->id}] = id;
      std::string note =
          global && m.since_seq
              ? fmt::format("<br/><font point-size=\"8\">joined at #{}</font>", m.since_seq)
              : "";
      if (o->unload_seq)
        note += fmt::format("<br/><font point-size=\"8\">unloaded at #{}</font>", *o->unload_seq);
      out_ += fmt::format(
          "    {} [label=<<b>{}</b><br/><font point-size=\"8\" "
          "color=\"#555555\">{}</font>{}>{}];\n",
          id, dot_html(model_.name_of(*o)), dot_html(model_.path_of(*o)), note,
          o->unload_seq ? ", fillcolor=\"#e2e2e2\", fontcolor=\"#777777\"" : "");
      if (!previous.empty())
        out_ += fmt::format("    {} -> {} [color=\"#a0aec0\", arrowsize=0.6];\n", previous, id);
      previous = id;
    }
    if (folded) {
      std::string id = fmt::format("s{}_sys", index);
      out_ += fmt::format("    {} [label={}, shape=note, fillcolor=\"#edf2f7\", tooltip={}];\n", id,
                          dot_quoted(fmt::format("{} system librar{} (--all shows them)", folded,
                                                 folded == 1 ? "y" : "ies")),
                          dot_quoted(dot_clean(folded_names)));
      if (!previous.empty())
        out_ += fmt::format("    {} -> {} [color=\"#a0aec0\", arrowsize=0.6];\n", previous, id);
    }
    if (list.members.empty()) out_ += fmt::format("    s{}_empty [label=\"(empty)\"];\n", index);
    out_ += "  }\n";
  }

  struct Failure {
    uint64_t seq;
    std::string kind, title, symbol, needed_by, defined_in;
  };

  // The failures explain attributes to visibility; their defining objects are never folded.
  void collect_failures() {
    for (const Finding& f : findings_.findings) {
      if (f.kind != "undefined-symbol-local-scope" &&
          f.kind != "undefined-symbol-other-namespace" && f.kind != "symbol-not-exported")
        continue;
      Failure failure{f.seq, f.kind, f.title, "", "", ""};
      for (const auto& [k, v] : f.facts) {
        if (k == "symbol") failure.symbol = v;
        if (k == "needed_by") failure.needed_by = v;
        if (k == "defined_in") failure.defined_in = v;
      }
      if (!options_.focus.empty() && basename_of(failure.needed_by) != options_.focus &&
          basename_of(failure.defined_in) != options_.focus &&
          failure.needed_by != options_.focus && failure.defined_in != options_.focus)
        continue;
      keep_.insert(failure.defined_in);
      failures_.push_back(std::move(failure));
    }
  }

  // Red edges: the object that needed a symbol -> the object that has it, out of its sight.
  void failures() {
    int n = 0;
    for (const Failure& f : failures_) {
      std::string target;
      size_t best_list = SIZE_MAX;
      for (const auto& [key, id] : node_of_) {
        const ObjectRecord* o = model_.reader().object(key.second);
        if (o && model_.path_of(*o) == f.defined_in && key.first < best_list) {
          target = id;
          best_list = key.first;
        }
      }
      std::string source = fmt::format("fail{}", n++);
      out_ += fmt::format(
          "  {} [label=<<b>{}</b><br/><font point-size=\"8\">#{} failed</font>>, "
          "color=\"#c53030\", fontcolor=\"#c53030\", fillcolor=\"#fff5f5\", tooltip={}];\n",
          source, dot_html(basename_of(f.needed_by)), f.seq, dot_quoted(dot_clean(f.title)));
      if (target.empty()) continue;
      std::string why = f.kind == "symbol-not-exported"            ? " (not exported)"
                        : f.kind == "undefined-symbol-local-scope" ? " (RTLD_LOCAL)"
                                                                   : " (other namespace)";
      out_ += fmt::format(
          "  {} -> {} [color=\"#c53030\", style=dashed, label={}, fontcolor=\"#c53030\"];\n",
          source, target, dot_quoted(fmt::format("needs {}{}", dot_clean(f.symbol), why)));
    }
  }

  const TraceModel& model_;
  const ScopeGraph& graph_;
  const ExplainResult& findings_;
  const ScopeGraphOptions& options_;
  std::string out_;
  absl::flat_hash_map<std::pair<size_t, uint32_t>, std::string> node_of_;
  absl::flat_hash_set<std::string> keep_;
  std::vector<Failure> failures_;
};

}  // namespace

absl::StatusOr<std::string> scope_graph_dot(const ScopeGraph& graph, const ExplainResult& findings,
                                            const ScopeGraphOptions& options) {
  ScopeDot dot(graph, findings, options);
  return dot.render();
}

absl::StatusOr<std::string> scope_graph_dot(const TraceReader& reader,
                                            const ScopeGraphOptions& options) {
  TraceModel model(reader);
  ElfCache elf;
  ScopeGraph graph(model, elf);
  return scope_graph_dot(graph, explain_trace(model, elf, graph), options);
}

}  // namespace dltrace::viewer

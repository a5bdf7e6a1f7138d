#include "render/dot_load_graph.h"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/dlopen_flags.h"
#include "model/load_graph.h"
#include "model/trace_model.h"
#include "render/dot_text.h"
#include "util/status.h"

namespace dltrace::viewer {
namespace {

constexpr size_t kNone = static_cast<size_t>(-1);

enum class NodeKind { kObject, kFailedOpen, kSystem };
enum class EdgeKind { kNeeded, kDlopen, kFailed };

struct Node {
  NodeKind kind = NodeKind::kObject;
  const ObjectRecord* object = nullptr;
  // Failed dlopen: what was asked for and why it failed.
  std::string file;
  std::string error;
  bool in_flight = false;  // the process ended inside the call
  size_t count = 1;        // failed dlopens folded into this node
  bool system = false;     // folded into the system node unless --all
  bool hidden = false;     // the recorder, unless --all
};

struct Edge {
  size_t from = kNone;
  size_t to = kNone;
  EdgeKind kind = EdgeKind::kNeeded;
  std::string label;
  bool overridden = false;
  size_t count = 1;
};

// The load graph as drawn: the model's objects (same numbering), then its failed dlopens
// folded once more, by caller, name and error (the flags are on the arrows).
class LoadGraphDot {
 public:
  LoadGraphDot(const LoadGraph& graph, const LoadGraphOptions& options)
      : graph_(graph), model_(graph.model()), reader_(model_.reader()), options_(options) {}

  absl::StatusOr<std::string> render() {
    build();
    std::vector<bool> keep(nodes_.size(), true);
    if (!options_.focus.empty()) {
      DLTRACE_RETURN_IF_ERROR(focus(keep));
    }
    return dot(keep);
  }

 private:
  void build() {
    for (size_t i = 0; i < graph_.object_count(); ++i) {
      const ObjectRecord* o = graph_.nodes()[i].object;
      Node n;
      n.object = o;
      n.system = !options_.all && model_.is_system_object(*o);
      n.hidden = !options_.all && (o->flags & format::kObjectRecorder);
      nodes_.push_back(std::move(n));
    }
    // Model node of each failed open -> its drawn node.
    std::vector<size_t> failed_node(graph_.failed_opens().size(), kNone);
    absl::flat_hash_map<std::tuple<size_t, std::string, std::string, bool>, size_t> failed_nodes;
    for (size_t k = 0; k < graph_.failed_opens().size(); ++k) {
      const FailedOpen& f = graph_.failed_opens()[k];
      auto [it, fresh] = failed_nodes.try_emplace(
          {graph_.node_of(f.caller_object), f.file, f.error, f.in_flight}, nodes_.size());
      if (fresh) {
        Node n;
        n.kind = NodeKind::kFailedOpen;
        n.file = f.file;
        n.error = f.error;
        n.in_flight = f.in_flight;
        n.count = 0;
        nodes_.push_back(std::move(n));
      }
      nodes_[it->second].count += f.repeats;
      failed_node[k] = it->second;
    }
    for (const LoadEdge& e : graph_.edges()) {
      Edge edge{e.from, e.to, EdgeKind::kDlopen, label(e), e.overridden, e.count};
      switch (e.kind) {
        case LoadEdge::Kind::kNeeded:
          edge.kind = EdgeKind::kNeeded;
          break;
        case LoadEdge::Kind::kDlopen:
        case LoadEdge::Kind::kDlopenEventLost:
          break;
        case LoadEdge::Kind::kFailedOpen:
          edge.kind = EdgeKind::kFailed;
          edge.to = failed_node[graph_.nodes()[e.to].index];
          break;
      }
      edges_.push_back(std::move(edge));
    }
  }

  // The flags of a call (requested -> effective when an override changed them), with the
  // namespace of a dlmopen.
  static std::string label(const LoadEdge& e) {
    switch (e.kind) {
      case LoadEdge::Kind::kNeeded:
        return "";
      case LoadEdge::Kind::kDlopenEventLost:
        return "dlopen (event lost)";
      case LoadEdge::Kind::kDlopen:
      case LoadEdge::Kind::kFailedOpen:
        break;
    }
    std::string label = flags_to_string(e.flags);
    if (e.overridden) {
      label = fmt::format("{} → {} (override)", label, flags_to_string(e.effective_flags));
    }
    if (e.call == static_cast<uint16_t>(format::CallKind::kDlmopen)) {
      label = fmt::format("dlmopen ns {}: {}", e.lmid, label);
    }
    return label;
  }

  bool matches(const Node& n) const {
    const std::string_view f = options_.focus;
    if (n.kind == NodeKind::kFailedOpen) return n.file == f || basename_of(n.file) == f;
    const ObjectRecord& o = *n.object;
    const std::string_view path = model_.path_of(o);
    return path == f || basename_of(path) == f || o.soname == f || model_.name_of(o) == f;
  }

  // Keeps the focused objects, everything that led to them and everything they brought in.
  absl::Status focus(std::vector<bool>& keep) {
    std::vector<std::vector<size_t>> down(nodes_.size()), up(nodes_.size());
    for (const Edge& e : edges_) {
      down[e.from].push_back(e.to);
      up[e.to].push_back(e.from);
    }
    std::vector<size_t> seeds;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (matches(nodes_[i])) seeds.push_back(i);
    }
    if (seeds.empty()) {
      return UsageError(
          fmt::format("--focus {}: no object or dlopen'ed file of that name in the "
                      "trace (give a basename, soname or path)",
                      options_.focus));
    }
    std::fill(keep.begin(), keep.end(), false);
    for (const auto* adjacency : {&down, &up}) {
      std::vector<bool> seen(nodes_.size(), false);
      std::deque<size_t> todo(seeds.begin(), seeds.end());
      while (!todo.empty()) {
        const size_t i = todo.front();
        todo.pop_front();
        if (seen[i]) continue;
        seen[i] = true;
        keep[i] = true;
        for (size_t next : (*adjacency)[i]) todo.push_back(next);
      }
    }
    for (size_t i : seeds) nodes_[i].system = false;  // what was asked for is always drawn
    return absl::OkStatus();
  }

  std::string dot(const std::vector<bool>& keep) {
    // Where each node is drawn: itself, the one system node, or nowhere.
    const size_t system_node = nodes_.size();
    std::vector<size_t> drawn_as(nodes_.size(), kNone);
    size_t folded = 0;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!keep[i] || nodes_[i].hidden) continue;
      drawn_as[i] = nodes_[i].system ? system_node : i;
      if (nodes_[i].system) ++folded;
    }

    std::string out;
    const ProcessInfo& p = reader_.process();
    fmt::format_to(
        std::back_inserter(out),
        "digraph load {{\n"
        "  graph [rankdir=LR, fontname=\"Helvetica\", labelloc=t, label={}];\n"
        "  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=11];\n"
        "  edge [fontname=\"Helvetica\", fontsize=9];\n",
        dot_quoted(fmt::format(
            "load graph of {} (pid {}){}", p.exe.empty() ? "?" : p.exe, p.pid,
            options_.focus.empty() ? std::string() : fmt::format(", focus {}", options_.focus))));
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (drawn_as[i] == i) node_line(out, i);
    }
    if (folded) {
      fmt::format_to(std::back_inserter(out),
                     "  system [label=\"{} system librar{}\", shape=box3d, style=\"\", "
                     "color=gray50, fontcolor=gray30, tooltip=\"dltrace dot --all draws them "
                     "one by one\"];\n",
                     folded, folded == 1 ? "y" : "ies");
    }
    // Edges between drawn nodes; folding merges parallel edges.
    absl::flat_hash_map<std::tuple<size_t, size_t, int, std::string>, size_t> merged;
    std::vector<Edge> lines;
    for (const Edge& e : edges_) {
      const size_t from = drawn_as[e.from], to = drawn_as[e.to];
      if (from == kNone || to == kNone || from == to) continue;
      auto [it, fresh] = merged.try_emplace({from, to, int(e.kind), e.label}, lines.size());
      if (fresh) {
        Edge copy = e;
        copy.from = from;
        copy.to = to;
        lines.push_back(std::move(copy));
      } else {
        lines[it->second].count += e.count;
      }
    }
    for (const Edge& e : lines) edge_line(out, e, system_node);
    out.append("}\n");
    return out;
  }

  static std::string id(size_t i, size_t system_node) {
    return i == system_node ? std::string("system") : fmt::format("n{}", i);
  }

  void node_line(std::string& out, size_t i) const {
    const Node& n = nodes_[i];
    if (n.kind == NodeKind::kFailedOpen) {
      std::string label = fmt::format("✗ {}", dot_html(n.file));
      if (n.count > 1) label.append(fmt::format(" ×{}", n.count));
      fmt::format_to(std::back_inserter(out),
                     "  {} [label=<{}<BR/><FONT POINT-SIZE=\"9\">{}</FONT>>, "
                     "color=red, fontcolor=red, style=\"rounded,filled\", fillcolor=\"#fff0f0\", "
                     "tooltip={}];\n",
                     id(i, kNone), label,
                     n.in_flight ? "never returned: the process ended inside it" : "dlopen failed",
                     dot_quoted(n.in_flight ? std::string("the process ended inside this call")
                                : n.error.empty() ? std::string("failed (no dlerror text)")
                                                  : n.error));
      return;
    }
    const ObjectRecord& o = *n.object;
    const std::string_view path = model_.path_of(o);
    std::string notes;
    if (model_.is_main_program(o))
      notes = "executable";
    else if (o.cause == format::ObjectCause::kPreload)
      notes = "preload";
    if (o.flags & format::kObjectRecorder) notes = "dltrace recorder";
    if (o.lmid != 0) notes.append(notes.empty() ? "" : ", ").append(fmt::format("ns {}", o.lmid));
    if (o.unload_seq) {
      notes.append(notes.empty() ? "" : ", ")
          .append(fmt::format("unloaded at seq {}", *o.unload_seq));
    }
    std::string label = fmt::format("<B>{}</B>", dot_html(model_.name_of(o)));
    if (!path.empty() && path != model_.name_of(o)) {
      label.append(
          fmt::format("<BR/><FONT POINT-SIZE=\"8\" COLOR=\"gray45\">{}</FONT>", dot_html(path)));
    }
    if (!notes.empty()) {
      label.append(
          fmt::format("<BR/><FONT POINT-SIZE=\"8\" COLOR=\"gray45\">{}</FONT>", dot_html(notes)));
    }
    std::string attrs;
    if (model_.is_main_program(o)) attrs = ", peripheries=2";
    if (o.unload_seq) attrs.append(", style=\"rounded,dashed\"");
    fmt::format_to(std::back_inserter(out), "  {} [label=<{}>, tooltip={}{}];\n", id(i, kNone),
                   label, dot_quoted(path.empty() ? model_.name_of(o) : std::string(path)), attrs);
  }

  static void edge_line(std::string& out, const Edge& e, size_t system_node) {
    std::string label = e.label;
    if (e.count > 1) label.append(fmt::format(" ×{}", e.count));
    std::string attrs;
    switch (e.kind) {
      case EdgeKind::kNeeded:
        attrs = "style=dashed, color=gray45, arrowhead=empty, tooltip=\"DT_NEEDED\"";
        if (e.count > 1) attrs.append(fmt::format(", label={}", dot_quoted(label)));
        break;
      case EdgeKind::kDlopen:
        attrs = fmt::format("label={}{}", dot_quoted(label),
                            e.overridden ? ", color=darkorange, fontcolor=darkorange3" : "");
        break;
      case EdgeKind::kFailed:
        attrs = fmt::format("label={}, color=red, fontcolor=red", dot_quoted(label));
        break;
    }
    fmt::format_to(std::back_inserter(out), "  {} -> {} [{}];\n", id(e.from, system_node),
                   id(e.to, system_node), attrs);
  }

  const LoadGraph& graph_;
  const TraceModel& model_;
  const TraceReader& reader_;
  const LoadGraphOptions& options_;
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;  // the model's arrows, failed opens as drawn
};

}  // namespace

absl::StatusOr<std::string> load_graph_dot(const LoadGraph& graph,
                                           const LoadGraphOptions& options) {
  return LoadGraphDot(graph, options).render();
}

absl::StatusOr<std::string> load_graph_dot(const TraceReader& reader,
                                           const LoadGraphOptions& options) {
  const TraceModel model(reader);
  return load_graph_dot(LoadGraph(model, PythonGrouping::kNone), options);
}

}  // namespace dltrace::viewer

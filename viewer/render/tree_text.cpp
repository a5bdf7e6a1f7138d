#include "render/tree_text.h"

#include <fmt/format.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "analysis/python_imports.h"
#include "analysis/symbolizer.h"
#include "common/dlopen_flags.h"
#include "model/in_flight.h"
#include "model/trace_model.h"
#include "render/duration_text.h"
#include "render/terminal_style.h"
#include "render/visible_text.h"

namespace dltrace::viewer {
namespace {

constexpr size_t kNone = LoadNode::kNone;
constexpr int kMaxPrintDepth = 256;  // a damaged trace must not recurse without bound

// What the text shows of a node, which depends on --all and on the process.
struct Shown {
  bool folded = false;  // hidden unless --all (system library / the recorder / inherited)
  bool system = false;
  bool inherited = false;    // loaded before the fork, in the parent
  bool visible = false;      // not folded, or something visible hangs below
  size_t visible_below = 0;  // visible descendants
};

class LoadTreeText {
 public:
  LoadTreeText(const LoadGraph& graph, const LoadTreeTextOptions& options)
      : graph_(graph),
        model_(graph.model()),
        reader_(model_.reader()),
        options_(options),
        style_{options.color},
        symbolizer_(reader_.process().exe),
        sources_(reader_.process().cwd) {}

  std::string text() && {
    decide_what_is_shown();
    for (size_t r : graph_.roots()) {
      if (shown_[r].visible) print_node(r, "", "", 0);
    }
    if (hidden_system_) {
      out("{}{} system librar{} hidden (--all to show){}\n", style_.dim(), hidden_system_,
          hidden_system_ == 1 ? "y" : "ies", style_.reset());
    }
    if (hidden_inherited_) {
      out("{}{} object{} loaded before the fork hidden (--all to show){}\n", style_.dim(),
          hidden_inherited_, hidden_inherited_ == 1 ? "" : "s", style_.reset());
    }
    for (const auto& s : recovery_sentences(reader_)) out("note: {}\n", s);
    return std::move(buf_);
  }

 private:
  template <typename... Args>
  void out(fmt::format_string<shown_t<Args>...> f, Args&&... args) {
    append_visible_format(buf_, f, std::forward<Args>(args)...);
  }

  void decide_what_is_shown() {
    const auto& nodes = graph_.nodes();
    shown_.resize(nodes.size());
    for (size_t i = 0; i < graph_.object_count(); ++i) {
      const ObjectRecord& o = *nodes[i].object;
      Shown& s = shown_[i];
      s.system = model_.is_system_object(o);
      s.inherited = options_.fork_child && o.load_seq == 0 && !model_.is_main_program(o);
      s.folded = !options_.all && (s.system || s.inherited || (o.flags & format::kObjectRecorder));
      if (options_.duplicates.contains(o.id)) s.folded = s.system = false;
    }
    for (size_t r : graph_.roots()) compute_visibility(r);
    for (const Shown& s : shown_) {
      if (!s.visible && s.system) ++hidden_system_;
      if (!s.visible && s.inherited && !s.system) ++hidden_inherited_;
    }
  }

  // Post-order without recursion, over the whole tree: a chain of 100,000 nested loads must
  // neither overflow the stack nor vanish below the printed depth (it says "… N more below").
  void compute_visibility(size_t root) {
    std::vector<std::pair<size_t, size_t>> stack{{root, 0}};  // node, its next child
    while (!stack.empty()) {
      const size_t i = stack.back().first;
      const auto& children = graph_.nodes()[i].children;
      if (stack.back().second < children.size()) {
        const size_t c = children[stack.back().second++];
        stack.emplace_back(c, 0);
        continue;
      }
      size_t below = 0;
      bool any = false;
      for (size_t c : children) {
        if (shown_[c].visible) {
          any = true;
          below += 1 + shown_[c].visible_below;
        }
      }
      shown_[i].visible = !shown_[i].folded || any;
      shown_[i].visible_below = below;
      stack.pop_back();
    }
  }

  // `lead`: this line's prefix (with its branch); `indent`: the prefix of its children.
  void print_node(size_t i, const std::string& lead, const std::string& indent, int depth) {
    const LoadNode& n = graph_.nodes()[i];
    out("{}", lead);
    switch (n.kind) {
      case LoadNode::Kind::kObject:
        object_line(*n.object);
        break;
      case LoadNode::Kind::kPythonStatement:
        statement_line(graph_.python_statements()[n.index]);
        break;
      case LoadNode::Kind::kFailedOpen:
        failed_line(graph_.failed_opens()[n.index]);
        break;
    }
    out("\n");
    std::vector<size_t> shown;
    for (size_t c : n.children) {
      if (shown_[c].visible) shown.push_back(c);
    }
    if (const std::string details = details_text(n); !details.empty()) {
      out("{}{}{}{}{}\n", indent, shown.empty() ? "  " : "│ ", style_.dim(), details,
          style_.reset());
    }
    if (shown.empty()) return;
    if ((options_.depth >= 0 && depth >= options_.depth) || depth >= kMaxPrintDepth) {
      out("{}└── {}… {} more below (raise --depth){}\n", indent, style_.dim(),
          shown_[i].visible_below, style_.reset());
      return;
    }
    for (size_t k = 0; k < shown.size(); ++k) {
      const bool last = k + 1 == shown.size();
      print_node(shown[k], indent + (last ? "└── " : "├── "), indent + (last ? "    " : "│   "),
                 depth + 1);
    }
  }

  void path_text(const ObjectRecord& o) {
    const std::string_view path = model_.path_of(o);
    if (path.empty()) {
      out("{}{}{}", style_.bold(), model_.name_of(o), style_.reset());
      return;
    }
    const std::string_view base = basename_of(path);
    const std::string_view dir = path.substr(0, path.size() - base.size());
    if (!dir.empty()) out("{}{}{}", style_.dim(), dir, style_.reset());
    out("{}{}{}", style_.bold(), base, style_.reset());
  }

  std::string flags_text(int requested, int effective, bool overridden, uint32_t line) const {
    std::string s = flags_to_string(requested);
    if (overridden || requested != effective) {
      s += fmt::format(" → {} [override", flags_to_string(effective));
      const std::string& config = reader_.process().config;
      if (!config.empty() || line) {
        s += fmt::format(" {}:{}", config.empty() ? "config" : basename_of(config), line);
      }
      s += "]";
    }
    return s;
  }

  // Who called dlopen (function and object), and the Python line when it says more than the
  // statement the node is grouped under: the import inside a package, or the top-level
  // statement of a nested load. The continuation line of a dlopen'ed or failed node.
  std::string details_text(const LoadNode& n) {
    const uint64_t seq = graph_.open_seq_of(n);
    if (seq == 0) return {};
    uint32_t caller_object = format::kNoId;
    uint64_t caller_ip = 0;
    if (n.kind == LoadNode::Kind::kObject) {
      const auto e = reader_.event(seq);
      if (!e) return {};
      caller_object = e->caller_object;
      caller_ip = e->caller_ip;
    } else {
      const FailedOpen& f = graph_.failed_opens()[n.index];
      caller_object = f.caller_object;
      caller_ip = f.caller_ip;
    }
    std::string text;
    auto add = [&text](std::string_view part) {
      if (!text.empty()) text.append("; ");
      text.append(part);
    };
    if (const std::string caller = caller_text(caller_object, caller_ip, seq); !caller.empty()) {
      add(fmt::format("caller {}", caller));
    }
    if (const PythonOpen* open = graph_.python_open(seq)) {
      const PyAttribution& w = open->where;
      const bool grouped = !open->nested && w.top;
      if (w.site && (!grouped || w.site != w.top)) {
        add(fmt::format("{} {}", w.via_import ? "import at" : "python", py_line_text(*w.site)));
      }
      if (!grouped && w.top && w.top != w.site) {
        add(fmt::format("top-level {}", py_line_text(*w.top)));
      }
    }
    return text;
  }

  // "FUNCTION in OBJECT", or "OBJECT+0xOFFSET" when the function is unknown.
  std::string caller_text(uint32_t object_id, uint64_t ip, uint64_t seq) {
    const ObjectRecord* o = model_.object_for(ip, seq, object_id);
    if (!o) return ip ? fmt::format("{:#x}", ip) : std::string();
    const std::string name = model_.name_of(*o);
    if (ip == 0) return name;
    const SymbolInfo& s = symbolizer_.lookup(*o, ip);
    if (!s.function.empty()) return fmt::format("{} in {}", s.function, name);
    return fmt::format("{}+{:#x}", name, ip >= o->base ? ip - o->base : ip);
  }

  // python /app/main.py:2: import numpy  (3 loads, 3.000 ms incl. constructors)
  void statement_line(const PythonStatement& g) {
    out("{}python{} {}{}{}", style_.dim(), style_.reset(), style_.bold(), py_line_text(g.top),
        style_.reset());
    if (const auto source = sources_.line(g.top.file, g.top.line)) out(": {}", *source);
    out("  {}({} load{}, {} incl. constructors", style_.dim(), g.loads, g.loads == 1 ? "" : "s",
        duration_text(g.total_ns));
    if (g.failed) out(", {} failed", g.failed);
    out("){}", style_.reset());
    if (g.truncated) {
      out(" {}[Python stack cut at {} frames: the statement may be further out]{}", style_.dim(),
          kRecordedPythonFrames, style_.reset());
    }
  }

  void object_line(const ObjectRecord& o) {
    path_text(o);
    if (model_.is_main_program(o)) {
      out(" [executable]");
    } else if (o.cause == format::ObjectCause::kPreload) {
      out(" [preload]");
    } else if (o.cause == format::ObjectCause::kStartup) {
      out(" [startup]");
    }
    if (o.flags & format::kObjectRecorder) out(" [dltrace recorder]");
    if (o.flags & format::kObjectDiscovered) out(" [loaded without a traced call]");
    if (o.cause == format::ObjectCause::kDlopen && o.opened_by == 0) {
      out(" [dlopen'ed before the fork]");
    } else if (o.cause == format::ObjectCause::kDlopen) {
      dlopen_label(o);
    } else if (o.lmid != 0) {
      out(" ns {}", o.lmid);
    }
    if (o.unload_seq) out(" {}unloaded at seq {}{}", style_.dim(), *o.unload_seq, style_.reset());
    if (auto it = options_.duplicates.find(o.id); it != options_.duplicates.end()) {
      const ObjectRecord* other = reader_.object(it->second);
      out(" {}[second copy of {}]{}", style_.yellow(),
          other ? model_.path_of(*other) : std::string_view("another object"), style_.reset());
    }
  }

  void dlopen_label(const ObjectRecord& o) {
    const auto e = o.opened_by ? reader_.event(o.opened_by) : std::nullopt;
    out("  {}", style_.dim());
    if (!e) {
      out("dlopen (event seq {} not readable)", o.opened_by);
    } else {
      // The requested name as the program passed it, unless it is the path above or its
      // basename (nothing to add).
      std::string file = "NULL, ";
      if (reader_.has_string(e->name)) {
        const std::string_view name = reader_.string(e->name);
        const std::string_view path = model_.path_of(o);
        file = name == path || name == basename_of(path) ? std::string()
                                                         : fmt::format("\"{}\", ", name);
      }
      out("{}({}{})", call_name(e->call), file,
          flags_text(e->flags, e->effective_flags, e->bits & format::kEventOverridden,
                     e->override_line));
      if (e->lmid != 0 || e->call == static_cast<uint16_t>(format::CallKind::kDlmopen)) {
        out(" ns {}", e->lmid);
      }
      out(" {} incl. constructors", duration_text(model_.duration_ns(*e)));
    }
    out("{}", style_.reset());
    if (o.global_at_load()) {
      out(" (global)");
    } else if (o.promote_seq) {
      out(" (local, global from seq {})", *o.promote_seq);
    } else {
      out(" (local)");
    }
  }

  void failed_line(const FailedOpen& f) {
    if (f.in_flight) {
      if (const auto e = reader_.event(f.seq)) {
        out("{}✗ {}{} {}[seq {}]{}", style_.red(), in_flight_text(model_, *e), style_.reset(),
            style_.dim(), f.seq, style_.reset());
        return;
      }
    }
    out("{}✗ {}(\"{}\", {})", style_.red(), call_name(f.call), f.file,
        flags_text(f.flags, f.effective_flags, f.overridden, f.override_line));
    if (f.call == static_cast<uint16_t>(format::CallKind::kDlmopen)) out(" ns {}", f.lmid);
    out(" failed");
    if (!f.error.empty()) out(": {}", f.error);
    if (f.repeats > 1) {
      out("{} {}[seq {}, {} times, the last at seq {}]{}", style_.reset(), style_.dim(), f.seq,
          f.repeats, f.last_seq, style_.reset());
    } else {
      out("{} {}[seq {}]{}", style_.reset(), style_.dim(), f.seq, style_.reset());
    }
  }

  const LoadGraph& graph_;
  const TraceModel& model_;
  const TraceReader& reader_;
  const LoadTreeTextOptions& options_;
  TerminalStyle style_;
  std::vector<Shown> shown_;  // per node of graph_
  size_t hidden_system_ = 0;
  size_t hidden_inherited_ = 0;
  Symbolizer symbolizer_;
  SourceLines sources_;
  std::string buf_;
};

// The command line, cut to a readable length (a spawn child's can be long).
std::string command_line(const ProcessInfo& p) {
  constexpr size_t kMaxChars = 120;
  std::string s;
  for (const std::string& a : p.argv) {
    if (!s.empty()) s.push_back(' ');
    s.append(a);
  }
  if (s.empty()) s = p.exe.empty() ? "?" : p.exe;
  if (s.size() > kMaxChars) {
    s.resize(kMaxChars);
    s.append("…");
  }
  return s;
}

class ProcessTreeText {
 public:
  ProcessTreeText(const ProcessTree& tree, const std::vector<const ProcessInfo*>& processes,
                  const std::vector<std::string>& trace_paths, bool color,
                  const std::function<std::string(size_t)>& load_tree)
      : tree_(tree),
        processes_(processes),
        trace_paths_(trace_paths),
        style_{color},
        load_tree_(load_tree) {}

  std::string text() && {
    for (size_t k = 0; k < tree_.roots.size(); ++k) {
      if (k) buf_.push_back('\n');
      print_process(tree_.roots[k], "", "", 0);
    }
    return std::move(buf_);
  }

 private:
  // `lead`: this process's line prefix (with its branch); `indent`: its children's prefix.
  // Its load tree goes between the two, with a bar when child processes follow.
  void print_process(size_t i, const std::string& lead, const std::string& indent, int depth) {
    const ProcessNode& node = tree_.nodes[i];
    const ProcessInfo& p = *processes_[i];
    buf_.append(lead);
    append_visible_format(buf_, "{}pid {}{}", style_.bold(), p.pid, style_.reset());
    switch (node.origin) {
      case ProcessOrigin::kFork:
        buf_.append(" (fork)");
        break;
      case ProcessOrigin::kExec:
        buf_.append(" (exec)");
        break;
      case ProcessOrigin::kRoot:
      case ProcessOrigin::kChild:
        break;
    }
    append_visible_format(buf_, " {}  {}[{}] {}{}\n", command_line(p), style_.dim(), end_summary(p),
                          basename_of(trace_paths_[i]), style_.reset());

    const std::string content_indent = indent + (node.children.empty() ? "    " : "│   ");
    const std::string loads = load_tree_(i);
    std::string_view text = loads;
    while (!text.empty()) {
      const size_t nl = text.find('\n');
      const std::string_view line = text.substr(0, nl);
      buf_.append(content_indent);
      buf_.append(line);
      buf_.push_back('\n');
      if (nl == std::string_view::npos) break;
      text.remove_prefix(nl + 1);
    }
    if (depth >= kMaxPrintDepth) return;
    for (size_t k = 0; k < node.children.size(); ++k) {
      const bool last = k + 1 == node.children.size();
      print_process(node.children[k], indent + (last ? "└── " : "├── "),
                    indent + (last ? "    " : "│   "), depth + 1);
    }
  }

  const ProcessTree& tree_;
  const std::vector<const ProcessInfo*>& processes_;
  const std::vector<std::string>& trace_paths_;
  TerminalStyle style_;
  const std::function<std::string(size_t)>& load_tree_;
  std::string buf_;
};

}  // namespace

std::string load_tree_text(const LoadGraph& graph, const LoadTreeTextOptions& options) {
  return LoadTreeText(graph, options).text();
}

std::string process_tree_text(const ProcessTree& tree,
                              const std::vector<const ProcessInfo*>& processes,
                              const std::vector<std::string>& trace_paths, bool color,
                              const std::function<std::string(size_t trace)>& load_tree) {
  return ProcessTreeText(tree, processes, trace_paths, color, load_tree).text();
}

}  // namespace dltrace::viewer

// `dltrace tree TRACE... [--all] [--depth N] [--color=auto|always|never]`: every object in load
// order, as a tree of who loaded whom, like libtree but explaining the run that happened:
// DT_NEEDED children under the object that needed them, dlopen'ed objects under the object whose
// code called dlopen (labelled with the call), failed dlopens as red leaves under their caller.
// Loads made by Python code are grouped under the script statement that caused them. With
// several traces (one per process), the process tree with each process's load tree under it.
#include "commands/tree_command.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "absl/container/flat_hash_map.h"
#include "analysis/python_imports.h"
#include "analysis/symbolizer.h"
#include "commands/command.h"
#include "common/dlopen_flags.h"
#include "model/process_tree.h"
#include "model/trace_model.h"
#include "render/duration_text.h"
#include "util/progress.h"

namespace dltrace::viewer {
namespace {

constexpr size_t kNone = std::numeric_limits<size_t>::max();
constexpr int kMaxPrintDepth = 256;  // a damaged trace must not recurse without bound

// A dlopen/dlmopen that returned NULL: it loaded nothing, so only its event says it happened.
struct FailedOpen {
  uint64_t seq = 0;
  uint64_t repeats = 1;   // identical failures from the same caller object: one leaf
  uint64_t last_seq = 0;  // seq of the last of them
  uint16_t call = 0;
  std::string file;
  int flags = 0;
  int effective_flags = 0;
  uint32_t override_line = 0;
  bool overridden = false;
  int64_t lmid = 0;
  uint64_t duration_ns = 0;  // of all `repeats` calls
  std::string error;
  uint32_t caller_object = format::kNoId;
  uint64_t caller_ip = 0;
};

// What makes failures identical: caller object, call, name, error, flags, namespace, and the
// Python stack (the same failing import from two statements belongs to two statements).
using FailedKey =
    std::tuple<uint32_t, uint16_t, uint32_t, uint32_t, int32_t, int32_t, int64_t, uint32_t>;
FailedKey failed_key(const format::EventSlot& e) {
  return {e.caller_object, e.call,  e.name, e.error,
          e.flags,         e.effective_flags, e.lmid, e.py_stack};
}

// A dlopen made while Python code ran: which line caused it.
struct PyCall {
  PyAttribution where;
  bool nested = false;  // inside another traced call (a constructor's dlopen): not grouped
  bool ok = false;
  uint64_t duration_ns = 0;
};

// The Python statement behind the loads grouped under it (one per caller object and statement).
struct PyGroup {
  PyLine top;
  bool truncated = false;
  uint64_t total_ns = 0;
  size_t loads = 0;
  size_t failed = 0;
};

struct Node {
  const ObjectRecord* object = nullptr;  // else: failed_open or py_group
  size_t failed_open = kNone;
  size_t py_group = kNone;
  uint64_t order_seq = 0;   // load_seq / event seq
  size_t order_rank = 0;    // position in load order, to keep ties stable
  size_t parent = kNone;
  std::vector<size_t> children;
  bool folded = false;      // hidden unless --all (system library / the recorder / inherited)
  bool system = false;
  bool inherited = false;   // loaded before the fork, in the parent
  bool visible = false;     // not folded, or something visible hangs below
  size_t visible_below = 0; // visible descendants
};

class TreePrinter {
 public:
  // `fork_child`: the trace of a fork child, whose objects loaded before the fork (load_seq 0)
  // are its parent's: they are folded like system libraries.
  TreePrinter(const TraceReader& reader, const TreeOptions& options, bool color,
              bool fork_child = false)
      : reader_(reader),
        model_(reader),
        options_(options),
        style_{color},
        fork_child_(fork_child),
        symbolizer_(reader.process().exe),
        sources_(reader.process().cwd) {}

  void build() {
    // Objects, in load order.
    absl::flat_hash_map<uint32_t, size_t> node_of;
    for (const ObjectRecord* o : model_.objects_by_load()) {
      Node n;
      n.object = o;
      n.order_seq = o->load_seq;
      n.order_rank = nodes_.size();
      n.system = model_.is_system_object(*o);
      n.inherited = fork_child_ && o->load_seq == 0 && !is_main_program(*o);
      n.folded = !options_.all && (n.system || n.inherited || (o->flags & format::kObjectRecorder));
      node_of.try_emplace(o->id, nodes_.size());
      nodes_.push_back(std::move(n));
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const ObjectRecord& o = *nodes_[i].object;
      if (o.parent == format::kNoId || o.parent == o.id) continue;
      auto it = node_of.find(o.parent);
      if (it != node_of.end()) attach(i, it->second);
    }
    // Failed dlopens and Python stacks: the only parts that need the events.
    reader_.for_each_event([&](const format::EventSlot& e) {
      if (!is_open_call(e.call)) return true;
      if (e.py_stack != format::kNoId) remember_python(e);
      if (e.bits & format::kEventOk) return true;
      // The same failure from the same caller again (a probe in a loop) adds to one leaf, so
      // the tree does not grow with the number of events.
      if (auto it = failed_index_.find(failed_key(e)); it != failed_index_.end()) {
        ++failed_[it->second].repeats;
        failed_[it->second].last_seq = e.seq;
        failed_[it->second].duration_ns += model_.duration_ns(e);
        return true;
      }
      failed_index_.emplace(failed_key(e), failed_.size());
      FailedOpen f;
      f.seq = e.seq;
      f.call = e.call;
      f.file = reader_.has_string(e.name) ? std::string(reader_.string(e.name)) : "NULL";
      f.flags = e.flags;
      f.effective_flags = e.effective_flags;
      f.override_line = e.override_line;
      f.overridden = (e.bits & format::kEventOverridden) || e.flags != e.effective_flags;
      f.lmid = e.lmid;
      f.duration_ns = model_.duration_ns(e);
      if (reader_.has_string(e.error)) f.error = reader_.string(e.error);
      f.caller_object = e.caller_object;
      f.caller_ip = e.caller_ip;
      failed_.push_back(std::move(f));
      Node n;
      n.failed_open = failed_.size() - 1;
      n.order_seq = e.seq;
      n.order_rank = nodes_.size();
      nodes_.push_back(std::move(n));
      if (auto it = node_of.find(e.caller_object); it != node_of.end()) {
        attach(nodes_.size() - 1, it->second);
      }
      return true;
    });
    for (auto& [seq, call] : py_calls_) top_level_.resolve(call.where);
    group_python_loads();
    for (size_t i = 0; i < nodes_.size(); ++i) {
      (nodes_[i].parent == kNone ? roots_ : nodes_[nodes_[i].parent].children).push_back(i);
    }
    auto by_order = [this](size_t a, size_t b) {
      const Node& x = nodes_[a];
      const Node& y = nodes_[b];
      return x.order_seq != y.order_seq ? x.order_seq < y.order_seq : x.order_rank < y.order_rank;
    };
    std::ranges::sort(roots_, by_order);
    for (Node& n : nodes_) std::ranges::sort(n.children, by_order);
    for (size_t r : roots_) compute_visibility(r, 0);
    for (const Node& n : nodes_) {
      if (!n.visible && n.system) ++hidden_system_;
      if (!n.visible && n.inherited && !n.system) ++hidden_inherited_;
    }
  }

  void print() {
    for (size_t r : roots_) {
      if (nodes_[r].visible) print_node(r, "", "", 0);
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
  }

  const std::string& text() const { return buf_; }

 private:
  template <typename... Args>
  void out(fmt::format_string<Args...> f, Args&&... args) {
    fmt::format_to(std::back_inserter(buf_), f, std::forward<Args>(args)...);
  }

  bool is_main_program(const ObjectRecord& o) const { return model_.is_main_program(o); }

  void remember_python(const format::EventSlot& e) {
    const auto stack = reader_.py_stack(e.py_stack);
    if (stack.empty()) return;
    PyCall call{attribute_python_stack(reader_, stack), e.parent_seq != 0,
                (e.bits & format::kEventOk) != 0, model_.duration_ns(e)};
    top_level_.add(reader_, stack, call.where);
    // Kept only for the calls the tree shows, so that py_calls_ does not grow per event: loads
    // that brought objects in, and the first of identical failures.
    if (call.ok ? model_.new_objects(e.seq).empty() : failed_index_.contains(failed_key(e))) return;
    py_calls_[e.seq] = std::move(call);
  }

  // The dlopen event that a node stands for (0: none, e.g. a DT_NEEDED or start-up object).
  uint64_t open_seq_of(const Node& n) const {
    if (n.object) return n.object->cause == format::ObjectCause::kDlopen ? n.object->opened_by : 0;
    return n.failed_open != kNone ? failed_[n.failed_open].seq : 0;
  }

  // Hangs each load made by Python code under a node for the top-level statement that caused it
  // (one per caller object and statement), so `import numpy` gathers numpy's extension modules
  // and their total load time. Loads nested in another traced call (a constructor's dlopen)
  // stay under the object whose constructor made them.
  void group_python_loads() {
    absl::flat_hash_map<std::tuple<size_t, std::string, int>, size_t> group_of;
    const size_t count = nodes_.size();
    for (size_t i = 0; i < count; ++i) {
      auto it = py_calls_.find(open_seq_of(nodes_[i]));
      if (it == py_calls_.end() || it->second.nested || !it->second.where.top) continue;
      const PyCall& call = it->second;
      const size_t parent = nodes_[i].parent;
      auto [g, fresh] = group_of.try_emplace(
          std::tuple(parent, call.where.top->file, call.where.top->line), nodes_.size());
      if (fresh) {
        groups_.push_back(PyGroup{*call.where.top});
        Node n;
        n.py_group = groups_.size() - 1;
        n.order_seq = nodes_[i].order_seq;
        n.order_rank = nodes_.size();
        n.parent = parent;
        nodes_.push_back(std::move(n));
      }
      Node& group_node = nodes_[g->second];
      group_node.order_seq = std::min(group_node.order_seq, nodes_[i].order_seq);
      PyGroup& group = groups_[group_node.py_group];
      group.truncated |= call.where.truncated;
      if (nodes_[i].failed_open != kNone) {  // possibly several identical failed calls
        const FailedOpen& f = failed_[nodes_[i].failed_open];
        group.total_ns += f.duration_ns;
        group.loads += f.repeats;
        group.failed += f.repeats;
      } else {
        group.total_ns += call.duration_ns;
        ++group.loads;
      }
      nodes_[i].parent = g->second;
    }
  }

  // Hangs `child` under `parent` unless that would close a cycle (a damaged trace).
  void attach(size_t child, size_t parent) {
    for (size_t p = parent, steps = 0; p != kNone; p = nodes_[p].parent) {
      if (p == child || ++steps > nodes_.size()) return;
    }
    nodes_[child].parent = parent;
  }

  void compute_visibility(size_t i, int depth) {
    Node& n = nodes_[i];
    size_t below = 0;
    bool any = false;
    if (depth < kMaxPrintDepth) {
      for (size_t c : n.children) {
        compute_visibility(c, depth + 1);
        if (nodes_[c].visible) {
          any = true;
          below += 1 + nodes_[c].visible_below;
        }
      }
    }
    n.visible = !n.folded || any;
    n.visible_below = below;
  }

  // `lead`: this line's prefix (with its branch); `indent`: the prefix of its children.
  void print_node(size_t i, const std::string& lead, const std::string& indent, int depth) {
    const Node& n = nodes_[i];
    out("{}", lead);
    if (n.object) {
      object_line(*n.object);
    } else if (n.py_group != kNone) {
      group_line(groups_[n.py_group]);
    } else {
      failed_line(failed_[n.failed_open]);
    }
    out("\n");
    std::vector<size_t> shown;
    for (size_t c : n.children) {
      if (nodes_[c].visible) shown.push_back(c);
    }
    if (const std::string details = details_text(n); !details.empty()) {
      out("{}{}{}{}{}\n", indent, shown.empty() ? "  " : "│ ", style_.dim(), details,
          style_.reset());
    }
    if (shown.empty()) return;
    if ((options_.depth >= 0 && depth >= options_.depth) || depth >= kMaxPrintDepth) {
      out("{}└── {}… {} more below (raise --depth){}\n", indent, style_.dim(), n.visible_below,
          style_.reset());
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
  std::string details_text(const Node& n) {
    const uint64_t seq = open_seq_of(n);
    if (seq == 0) return {};
    uint32_t caller_object = format::kNoId;
    uint64_t caller_ip = 0;
    if (n.object) {
      const auto e = reader_.event(seq);
      if (!e) return {};
      caller_object = e->caller_object;
      caller_ip = e->caller_ip;
    } else {
      caller_object = failed_[n.failed_open].caller_object;
      caller_ip = failed_[n.failed_open].caller_ip;
    }
    std::string text;
    auto add = [&text](std::string_view part) {
      if (!text.empty()) text.append("; ");
      text.append(part);
    };
    if (const std::string caller = caller_text(caller_object, caller_ip, seq); !caller.empty()) {
      add(fmt::format("caller {}", caller));
    }
    if (auto it = py_calls_.find(seq); it != py_calls_.end()) {
      const PyAttribution& w = it->second.where;
      const bool grouped = !it->second.nested && w.top;
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
  void group_line(const PyGroup& g) {
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
    if (is_main_program(o)) {
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

  const TraceReader& reader_;
  TraceModel model_;
  const TreeOptions& options_;
  TerminalStyle style_;
  std::vector<Node> nodes_;
  std::vector<size_t> roots_;
  std::vector<FailedOpen> failed_;
  absl::flat_hash_map<FailedKey, size_t> failed_index_;  // into failed_
  size_t hidden_system_ = 0;
  size_t hidden_inherited_ = 0;
  bool fork_child_ = false;
  absl::flat_hash_map<uint64_t, PyCall> py_calls_;  // by dlopen seq
  std::vector<PyGroup> groups_;
  TopLevelResolver top_level_;
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

class ProcessTreePrinter {
 public:
  ProcessTreePrinter(const std::vector<NamedTrace>& traces, const TreeOptions& options, bool color)
      : traces_(traces), options_(options), color_(color), style_{color} {
    std::vector<const ProcessInfo*> infos;
    for (const NamedTrace& t : traces) infos.push_back(&t.reader->process());
    tree_ = build_process_tree(infos);
  }

  void print() {
    for (size_t k = 0; k < tree_.roots.size(); ++k) {
      if (k) buf_.push_back('\n');
      print_process(tree_.roots[k], "", "", 0);
    }
  }
  const std::string& text() const { return buf_; }

 private:
  // `lead`: this process's line prefix (with its branch); `indent`: its children's prefix.
  // Its load tree goes between the two, with a bar when child processes follow.
  void print_process(size_t i, const std::string& lead, const std::string& indent, int depth) {
    const ProcessNode& node = tree_.nodes[i];
    const ProcessInfo& p = traces_[i].reader->process();
    buf_.append(lead);
    fmt::format_to(std::back_inserter(buf_), "{}pid {}{}", style_.bold(), p.pid, style_.reset());
    switch (node.origin) {
      case ProcessOrigin::kFork: buf_.append(" (fork)"); break;
      case ProcessOrigin::kExec: buf_.append(" (exec)"); break;
      case ProcessOrigin::kRoot:
      case ProcessOrigin::kChild: break;
    }
    fmt::format_to(std::back_inserter(buf_), " {}  {}[{}] {}{}\n", command_line(p), style_.dim(),
                   end_summary(p), basename_of(traces_[i].path), style_.reset());

    TreePrinter loads(*traces_[i].reader, options_, color_, node.origin == ProcessOrigin::kFork);
    loads.build();
    loads.print();
    const std::string content_indent = indent + (node.children.empty() ? "    " : "│   ");
    std::string_view text = loads.text();
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

  const std::vector<NamedTrace>& traces_;
  const TreeOptions& options_;
  bool color_;
  TerminalStyle style_;
  ProcessTree tree_;
  std::string buf_;
};

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
  TreePrinter printer(reader, options, color);
  printer.build();
  printer.print();
  return write_all(printer.text(), out);
}

absl::Status process_tree_trace(const std::vector<NamedTrace>& traces, const TreeOptions& options,
                                bool color, std::FILE* out) {
  ProcessTreePrinter printer(traces, options, color);
  printer.print();
  return write_all(printer.text(), out);
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
    if (found.empty()) return TraceError(fmt::format("{}: no *.trace files in this directory", path));
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
    opts->color = *color == "always" ? ColorMode::kAlways
                  : *color == "never" ? ColorMode::kNever
                                      : ColorMode::kAuto;
    result.set(run_tree(*opts));
  });
}

}  // namespace dltrace::viewer

// `dltrace tree TRACE [--all] [--depth N] [--color=auto|always|never]`: every object in load
// order, as a tree of who loaded whom, like libtree but explaining the run that happened:
// DT_NEEDED children under the object that needed them, dlopen'ed objects under the object whose
// code called dlopen (labelled with the call), failed dlopens as red leaves under their caller.
#include "commands/tree_command.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "absl/container/flat_hash_map.h"
#include "commands/command.h"
#include "dltrace/flags.h"
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
  uint64_t duration_ns = 0;
  std::string error;
};

// What makes failures identical: caller object, call, name, error, flags, namespace.
using FailedKey = std::tuple<uint32_t, uint16_t, uint32_t, uint32_t, int32_t, int32_t, int64_t>;
FailedKey failed_key(const format::EventSlot& e) {
  return {e.caller_object, e.call, e.name, e.error, e.flags, e.effective_flags, e.lmid};
}

struct Node {
  const ObjectRecord* object = nullptr;  // else: failed_open
  size_t failed_open = kNone;
  uint64_t order_seq = 0;   // load_seq / event seq
  size_t order_rank = 0;    // position in load order, to keep ties stable
  size_t parent = kNone;
  std::vector<size_t> children;
  bool folded = false;      // hidden unless --all (system library / the recorder)
  bool system = false;
  bool visible = false;     // not folded, or something visible hangs below
  size_t visible_below = 0; // visible descendants
};

class TreePrinter {
 public:
  TreePrinter(const TraceReader& reader, const TreeOptions& options, bool color)
      : reader_(reader), model_(reader), options_(options), style_{color} {}

  void build() {
    // Objects, in load order.
    absl::flat_hash_map<uint32_t, size_t> node_of;
    for (const ObjectRecord* o : model_.objects_by_load()) {
      Node n;
      n.object = o;
      n.order_seq = o->load_seq;
      n.order_rank = nodes_.size();
      n.system = model_.is_system_object(*o);
      n.folded = !options_.all && (n.system || (o->flags & format::kObjectRecorder));
      node_of.try_emplace(o->id, nodes_.size());
      nodes_.push_back(std::move(n));
    }
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const ObjectRecord& o = *nodes_[i].object;
      if (o.parent == format::kNoId || o.parent == o.id) continue;
      auto it = node_of.find(o.parent);
      if (it != node_of.end()) attach(i, it->second);
    }
    // Failed dlopens: the only part that needs the events.
    reader_.for_each_event([&](const format::EventSlot& e) {
      if (!is_open_call(e.call) || (e.bits & format::kEventOk)) return true;
      // The same failure from the same caller again (a probe in a loop) adds to one leaf, so
      // the tree does not grow with the number of events.
      if (auto it = failed_index_.find(failed_key(e)); it != failed_index_.end()) {
        ++failed_[it->second].repeats;
        failed_[it->second].last_seq = e.seq;
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
    for (const auto& s : recovery_sentences(reader_)) out("note: {}\n", s);
  }

  const std::string& text() const { return buf_; }

 private:
  template <typename... Args>
  void out(fmt::format_string<Args...> f, Args&&... args) {
    fmt::format_to(std::back_inserter(buf_), f, std::forward<Args>(args)...);
  }

  bool is_main_program(const ObjectRecord& o) const { return model_.is_main_program(o); }

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
    } else {
      failed_line(failed_[n.failed_open]);
    }
    out("\n");
    std::vector<size_t> shown;
    for (size_t c : n.children) {
      if (nodes_[c].visible) shown.push_back(c);
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
    if (o.cause == format::ObjectCause::kDlopen) {
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
      // The requested name as the program passed it; "same path" when it is the path above.
      std::string file = "NULL";
      if (reader_.has_string(e->name)) {
        const std::string_view name = reader_.string(e->name);
        file = name == model_.path_of(o) ? std::string("same path")
                                         : fmt::format("\"{}\"", name);
      }
      out("{}({}, {})", call_name(e->call), file,
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
  std::string buf_;
};

absl::Status run_tree(const TreeOptions& o) {
  auto reader = open_trace(o.trace);
  if (!reader.ok()) return reader.status();
  const auto source = with_progress(**reader);  // prints at the end
  return tree_trace(*source, o, use_color(o.color, isatty(STDOUT_FILENO) == 1), stdout);
}

}  // namespace

absl::Status tree_trace(const TraceReader& reader, const TreeOptions& options, bool color,
                        std::FILE* out) {
  TreePrinter printer(reader, options, color);
  printer.build();
  printer.print();
  const std::string& text = printer.text();
  std::fwrite(text.data(), 1, text.size(), out);
  if (std::fflush(out) != 0 || std::ferror(out)) return TraceError("cannot write the output");
  return absl::OkStatus();
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
      "dlopen is a red ✗ leaf under its caller, with the dlerror() text.\n"
      "System libraries (/lib, /usr/lib, the vDSO, the loader) that were not dlopen'ed are\n"
      "folded into one count unless --all; so is dltrace's own recorder.\n\n"
      "Example:\n"
      "  dltrace run -o app.trace -- python3 -c 'import ctypes'\n"
      "  dltrace tree app.trace\n"
      "  dltrace tree app.trace --all --depth 2 --color=never | less");
  cmd->add_option("trace", opts->trace, "trace file written by `dltrace run`")->required();
  cmd->add_flag("--all,-a", opts->all, "also show system libraries and the recorder");
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

// `dltrace scopes TRACE [--for NAME [--at SEQ]] [--json]`: the symbol scopes ld.so used.
// Without --for: each namespace's global scope in order (with why each object is in it and
// since when), then the local scope of every dlopen group. With --for: the exact list of
// objects an object's undefined symbols are looked up in, scope by scope, as LD_DEBUG=scopes
// prints it, at the object's load (or at event SEQ).
#include "commands/scopes_command.h"

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "analysis/dlerror_text.h"
#include "analysis/elf_file.h"
#include "analysis/scope_graph.h"
#include "commands/command.h"
#include "common/dlopen_flags.h"
#include "model/trace_model.h"
#include "render/json_writer.h"
#include "render/terminal_style.h"
#include "util/progress.h"

namespace dltrace::viewer {
namespace {

class ScopesPrinter {
 public:
  ScopesPrinter(const TraceReader& reader, const ScopesOptions& options, std::FILE* out)
      : reader_(reader), model_(reader), graph_(model_, elf_), options_(options), out_(out),
        style_{options.color} {}

  absl::Status run() {
    if (!options_.for_object.empty()) return print_for();
    if (options_.json) {
      JsonWriter w(out_);
      w.begin_object();
      w.key("format").value("dltrace-scopes");
      w.key("version").value(1);
      w.key("lists").begin_array();
      for (size_t i = 0; i < graph_.lists().size(); ++i) list_json(w, i, std::nullopt);
      w.end_array();
      w.end_object();
      w.end_line();
      return w.finish();
    }
    print_text();
    return absl::OkStatus();
  }

 private:
  std::string describe_open(uint64_t seq) const {
    auto e = reader_.event(seq);
    if (!e) return fmt::format("#{} (event not readable)", seq);
    std::string text = fmt::format("{} #{} \"{}\" {}", call_name(e->call), seq,
                                   reader_.string(e->name), flags_to_string(e->effective_flags));
    if (e->bits & format::kEventOverridden)
      text += fmt::format(" (requested {})", flags_to_string(e->flags));
    if (const ObjectRecord* caller = reader_.object(e->caller_object))
      text += " from " + model_.name_of(*caller);
    return text;
  }

  std::string title(const SearchList& list) const {
    if (list.kind == SearchList::Kind::kGlobal) {
      return list.opened_by == 0
                 ? fmt::format("global scope of namespace {}", list.lmid)
                 : fmt::format("global scope of namespace {} (started by {})", list.lmid,
                               describe_open(list.opened_by));
    }
    return fmt::format("local scope of {}", describe_open(list.opened_by));
  }

  std::string member_note(const ScopeMember& m, const SearchList& list) const {
    std::string note = m.reason;
    const ObjectRecord* o = reader_.object(m.object);
    if (list.kind == SearchList::Kind::kGlobal && m.since_seq != 0 && m.reason.find('#') == std::string::npos)
      note += fmt::format(" (since #{})", m.since_seq);
    if (o && o->unload_seq) note += fmt::format(", unloaded at #{}", *o->unload_seq);
    return note;
  }

  void print_list(const SearchList& list) {
    size_t width = 0, note_width = 0;
    for (const auto& m : list.members) {
      if (const ObjectRecord* o = reader_.object(m.object)) {
        width = std::max(width, model_.name_of(*o).size());
        note_width = std::max(note_width, member_note(m, list).size());
      }
    }
    int index = 0;
    for (const auto& m : list.members) {
      const ObjectRecord* o = reader_.object(m.object);
      if (!o) continue;
      std::string name = model_.name_of(*o);
      fmt::print(out_, "  {:>3}. {}{}{}{:<{}}  {:<{}}  {}{}{}\n", ++index, style_.bold(), name,
                 style_.reset(), "", width - name.size(), member_note(m, list), note_width,
                 style_.dim(), model_.path_of(*o), style_.reset());
    }
    for (const auto& gap : list.gaps) fmt::print(out_, "  {}note: {}{}\n", style_.yellow(), gap, style_.reset());
  }

  void print_text() {
    bool any_local = false;
    for (const auto& list : graph_.lists()) {
      if (list.kind != SearchList::Kind::kGlobal) {
        any_local = true;
        continue;
      }
      fmt::print(out_, "{}{}{} (searched first by every lookup in namespace {}):\n", style_.bold(),
                 title(list), style_.reset(), list.lmid);
      print_list(list);
      fmt::print(out_, "\n");
    }
    if (graph_.lists().empty()) fmt::print(out_, "No objects in the trace: nothing to show.\n");
    if (!any_local) {
      fmt::print(out_, "No dlopen group has a local scope (no successful dlopen in the trace).\n");
      return;
    }
    fmt::print(out_, "{}Local scopes{} (one per dlopen group: the opened object and its dependencies, "
                     "searched after the global scope by the group's own objects):\n",
               style_.bold(), style_.reset());
    for (const auto& list : graph_.lists()) {
      if (list.kind == SearchList::Kind::kGlobal) continue;
      fmt::print(out_, "{}{}{}{}:\n", style_.bold(), title(list), style_.reset(),
                 list.lmid != 0 ? fmt::format(", namespace {}", list.lmid) : std::string());
      print_list(list);
    }
  }

  void list_json(JsonWriter& w, size_t index, std::optional<uint64_t> at) const {
    const SearchList& list = graph_.lists()[index];
    w.begin_object();
    w.key("kind").value(list.kind == SearchList::Kind::kGlobal ? "global" : "local");
    w.key("namespace").value(list.lmid);
    if (list.opened_by) {
      w.key("opened_by").value(list.opened_by);
    } else {
      w.key("opened_by").null();
    }
    if (list.root != format::kNoId) {
      w.key("root").value(list.root);
    } else {
      w.key("root").null();
    }
    w.key("members").begin_array();
    for (const auto& m : list.members) {
      const ObjectRecord* o = reader_.object(m.object);
      if (!o || (at && (!list.visible(m, *at) || !o->alive_at(*at)))) continue;
      w.begin_object();
      w.key("object").value(m.object);
      w.key("name").value(model_.name_of(*o));
      w.key("path").value(model_.path_of(*o));
      w.key("since_seq").value(m.since_seq);
      w.key("reason").value(m.reason);
      if (o->unload_seq) {
        w.key("unload_seq").value(*o->unload_seq);
      } else {
        w.key("unload_seq").null();
      }
      w.end_object();
    }
    w.end_array();
    w.key("gaps").begin_array();
    for (const auto& g : list.gaps) w.value(g);
    w.end_array();
    w.end_object();
  }

  std::vector<const ObjectRecord*> matching(std::string_view name) const {
    std::vector<const ObjectRecord*> out;
    for (const ObjectRecord* o : model_.objects_by_load()) {
      if (o->flags & format::kObjectVdso) continue;
      std::string_view path = model_.path_of(*o);
      if (name == path || name == o->soname || name == basename_of(path) ||
          name == fmt::format("#{}", o->id))
        out.push_back(o);
    }
    return out;
  }

  // An object whose dlopen failed is not in the trace, but the question "where did its lookups
  // go?" is the natural one after the failure: the search list it had during that call.
  bool print_failed_load() {
    std::optional<format::EventSlot> failed;
    std::string file;
    reader_.for_each_event([&](const format::EventSlot& e) {
      if (!is_open_call(e.call) || (e.bits & format::kEventOk)) return true;
      DlerrorText err = parse_dlerror(reader_.string(e.error));
      std::string_view requested = reader_.string(e.name);
      for (std::string_view candidate : {std::string_view(err.object), requested}) {
        if (candidate.empty()) continue;
        if (candidate == options_.for_object || basename_of(candidate) == options_.for_object) {
          failed = e;
          file = std::string(err.kind == DlerrorText::Kind::kUndefinedSymbol ? err.object : candidate);
          return false;
        }
      }
      return true;
    });
    if (!failed) return false;
    const ElfFile* elf = elf_.file(file);
    if (!elf) {
      fmt::print(out_, "{}: its dlopen #{} failed ({}); its file cannot be read, so its "
                       "dependencies are unknown\n",
                 options_.for_object, failed->seq, reader_.string(failed->error));
      return true;
    }
    const ObjectRecord* caller = reader_.object(failed->caller_object);
    int64_t lmid = failed->call == static_cast<uint16_t>(format::CallKind::kDlmopen)
                       ? failed->lmid
                       : caller ? caller->lmid : 0;
    fmt::print(out_, "{}{}{} ({}) never finished loading: dlopen #{} failed:\n  {}\n",
               style_.bold(), basename_of(file), style_.reset(), file, failed->seq,
               reader_.string(failed->error));
    fmt::print(out_, "during that call its undefined symbols were looked up in these objects, "
                     "in this order:\n");
    int index = 0;
    if (auto g = graph_.global_list(lmid)) {
      fmt::print(out_, " scope 0: {}\n", title(graph_.lists()[*g]));
      for (uint32_t id : graph_.lists()[*g].objects_at(failed->seq)) {
        const ObjectRecord* o = reader_.object(id);
        if (o && o->alive_at(failed->seq))
          fmt::print(out_, "  {:>3}. {}{}{}  {}{}{}\n", ++index, style_.bold(), model_.name_of(*o),
                     style_.reset(), style_.dim(), model_.path_of(*o), style_.reset());
      }
    }
    std::vector<std::string> unresolved;
    auto group = graph_.closure_of_file(*elf, lmid, failed->seq, &unresolved);
    fmt::print(out_, " scope 1: its own group (it and its dependencies)\n");
    fmt::print(out_, "  {:>3}. {}{}{}  {}{}{}\n", ++index, style_.bold(), basename_of(file),
               style_.reset(), style_.dim(), file, style_.reset());
    for (uint32_t id : group) {
      const ObjectRecord* o = reader_.object(id);
      if (o)
        fmt::print(out_, "  {:>3}. {}{}{}  {}{}{}\n", ++index, style_.bold(), model_.name_of(*o),
                   style_.reset(), style_.dim(), model_.path_of(*o), style_.reset());
    }
    for (const auto& name : unresolved)
      fmt::print(out_, "       {} (loaded for the call and unloaded with it)\n", name);
    fmt::print(out_, "`dltrace explain` says why the symbol was not among them.\n");
    return true;
  }

  absl::Status print_for() {
    auto objects = matching(options_.for_object);
    if (objects.empty() && !options_.json && print_failed_load()) return absl::OkStatus();
    if (objects.empty()) {
      return absl::NotFoundError(fmt::format(
          "no object named \"{}\" in the trace (give a basename, soname, path or #id; "
          "`dltrace tree` lists them)",
          options_.for_object));
    }
    JsonWriter w(options_.json ? out_ : nullptr);
    if (options_.json) {
      w.begin_object();
      w.key("format").value("dltrace-scopes-for");
      w.key("version").value(1);
      w.key("objects").begin_array();
    }
    for (const ObjectRecord* o : objects) {
      uint64_t at = options_.at_seq.value_or(o->load_seq);
      const auto& refs = graph_.scopes_of(o->id);
      if (options_.json) {
        w.begin_object();
        w.key("object").value(o->id);
        w.key("path").value(model_.path_of(*o));
        w.key("at_seq").value(at);
        w.key("scopes").begin_array();
        for (const ScopeRef& r : refs)
          if (r.since_seq <= at) list_json(w, r.list, at);
        w.end_array();
        w.key("search_order").begin_array();
        for (uint32_t id : graph_.search_order(o->id, at)) w.value(id);
        w.end_array();
        w.end_object();
        continue;
      }
      fmt::print(out_, "{}{}{} ({}), {}:\n", style_.bold(), model_.name_of(*o), style_.reset(),
                 model_.path_of(*o),
                 options_.at_seq ? fmt::format("at #{}", at)
                 : o->load_seq ? fmt::format("at its load (#{})", at)
                               : std::string("at start-up"));
      fmt::print(out_, "its undefined symbols are looked up in these objects, in this order:\n");
      int scope_index = 0;
      int member_index = 0;
      std::vector<std::string> later;
      for (const ScopeRef& r : refs) {
        const SearchList& list = graph_.lists()[r.list];
        if (r.since_seq > at) {
          later.push_back(fmt::format("#{} appended the {} to its scopes", r.since_seq, title(list)));
          continue;
        }
        fmt::print(out_, " scope {}: {}\n", scope_index++, title(list));
        for (const auto& m : list.members) {
          const ObjectRecord* mo = reader_.object(m.object);
          if (!mo) continue;
          if (!list.visible(m, at)) {
            later.push_back(fmt::format("{} joined the {} at #{} ({})", model_.name_of(*mo),
                                        title(list), m.since_seq, m.reason));
            continue;
          }
          if (!mo->alive_at(at)) continue;
          fmt::print(out_, "  {:>3}. {}{}{}  {}{}{}\n", ++member_index, style_.bold(),
                     model_.name_of(*mo), style_.reset(), style_.dim(), model_.path_of(*mo),
                     style_.reset());
        }
      }
      if (refs.empty()) fmt::print(out_, "  (no scope: ld.so does not relocate this object)\n");
      if (!later.empty()) {
        fmt::print(out_, "later (seen by lazy bindings and dlsym after that point):\n");
        for (const auto& l : later) fmt::print(out_, "  {}\n", l);
      }
      fmt::print(out_, "\n");
    }
    if (options_.json) {
      w.end_array();
      w.end_object();
      w.end_line();
      return w.finish();
    }
    return absl::OkStatus();
  }

  const TraceReader& reader_;
  TraceModel model_;
  ElfCache elf_;
  ScopeGraph graph_;
  const ScopesOptions& options_;
  std::FILE* out_;
  TerminalStyle style_;
};

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
  ScopesPrinter printer(reader, options, out);
  return printer.run();
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

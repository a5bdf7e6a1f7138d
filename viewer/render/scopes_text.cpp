#include "render/scopes_text.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "common/dlopen_flags.h"
#include "model/trace_model.h"
#include "render/terminal_style.h"

namespace dltrace::viewer {
namespace {

class ScopesText {
 public:
  ScopesText(const ScopeGraph& graph, bool color, std::FILE* out)
      : graph_(graph), model_(graph.model()), reader_(model_.reader()), out_(out), style_{color} {}

  void lists() {
    bool any_local = false;
    for (const auto& list : graph_.lists()) {
      if (list.kind != SearchList::Kind::kGlobal) {
        any_local = true;
        continue;
      }
      print_visible(out_, "{}{}{} (searched first by every lookup in namespace {}):\n",
                    style_.bold(), title(list), style_.reset(), list.lmid);
      print_list(list);
      print_visible(out_, "\n");
    }
    if (graph_.lists().empty()) print_visible(out_, "No objects in the trace: nothing to show.\n");
    if (!any_local) {
      print_visible(out_,
                    "No dlopen group has a local scope (no successful dlopen in the trace).\n");
      return;
    }
    print_visible(out_,
                  "{}Local scopes{} (one per dlopen group: the opened object and its dependencies, "
                  "searched after the global scope by the group's own objects):\n",
                  style_.bold(), style_.reset());
    for (const auto& list : graph_.lists()) {
      if (list.kind == SearchList::Kind::kGlobal) continue;
      print_visible(out_, "{}{}{}{}:\n", style_.bold(), title(list), style_.reset(),
                    list.lmid != 0 ? fmt::format(", namespace {}", list.lmid) : std::string());
      print_list(list);
    }
  }

  void object(const ObjectRecord& o, std::optional<uint64_t> at_seq) {
    const uint64_t at = at_seq.value_or(o.load_seq);
    const auto& refs = graph_.scopes_of(o.id);
    print_visible(out_, "{}{}{} ({}), {}:\n", style_.bold(), model_.name_of(o), style_.reset(),
                  model_.path_of(o),
                  at_seq       ? fmt::format("at #{}", at)
                  : o.load_seq ? fmt::format("at its load (#{})", at)
                               : std::string("at start-up"));
    print_visible(out_, "its undefined symbols are looked up in these objects, in this order:\n");
    int scope_index = 0;
    int member_index = 0;
    std::vector<std::string> later;
    for (const ScopeRef& r : refs) {
      const SearchList& list = graph_.lists()[r.list];
      if (r.since_seq > at) {
        later.push_back(fmt::format("#{} appended the {} to its scopes", r.since_seq, title(list)));
        continue;
      }
      print_visible(out_, " scope {}: {}\n", scope_index++, title(list));
      for (const auto& m : list.members) {
        const ObjectRecord* mo = reader_.object(m.object);
        if (!mo) continue;
        if (!list.visible(m, at)) {
          later.push_back(fmt::format("{} joined the {} at #{} ({})", model_.name_of(*mo),
                                      title(list), m.since_seq, m.reason));
          continue;
        }
        if (!mo->alive_at(at)) continue;
        member_line(++member_index, model_.name_of(*mo), model_.path_of(*mo));
      }
    }
    if (refs.empty()) print_visible(out_, "  (no scope: ld.so does not relocate this object)\n");
    if (!later.empty()) {
      print_visible(out_, "later (seen by lazy bindings and dlsym after that point):\n");
      for (const auto& l : later) print_visible(out_, "  {}\n", l);
    }
    print_visible(out_, "\n");
  }

  void failed_load(const FailedLoadScopes& f, std::string_view name) {
    if (!f.elf) {
      print_visible(out_,
                    "{}: its dlopen #{} failed ({}); its file cannot be read, so its "
                    "dependencies are unknown\n",
                    name, f.event.seq, reader_.string(f.event.error));
      return;
    }
    print_visible(out_, "{}{}{} ({}) never finished loading: dlopen #{} failed:\n  {}\n",
                  style_.bold(), basename_of(f.file), style_.reset(), f.file, f.event.seq,
                  reader_.string(f.event.error));
    print_visible(out_,
                  "during that call its undefined symbols were looked up in these objects, "
                  "in this order:\n");
    int index = 0;
    if (f.global_list) {
      print_visible(out_, " scope 0: {}\n", title(graph_.lists()[*f.global_list]));
      for (uint32_t id : f.global_members) {
        const ObjectRecord& o = *reader_.object(id);
        member_line(++index, model_.name_of(o), model_.path_of(o));
      }
    }
    print_visible(out_, " scope 1: its own group (it and its dependencies)\n");
    member_line(++index, basename_of(f.file), f.file);
    for (uint32_t id : f.group) {
      if (const ObjectRecord* o = reader_.object(id)) {
        member_line(++index, model_.name_of(*o), model_.path_of(*o));
      }
    }
    for (const auto& unresolved : f.unresolved) {
      print_visible(out_, "       {} (loaded for the call and unloaded with it)\n", unresolved);
    }
    print_visible(out_, "`dltrace explain` says why the symbol was not among them.\n");
  }

 private:
  //   3. libfoo.so  /usr/lib/libfoo.so
  void member_line(int index, std::string_view name, std::string_view path) {
    print_visible(out_, "  {:>3}. {}{}{}  {}{}{}\n", index, style_.bold(), name, style_.reset(),
                  style_.dim(), path, style_.reset());
  }

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
      return list.opened_by == 0 ? fmt::format("global scope of namespace {}", list.lmid)
                                 : fmt::format("global scope of namespace {} (started by {})",
                                               list.lmid, describe_open(list.opened_by));
    }
    return fmt::format("local scope of {}", describe_open(list.opened_by));
  }

  std::string member_note(const ScopeMember& m, const SearchList& list) const {
    std::string note = m.reason;
    const ObjectRecord* o = reader_.object(m.object);
    if (list.kind == SearchList::Kind::kGlobal && m.since_seq != 0 &&
        m.reason.find('#') == std::string::npos)
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
      print_visible(out_, "  {:>3}. {}{}{}{:<{}}  {:<{}}  {}{}{}\n", ++index, style_.bold(), name,
                    style_.reset(), "", width - name.size(), member_note(m, list), note_width,
                    style_.dim(), model_.path_of(*o), style_.reset());
    }
    for (const auto& gap : list.gaps)
      print_visible(out_, "  {}note: {}{}\n", style_.yellow(), gap, style_.reset());
  }

  const ScopeGraph& graph_;
  const TraceModel& model_;
  const TraceReader& reader_;
  std::FILE* out_;
  TerminalStyle style_;
};

}  // namespace

void write_scope_lists_text(const ScopeGraph& graph, bool color, std::FILE* out) {
  ScopesText(graph, color, out).lists();
}

void write_object_scopes_text(const ScopeGraph& graph,
                              const std::vector<const ObjectRecord*>& objects,
                              std::optional<uint64_t> at_seq, bool color, std::FILE* out) {
  ScopesText text(graph, color, out);
  for (const ObjectRecord* o : objects) text.object(*o, at_seq);
}

void write_failed_load_scopes_text(const ScopeGraph& graph, const FailedLoadScopes& failed,
                                   std::string_view name, bool color, std::FILE* out) {
  ScopesText(graph, color, out).failed_load(failed, name);
}

}  // namespace dltrace::viewer

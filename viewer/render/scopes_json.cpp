#include "render/scopes_json.h"

#include "render/json_writer.h"

namespace dltrace::viewer {
namespace {

// One search list; with `at`, only the members that were in it and alive at that event.
void list_json(JsonWriter& w, const ScopeGraph& graph, size_t index, std::optional<uint64_t> at) {
  const TraceModel& model = graph.model();
  const TraceReader& reader = model.reader();
  const SearchList& list = graph.lists()[index];
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
    const ObjectRecord* o = reader.object(m.object);
    if (!o || (at && (!list.visible(m, *at) || !o->alive_at(*at)))) continue;
    w.begin_object();
    w.key("object").value(m.object);
    w.key("name").value(model.name_of(*o));
    w.key("path").value(model.path_of(*o));
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

}  // namespace

absl::Status write_scope_lists_json(const ScopeGraph& graph, std::FILE* out) {
  JsonWriter w(out);
  w.begin_object();
  w.key("format").value("dltrace-scopes");
  w.key("version").value(1);
  w.key("lists").begin_array();
  for (size_t i = 0; i < graph.lists().size(); ++i) list_json(w, graph, i, std::nullopt);
  w.end_array();
  w.end_object();
  w.end_line();
  return w.finish();
}

absl::Status write_object_scopes_json(const ScopeGraph& graph,
                                      const std::vector<const ObjectRecord*>& objects,
                                      std::optional<uint64_t> at_seq, std::FILE* out) {
  JsonWriter w(out);
  w.begin_object();
  w.key("format").value("dltrace-scopes-for");
  w.key("version").value(1);
  w.key("objects").begin_array();
  for (const ObjectRecord* o : objects) {
    const uint64_t at = at_seq.value_or(o->load_seq);
    w.begin_object();
    w.key("object").value(o->id);
    w.key("path").value(graph.model().path_of(*o));
    w.key("at_seq").value(at);
    w.key("scopes").begin_array();
    for (const ScopeRef& r : graph.scopes_of(o->id)) {
      if (r.since_seq <= at) list_json(w, graph, r.list, at);
    }
    w.end_array();
    w.key("search_order").begin_array();
    for (uint32_t id : graph.search_order(o->id, at)) w.value(id);
    w.end_array();
    w.end_object();
  }
  w.end_array();
  w.end_object();
  w.end_line();
  return w.finish();
}

}  // namespace dltrace::viewer

#include "analysis/scope_queries.h"

#include <fmt/format.h>

#include "analysis/dlerror_text.h"
#include "model/in_flight.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

std::vector<const ObjectRecord*> objects_named(const TraceModel& model, std::string_view name) {
  std::vector<const ObjectRecord*> out;
  for (const ObjectRecord* o : model.objects_by_load()) {
    if (o->flags & format::kObjectVdso) continue;
    std::string_view path = model.path_of(*o);
    if (name == path || name == o->soname || name == basename_of(path) ||
        name == fmt::format("#{}", o->id))
      out.push_back(o);
  }
  return out;
}

std::optional<FailedLoadScopes> failed_load_scopes(const ScopeGraph& graph, std::string_view name) {
  const TraceReader& reader = graph.model().reader();
  std::optional<FailedLoadScopes> found;
  reader.for_each_event([&](const format::EventSlot& e) {
    if (!is_open_call(e.call) || !failed_call(e)) return true;
    DlerrorText err = parse_dlerror(reader.string(e.error));
    std::string_view requested = reader.string(e.name);
    for (std::string_view candidate : {std::string_view(err.object), requested}) {
      if (candidate.empty()) continue;
      if (candidate == name || basename_of(candidate) == name) {
        found.emplace();
        found->event = e;
        found->file =
            std::string(err.kind == DlerrorText::Kind::kUndefinedSymbol ? err.object : candidate);
        return false;
      }
    }
    return true;
  });
  if (!found) return std::nullopt;
  FailedLoadScopes& f = *found;
  f.elf = graph.elf().file(f.file);
  if (!f.elf) return found;
  const ObjectRecord* caller = reader.object(f.event.caller_object);
  const int64_t lmid = f.event.call == static_cast<uint16_t>(format::CallKind::kDlmopen)
                           ? f.event.lmid
                       : caller ? caller->lmid
                                : 0;
  f.global_list = graph.global_list(lmid);
  if (f.global_list) {
    for (uint32_t id : graph.lists()[*f.global_list].objects_at(f.event.seq)) {
      const ObjectRecord* o = reader.object(id);
      if (o && o->alive_at(f.event.seq)) f.global_members.push_back(id);
    }
  }
  f.group = graph.closure_of_file(*f.elf, lmid, f.event.seq, &f.unresolved);
  return found;
}

}  // namespace dltrace::viewer

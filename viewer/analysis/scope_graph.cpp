#include "analysis/scope_graph.h"

#include <dlfcn.h>

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "common/dlopen_flags.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

bool loaded_by_dlopen(const ObjectRecord& o) {
  return o.opened_by != 0;
}

}  // namespace

std::vector<uint32_t> SearchList::objects_at(uint64_t seq) const {
  std::vector<uint32_t> out;
  for (const auto& m : members)
    if (visible(m, seq)) out.push_back(m.object);
  return out;
}

bool SearchList::contains_at(uint32_t object, uint64_t seq) const {
  for (const auto& m : members)
    if (m.object == object && visible(m, seq)) return true;
  return false;
}

ScopeGraph::ScopeGraph(const TraceModel& model, ElfCache& elf) : model_(model), elf_(elf) {
  build();
}

std::optional<size_t> ScopeGraph::global_list(int64_t lmid) const {
  auto it = global_by_ns_.find(lmid);
  if (it == global_by_ns_.end()) return std::nullopt;
  return it->second;
}

const std::vector<ScopeRef>& ScopeGraph::scopes_of(uint32_t object) const {
  static const std::vector<ScopeRef> kNone;
  auto it = scopes_.find(object);
  return it == scopes_.end() ? kNone : it->second;
}

const ElfFile* ScopeGraph::file_of(const ObjectRecord& o) const {
  return elf_.for_object(o, model_.file_path(o)).file;
}

const ObjectRecord* ScopeGraph::resolve_name(std::string_view name, int64_t lmid,
                                             uint64_t seq) const {
  // ld.so matches a name against each object's l_name and the names it was loaded by (its
  // DT_SONAME among them); the first match in load order wins.
  auto first_alive = [&](const auto& index) -> const ObjectRecord* {
    auto it = index.find(std::string(name));
    if (it == index.end()) return nullptr;
    for (const ObjectRecord* o : it->second)
      if (o->lmid == lmid && o->alive_at(seq)) return o;
    return nullptr;
  };
  if (const ObjectRecord* o = first_alive(by_exact_name_)) return o;
  if (name.find('/') != std::string_view::npos) return nullptr;
  return first_alive(by_basename_);
}

std::vector<uint32_t> ScopeGraph::breadth_first(uint32_t root, uint64_t seq,
                                                std::vector<std::string>* gaps,
                                                std::vector<std::string>* reasons) const {
  std::vector<uint32_t> order{root};
  if (reasons) reasons->push_back("");
  absl::flat_hash_set<uint32_t> seen{root};
  for (size_t i = 0; i < order.size(); ++i) {
    const ObjectRecord* o = model_.reader().object(order[i]);
    if (!o) continue;
    const ElfFile* f = file_of(*o);
    if (!f) {
      // Without the file, the trace's own DT_NEEDED attribution is the best we have.
      const auto& entry = elf_.for_object(*o, model_.file_path(*o));
      if (gaps && entry.check != FileCheck::kNoFile)
        gaps->push_back(fmt::format("the dependencies of {} are taken from the trace: {}",
                                    model_.name_of(*o), entry.problem));
      auto children = needed_children_.find(o->id);
      if (children == needed_children_.end()) continue;
      for (const ObjectRecord* c : children->second) {
        if (c->alive_at(seq) && seen.insert(c->id).second) {
          order.push_back(c->id);
          if (reasons) reasons->push_back("needed by " + model_.name_of(*o));
        }
      }
      continue;
    }
    for (const auto& needed : f->needed) {
      const ObjectRecord* dep = resolve_name(needed, o->lmid, seq);
      if (!dep) {
        if (gaps)
          gaps->push_back(fmt::format("{} (needed by {}) is not among the loaded objects", needed,
                                      model_.name_of(*o)));
        continue;
      }
      if (seen.insert(dep->id).second) {
        order.push_back(dep->id);
        if (reasons) reasons->push_back("needed by " + model_.name_of(*o));
      }
    }
  }
  return order;
}

std::vector<uint32_t> ScopeGraph::closure_of_file(const ElfFile& file, int64_t lmid, uint64_t seq,
                                                  std::vector<std::string>* unresolved) const {
  std::vector<uint32_t> order;
  absl::flat_hash_set<uint32_t> seen;
  for (const auto& needed : file.needed) {
    const ObjectRecord* dep = resolve_name(needed, lmid, seq);
    if (!dep) {
      if (unresolved) unresolved->push_back(needed);
      continue;
    }
    if (seen.insert(dep->id).second) order.push_back(dep->id);
  }
  // The rest of the closure, breadth-first, through the loaded objects' own DT_NEEDED.
  for (size_t i = 0; i < order.size(); ++i) {
    for (uint32_t id : breadth_first(order[i], seq, nullptr, nullptr)) {
      if (seen.insert(id).second) order.push_back(id);
    }
  }
  return order;
}

void ScopeGraph::build() {
  const TraceReader& reader = model_.reader();
  const auto& by_load = model_.objects_by_load();
  for (const ObjectRecord* o : by_load) {
    if (o->flags & format::kObjectVdso) continue;
    std::string path(model_.path_of(*o));
    by_exact_name_[path].push_back(o);
    if (!o->soname.empty() && o->soname != path) by_exact_name_[o->soname].push_back(o);
    by_basename_[std::string(basename_of(path))].push_back(o);
    if (o->cause == format::ObjectCause::kNeeded) needed_children_[o->parent].push_back(o);
  }

  // Namespace 0's global scope: the executable, the preloads, then their DT_NEEDED closure.
  const ObjectRecord* main = nullptr;
  std::vector<const ObjectRecord*> preloads;
  for (const ObjectRecord* o : by_load) {
    if (o->lmid != 0 || loaded_by_dlopen(*o)) continue;
    if (!main && model_.is_main_program(*o)) main = o;
    if (o->cause == format::ObjectCause::kPreload) preloads.push_back(o);
  }
  if (main) {
    SearchList global;
    global.kind = SearchList::Kind::kGlobal;
    global.lmid = 0;
    std::vector<uint32_t> order{main->id};
    std::vector<std::string> reasons{"executable"};
    absl::flat_hash_set<uint32_t> seen{main->id};
    for (const ObjectRecord* p : preloads) {
      if (seen.insert(p->id).second) {
        order.push_back(p->id);
        reasons.push_back("preload");
      }
    }
    for (size_t i = 0; i < order.size(); ++i) {
      std::vector<std::string> sub_reasons;
      auto sub = breadth_first(order[i], 0, &global.gaps, &sub_reasons);
      for (size_t k = 1; k < sub.size(); ++k) {
        if (seen.insert(sub[k]).second) {
          order.push_back(sub[k]);
          reasons.push_back(sub_reasons[k]);
        }
      }
    }
    for (size_t i = 0; i < order.size(); ++i) global.members.push_back({order[i], 0, reasons[i]});
    global_by_ns_[0] = lists_.size();
    lists_.push_back(std::move(global));
    for (const ObjectRecord* o : by_load) {
      if (o->lmid == 0 && !loaded_by_dlopen(*o) && !(o->flags & format::kObjectVdso))
        scopes_[o->id].push_back({0, 0});
    }
  }

  absl::flat_hash_map<uint32_t, size_t> list_of_root;
  // add_to_global: the members of `from_list` not already (and still) in the global scope join
  // it at `seq`, in search-list order. The two lists are different vectors of lists_.
  auto add_to_global = [&](size_t global_index, size_t from_list, uint64_t seq,
                           const std::string& why) {
    SearchList& global = lists_[global_index];
    for (const auto& member : lists_[from_list].members) {
      const bool present =
          std::any_of(global.members.begin(), global.members.end(), [&](const ScopeMember& m) {
            const ObjectRecord* o = reader.object(m.object);
            return m.object == member.object && o && o->alive_at(seq);
          });
      if (!present) global.members.push_back({member.object, seq, why});
    }
  };

  reader.for_each_event([&](const format::EventSlot& e) {
    if (!is_open_call(e.call) || !(e.bits & format::kEventOk)) return true;
    const ObjectRecord* root = reader.object(e.object);
    if (!root || (root->flags & format::kObjectVdso)) return true;
    int64_t lmid = root->lmid;
    bool created = false;
    size_t list_index;
    auto it = list_of_root.find(root->id);
    if (it != list_of_root.end()) {
      list_index = it->second;
    } else if (!loaded_by_dlopen(*root) && lmid == 0 && main && root->id == main->id) {
      list_index = global_by_ns_[0];  // dlopen(NULL) or of the executable: its search list
    } else {
      SearchList local;
      std::vector<std::string> reasons;
      auto order = breadth_first(root->id, e.seq, &local.gaps, &reasons);
      local.lmid = lmid;
      local.opened_by = e.seq;
      local.root = root->id;
      for (size_t k = 0; k < order.size(); ++k)
        local.members.push_back({order[k], e.seq, k == 0 ? "opened" : reasons[k]});
      bool first_in_ns = !global_by_ns_.contains(lmid);
      if (first_in_ns) local.kind = SearchList::Kind::kGlobal;
      list_index = lists_.size();
      lists_.push_back(std::move(local));
      list_of_root[root->id] = list_index;
      if (first_in_ns) global_by_ns_[lmid] = list_index;
      created = true;
    }
    size_t global_index = global_by_ns_.contains(lmid) ? global_by_ns_[lmid] : list_index;
    const bool deepbind = (e.effective_flags & RTLD_DEEPBIND) != 0;

    if (created) {
      for (const auto& m : lists_[list_index].members) {
        const ObjectRecord* o = reader.object(m.object);
        if (!o) continue;
        auto& refs = scopes_[o->id];
        if (o->opened_by == e.seq && refs.empty()) {
          // A new object: [global, its group] (the group first with RTLD_DEEPBIND).
          if (global_index == list_index) {
            refs.push_back({list_index, e.seq});
          } else if (deepbind) {
            refs.push_back({list_index, e.seq});
            refs.push_back({global_index, e.seq});
          } else {
            refs.push_back({global_index, e.seq});
            refs.push_back({list_index, e.seq});
          }
        } else if (loaded_by_dlopen(*o)) {
          // Already loaded by an earlier dlopen: this group's list is appended to its l_scope.
          bool present = std::any_of(refs.begin(), refs.end(),
                                     [&](const ScopeRef& r) { return r.list == list_index; });
          if (!present) refs.push_back({list_index, e.seq});
        }
      }
    }
    if ((e.effective_flags & RTLD_GLOBAL) && global_index != list_index) {
      add_to_global(global_index, list_index, e.seq,
                    fmt::format("{} #{} RTLD_GLOBAL", call_name(e.call), e.seq));
    }
    return true;
  });

  // What the recorder saw join a global scope that the events did not explain (lost events,
  // unreadable files): added where the trace says, so the picture is never missing a member.
  for (const ObjectRecord* o : by_load) {
    if (!is_global(*o) || (o->flags & format::kObjectVdso)) continue;
    auto g = global_by_ns_.find(o->lmid);
    if (g == global_by_ns_.end()) continue;
    SearchList& global = lists_[g->second];
    bool present = false;
    for (const auto& m : global.members) present = present || m.object == o->id;
    if (!present) {
      uint64_t since = o->promote_seq ? *o->promote_seq : o->load_seq;
      global.members.push_back({o->id, since, "in the global scope (recorded by the preload)"});
    }
  }
  for (auto& list : lists_) {
    std::stable_sort(
        list.members.begin(), list.members.end(),
        [](const ScopeMember& a, const ScopeMember& b) { return a.since_seq < b.since_seq; });
  }
  // Objects whose dlopen event was lost: at least the namespace's global scope.
  for (const ObjectRecord* o : by_load) {
    if (o->flags & format::kObjectVdso) continue;
    auto& refs = scopes_[o->id];
    if (refs.empty()) {
      if (auto g = global_by_ns_.find(o->lmid); g != global_by_ns_.end())
        refs.push_back({g->second, o->load_seq});
    }
  }
}

std::vector<uint32_t> ScopeGraph::search_order(uint32_t object, uint64_t seq) const {
  std::vector<uint32_t> out;
  absl::flat_hash_set<uint32_t> seen;
  for (const ScopeRef& ref : scopes_of(object)) {
    if (ref.since_seq > seq) continue;
    for (uint32_t id : lists_[ref.list].objects_at(seq)) {
      const ObjectRecord* o = model_.reader().object(id);
      if (o && o->alive_at(seq) && seen.insert(id).second) out.push_back(id);
    }
  }
  return out;
}

}  // namespace dltrace::viewer

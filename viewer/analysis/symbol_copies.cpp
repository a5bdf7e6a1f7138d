#include "analysis/symbol_copies.h"

#include <elf.h>

#include <algorithm>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "analysis/symbol_bindings.h"

namespace dltrace::viewer {
namespace {

// Names of the files a DT_NEEDED entry can name the object by: its soname, else its basename.
bool names_object(const ElfFile& needer, const ObjectRecord& o, std::string_view path) {
  for (const std::string& n : needer.needed)
    if ((!o.soname.empty() && n == o.soname) || n == basename_of(path)) return true;
  return false;
}

// The search lists each object is a member of (at any time), by index into graph.lists().
using ListsOf = absl::flat_hash_map<uint32_t, std::vector<size_t>>;
ListsOf lists_of_objects(const ScopeGraph& graph) {
  ListsOf out;
  for (size_t i = 0; i < graph.lists().size(); ++i)
    for (const ScopeMember& m : graph.lists()[i].members) {
      auto& v = out[m.object];
      if (v.empty() || v.back() != i) v.push_back(i);
    }
  return out;
}

// Whether some search list holds both objects: two definitions in one list are a
// duplicate-symbol clash, reported by explain_objects.cpp, not a second copy in another list.
bool share_a_list(const ListsOf& lists, uint32_t a, uint32_t b) {
  auto ia = lists.find(a), ib = lists.find(b);
  if (ia == lists.end() || ib == lists.end()) return false;
  for (size_t x : ia->second)
    if (std::find(ib->second.begin(), ib->second.end(), x) != ib->second.end()) return true;
  return false;
}

}  // namespace

bool harmless_duplicate(const ElfSymbol& s) {
  if (!s.exported()) return true;
  // Weak: inline functions and template instances (vague linkage), overridable defaults.
  // STB_GNU_UNIQUE: ld.so itself makes all objects share one copy.
  if (s.bind != STB_GLOBAL) return true;
  if (!s.default_version) return true;  // a compat alias (sym@VER): old binaries only
  if (s.type != STT_FUNC && s.type != STT_OBJECT && s.type != STT_GNU_IFUNC) return true;
  if (s.section == SHN_ABS || s.version == "GLIBC_PRIVATE") return true;
  if (s.name == "_init" || s.name == "_fini") return true;
  // typeinfo, typeinfo name, vtable, VTT, construction vtable, guard variable, TLS init/wrapper.
  for (std::string_view prefix : {"_ZTI", "_ZTS", "_ZTV", "_ZTT", "_ZTC", "_ZGV", "_ZTH", "_ZTW"})
    if (s.name.starts_with(prefix)) return true;
  return false;
}

std::string runtime_name(std::string_view soname) {
  if (soname == "libstdc++.so.6") return "libstdc++";
  if (soname == "libc++.so.1" || soname == "libc++abi.so.1") return "libc++";
  if (soname == "libgcc_s.so.1") return "libgcc";
  if (soname == "libc.so.6" || soname == "libm.so.6") return "the C library";
  return {};
}

size_t ApiCopy::bound_to(uint32_t object) const {
  return std::count_if(references.begin(), references.end(),
                       [&](const CopyReference& r) { return r.to == object; });
}

size_t ApiCopy::returned_from(uint32_t object) const {
  return std::count_if(lookups.begin(), lookups.end(),
                       [&](const CopyLookup& l) { return l.to == object; });
}

bool ApiCopy::split() const {
  const bool second_used = !direct.empty() || bound_to(second) > 0 || returned_from(second) > 0;
  return second_used && bound_to(first) > 0;
}

bool ApiCopy::reported() const {
  return split() && (!runtime.empty() || symbols.size() * 2 > second_exports);
}

std::vector<ApiCopy> find_api_copies(const ScopeGraph& graph,
                                     const absl::flat_hash_set<uint32_t>* only) {
  const TraceModel& model = graph.model();
  const TraceReader& reader = model.reader();
  auto file_of = [&](const ObjectRecord& o) -> const ElfFile* {
    return graph.elf().for_object(o, model.file_path(o)).file;
  };
  auto skipped = [&](const ObjectRecord& o) {
    return (o.flags & (format::kObjectVdso | format::kObjectRecorder)) != 0;
  };
  std::map<std::pair<uint32_t, uint32_t>, ApiCopy> pairs;  // (second, first), load order
  const ListsOf lists = lists_of_objects(graph);
  for (const ObjectRecord* second : model.objects_by_load()) {
    if (skipped(*second) || model.is_main_program(*second)) continue;
    if (only && !only->contains(second->id)) continue;
    const ElfFile* file = file_of(*second);
    if (!file) continue;
    const uint64_t seq = relocation_seq(*second);
    // The objects ld.so visits before `second` itself when `second` looks a name up.
    std::vector<std::pair<const ObjectRecord*, const ElfFile*>> before;
    for (uint32_t id : graph.search_order(second->id, seq)) {
      if (id == second->id) break;
      const ObjectRecord* o = reader.object(id);
      if (!o || skipped(*o) || o->lmid != second->lmid) continue;
      if ((!o->soname.empty() && o->soname == second->soname) ||
          (!o->build_id.empty() && o->build_id == second->build_id))
        continue;  // one library twice: duplicate-library's finding
      if (share_a_list(lists, o->id, second->id)) continue;
      if (const ElfFile* f = file_of(*o)) before.emplace_back(o, f);
    }
    if (before.empty()) continue;
    size_t exports = 0;
    std::vector<std::pair<uint32_t, uint32_t>> keys;
    for (const ElfSymbol& s : file->dynamic_symbols) {
      if (!s.defined || harmless_duplicate(s)) continue;
      ++exports;
      for (const auto& [first, ffile] : before) {
        const ElfSymbol* def = ffile->exported(s.name, s.version);
        if (!def || harmless_duplicate(*def)) continue;
        // The executable's copy of a library's data (a copy relocation) is meant to win.
        if (model.is_main_program(*first) && (def->relocations & ElfSymbol::kRelocCopy)) break;
        ApiCopy& c = pairs[{second->id, first->id}];
        keys.emplace_back(second->id, first->id);
        c.first = first->id;
        c.second = second->id;
        c.seq = seq;
        c.symbols.push_back(s.name);
        if (!s.relocated) c.direct.push_back(s.name);
        break;
      }
    }
    for (const auto& key : keys) pairs[key].second_exports = exports;
  }
  if (pairs.empty()) return {};

  // Where the references of the second copy's object, and of the objects that need it, bind.
  absl::flat_hash_map<uint32_t, std::vector<SymbolBinding>> bindings;
  auto bindings_of = [&](const ObjectRecord& o) -> const std::vector<SymbolBinding>& {
    auto it = bindings.find(o.id);
    if (it == bindings.end())
      it = bindings.emplace(o.id, bind_object(graph, o, relocation_seq(o))).first;
    return it->second;
  };
  std::vector<ApiCopy> out;
  for (auto& entry : pairs) {
    ApiCopy& c = entry.second;  // not a structured binding: the lambdas below capture it
    const ObjectRecord* second = reader.object(c.second);
    const ElfFile* sfile = second ? file_of(*second) : nullptr;
    if (!sfile) continue;
    const absl::flat_hash_set<std::string> names(c.symbols.begin(), c.symbols.end());
    std::vector<const ObjectRecord*> referrers{second};
    for (const SearchList& list : graph.lists()) {
      if (list.kind != SearchList::Kind::kLocal) continue;
      const bool has_second =
          std::any_of(list.members.begin(), list.members.end(),
                      [&](const ScopeMember& m) { return m.object == c.second; });
      if (!has_second) continue;
      for (const ScopeMember& m : list.members) {
        const ObjectRecord* o = reader.object(m.object);
        if (!o || o->id == c.second || o->id == c.first ||
            std::find(referrers.begin(), referrers.end(), o) != referrers.end())
          continue;
        if (const ElfFile* f = file_of(*o); f && names_object(*f, *second, model.path_of(*second)))
          referrers.push_back(o);
      }
    }
    for (const ObjectRecord* o : referrers)
      for (const SymbolBinding& b : bindings_of(*o))
        if (b.to != format::kNoId && names.contains(b.symbol))
          c.references.push_back({b.from, b.symbol, b.to});
    if (const ObjectRecord* first = reader.object(c.first)) c.runtime = runtime_name(first->soname);
    out.push_back(std::move(c));
  }
  // Successful dlsym/dlvsym that returned one of the copies.
  reader.for_each_event([&](const format::EventSlot& e) {
    if (!is_sym_call(e.call) || !(e.bits & format::kEventOk) || e.object == format::kNoId)
      return true;
    const std::string_view name = reader.string(e.name);
    for (ApiCopy& c : out) {
      if (e.object != c.first && e.object != c.second) continue;
      if (std::find(c.symbols.begin(), c.symbols.end(), name) == c.symbols.end()) continue;
      c.lookups.push_back({e.seq, std::string(name), e.object});
    }
    return true;
  });
  return out;
}

absl::flat_hash_map<uint32_t, uint32_t> duplicates_brought_by_dlopen(const TraceModel& model) {
  absl::flat_hash_map<uint32_t, uint32_t> out;
  std::vector<const ObjectRecord*> candidates;
  absl::flat_hash_set<uint32_t> candidate_ids;
  for (const ObjectRecord* o : model.objects_by_load())
    if (o->opened_by && model.is_system_object(*o)) {
      candidates.push_back(o);
      candidate_ids.insert(o->id);
    }
  if (candidates.empty()) return out;
  for (const ObjectRecord* c : candidates) {
    for (const ObjectRecord* o : model.objects_by_load()) {
      if (o == c || !o->alive_at(c->load_seq) || model.path_of(*o) == model.path_of(*c)) continue;
      if ((!c->soname.empty() && o->soname == c->soname) ||
          (!c->build_id.empty() && o->build_id == c->build_id)) {
        out.emplace(c->id, o->id);
        break;
      }
    }
  }
  ElfCache elf;
  const ScopeGraph graph(model, elf);
  for (const ApiCopy& c : find_api_copies(graph, &candidate_ids))
    if (c.reported()) out.emplace(c.second, c.first);
  return out;
}

}  // namespace dltrace::viewer

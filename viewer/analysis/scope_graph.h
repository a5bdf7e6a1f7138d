// The symbol-lookup scopes ld.so really used, reconstructed from the trace and the ELF files.
//
// glibc's model (elf/dl-object.c, dl-open.c, dl-deps.c): every object's l_scope is a list of
// search lists. Scope 0 is its namespace's global scope: the first object of the namespace (the
// executable in namespace 0) with its preloads and DT_NEEDED closure breadth-first, then every
// group later opened or promoted RTLD_GLOBAL, in order. Scope 1 is the local scope of the dlopen
// group the object came in with: the opened object and its DT_NEEDED closure, breadth-first
// (RTLD_DEEPBIND swaps the two). An already-loaded object that a later dlopen's closure
// includes gets that group's search list appended to its l_scope.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "analysis/elf_file.h"
#include "dltrace/reader.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

struct ScopeMember {
  uint32_t object = format::kNoId;
  uint64_t since_seq = 0;  // global scope: the event that added it (0 = start-up)
  std::string reason;  // "executable", "preload", "needed by libfoo.so", "dlopen #12 RTLD_GLOBAL"
};

// One search list: a namespace's global scope or a dlopen group's local scope.
struct SearchList {
  enum class Kind { kGlobal, kLocal } kind = Kind::kLocal;
  int64_t lmid = 0;
  uint64_t opened_by = 0;         // local: the dlopen/dlmopen event that created the group
  uint32_t root = format::kNoId;  // local: the opened object
  std::vector<ScopeMember> members;
  std::vector<std::string> gaps;  // what could not be reconstructed (unreadable files, ...)

  // Whether `m` was in the list when event `seq` ran. ld.so relocates a new group before its
  // RTLD_GLOBAL takes effect, so a global-scope member added by event `seq` itself is not yet
  // visible to that event; the group's own local list is.
  bool visible(const ScopeMember& m, uint64_t seq) const {
    return kind == Kind::kGlobal ? (m.since_seq < seq || m.since_seq == 0) : m.since_seq <= seq;
  }
  // Members present when event `seq` ran (the global scope grows over time).
  std::vector<uint32_t> objects_at(uint64_t seq) const;
  bool contains_at(uint32_t object, uint64_t seq) const;
};

// One entry of an object's l_scope: which search list, and since when it is part of it.
struct ScopeRef {
  size_t list = 0;  // index into ScopeGraph::lists()
  uint64_t since_seq = 0;
};

class ScopeGraph {
 public:
  ScopeGraph(const TraceModel& model, ElfCache& elf);

  const std::vector<SearchList>& lists() const { return lists_; }
  // Index of a namespace's global scope, if the namespace had any object.
  std::optional<size_t> global_list(int64_t lmid) const;
  // The object's l_scope entries, in lookup order (scopes appended later come last).
  const std::vector<ScopeRef>& scopes_of(uint32_t object) const;
  // The objects a lookup for `object`'s undefined symbols visits at event `seq`, in order,
  // without repeats: what do_lookup_x walks.
  std::vector<uint32_t> search_order(uint32_t object, uint64_t seq) const;

  // The search list ld.so builds for a file that is not (or no longer) in the trace, e.g. the
  // object of a failed dlopen: the file, then its DT_NEEDED closure among the objects alive at
  // `seq` in namespace `lmid`. Names that no alive object answers go to `unresolved`.
  std::vector<uint32_t> closure_of_file(const ElfFile& file, int64_t lmid, uint64_t seq,
                                        std::vector<std::string>* unresolved) const;

  // The alive object of namespace `lmid` that a DT_NEEDED / dlopen name refers to at `seq`.
  const ObjectRecord* resolve_name(std::string_view name, int64_t lmid, uint64_t seq) const;

  // The global scope membership events: when each object joined (for "added later" notes).
  const TraceModel& model() const { return model_; }
  ElfCache& elf() const { return elf_; }

 private:
  void build();
  std::vector<uint32_t> breadth_first(uint32_t root, uint64_t seq, std::vector<std::string>* gaps,
                                      std::vector<std::string>* reasons) const;
  const ElfFile* file_of(const ObjectRecord& o) const;

  const TraceModel& model_;
  ElfCache& elf_;
  std::vector<SearchList> lists_;
  absl::flat_hash_map<int64_t, size_t> global_by_ns_;
  absl::flat_hash_map<uint32_t, std::vector<ScopeRef>> scopes_;
  // Objects by the names ld.so matches (soname and path; basename), and DT_NEEDED children by
  // parent, in load order: lookups stay cheap on traces with many objects.
  absl::flat_hash_map<std::string, std::vector<const ObjectRecord*>> by_exact_name_;
  absl::flat_hash_map<std::string, std::vector<const ObjectRecord*>> by_basename_;
  absl::flat_hash_map<uint32_t, std::vector<const ObjectRecord*>> needed_children_;
};

}  // namespace dltrace::viewer

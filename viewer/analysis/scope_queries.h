// The questions `dltrace scopes --for NAME` asks of the ScopeGraph: which objects NAME means,
// and, when it names no object because its dlopen failed, the search list that call had: the
// natural question right after such a failure is where its lookups went.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/elf_file.h"
#include "analysis/scope_graph.h"
#include "dltrace/format.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

// The objects (the vDSO aside) whose path, soname, basename or "#id" is `name`, in load order.
std::vector<const ObjectRecord*> objects_named(const TraceModel& model, std::string_view name);

// The search list ld.so had during a dlopen that failed: the global scope of the namespace at
// the time, then the group the file would have made (the file and its DT_NEEDED closure).
struct FailedLoadScopes {
  format::EventSlot event;               // the failed dlopen/dlmopen
  std::string file;                      // the object that never finished loading
  const ElfFile* elf = nullptr;          // nullptr: the file cannot be read, nothing below is known
  std::optional<size_t> global_list;     // index into ScopeGraph::lists()
  std::vector<uint32_t> global_members;  // of that list, alive during the call
  std::vector<uint32_t> group;           // the file's dependencies among the loaded objects
  std::vector<std::string> unresolved;   // dependencies loaded for the call and unloaded with it
};

// The first failed dlopen of `name` (the requested file, or the object its dlerror() text is
// about, by path or basename); nullopt when there is none.
std::optional<FailedLoadScopes> failed_load_scopes(const ScopeGraph& graph, std::string_view name);

}  // namespace dltrace::viewer

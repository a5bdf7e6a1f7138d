// A dlopen that failed on a dependency of the file it named ("libC.so: cannot open shared
// object file" while libA.so exists). ld.so's walk is replayed on disk: the file dlopen opened,
// then its DT_NEEDED closure breadth-first (as _dl_map_object_deps does), each name searched
// from the object that needs it — its own RUNPATH, the RPATHs up its loader chain — until the
// name that could not be found.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/elf_file.h"
#include "analysis/library_search.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

struct MissingDependency {
  // Who needed it: the object whose DT_NEEDED names it first, then the object that needed
  // that one, ..., the file dlopen opened, then the dlopen's caller and its loaders.
  std::vector<Loader> needers;
  size_t opened_files = 0;  // how many of `needers` are files of the failed dlopen (not loaded)
  std::string name;         // the DT_NEEDED entry ld.so could not find
  LibrarySearch search;     // its search, from needers.front()'s point of view
};

// What walk_dlopen_on_disk reports as it replays ld.so's mapping of a dlopen.
struct DlopenWalkVisitor {
  // Each file ld.so would map, in its order (the file dlopen opened first); `file` is null for
  // one cut short after its headers. Return false to stop.
  std::function<bool(const Loader& mapped)> mapped;
  // The DT_NEEDED name no directory of its search holds: where ld.so stops.
  std::function<void(MissingDependency&& missing)> missing;
};

// Replays on disk the dlopen of `requested` from `caller` at event `seq` (namespace `lmid`):
// breadth-first over DT_NEEDED, skipping what the namespace had loaded already.
void walk_dlopen_on_disk(std::string_view requested, const ObjectRecord* caller, uint64_t seq,
                         int64_t lmid, const TraceModel& model, ElfCache& elf,
                         const DlopenWalkVisitor& visit);

// ld.so's walk of a dlopen replayed on disk: the files it mapped, breadth-first, and the first
// DT_NEEDED name it could not find, if any.
struct DlopenReplay {
  // The file dlopen opened, then each DT_NEEDED file that was not already loaded: what a
  // failed dlopen mapped and unmapped again, so the trace never saw it. Readable files only.
  std::vector<Loader> files;
  std::optional<MissingDependency> missing;
};

// walk_dlopen_on_disk, collected; no files when the file itself cannot be found or read.
DlopenReplay replay_dlopen(std::string_view requested, const ObjectRecord* caller, uint64_t seq,
                           int64_t lmid, const TraceModel& model, ElfCache& elf);

// Replays the dlopen of `requested` from `caller` at event `seq` (namespace `lmid`). Returns
// nothing unless the replay ends at a DT_NEEDED entry named `missing` that no directory of its
// search holds: a replay that disagrees with ld.so's error is not reported.
std::optional<MissingDependency> find_missing_dependency(std::string_view requested,
                                                         std::string_view missing,
                                                         const ObjectRecord* caller, uint64_t seq,
                                                         int64_t lmid, const TraceModel& model,
                                                         ElfCache& elf);

}  // namespace dltrace::viewer

#include "analysis/missing_dependency.h"

#include <deque>
#include <filesystem>

#include "absl/container/flat_hash_set.h"
#include "common/loader_platform.h"

namespace dltrace::viewer {
namespace {

std::string base_of(std::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// An object of the namespace, alive at `seq`, that a DT_NEEDED name reuses (ld.so matches the
// soname or the name it was loaded under; the trace has the soname and the path).
bool already_loaded(std::string_view name, uint64_t seq, int64_t lmid, const TraceModel& model) {
  for (const ObjectRecord* o : model.objects_by_load())
    if (o->lmid == lmid && o->alive_at(seq) && (o->soname == name || base_of(o->path) == name))
      return true;
  return false;
}

// The file ld.so loads for `search`: the first candidate that is an ELF file for this machine
// (ld.so skips one of another class or machine and goes on).
const ElfFile* first_loadable(const LibrarySearch& search, ElfCache& elf, std::string* path) {
  const uint16_t machine = common::host_loader_platform().machine;
  for (const SearchStep& step : search.steps) {
    if (!step.exists) continue;
    const ElfFile* f = elf.file(step.candidate);
    if (f && f->machine == machine) {
      *path = step.candidate;
      return f;
    }
  }
  return nullptr;
}

struct Node {
  Loader loader;
  int parent;  // index into the node list, -1 for the file dlopen opened
};

}  // namespace

DlopenReplay replay_dlopen(std::string_view requested, const ObjectRecord* caller, uint64_t seq,
                           int64_t lmid, const TraceModel& model, ElfCache& elf) {
  DlopenReplay replay;
  const std::vector<Loader> callers = loader_chain(caller, model, elf);
  // The file dlopen opened.
  std::string path;
  const ElfFile* file = nullptr;
  LibrarySearch first = plan_search_from(requested, callers, model, elf);
  if (first.direct_path) {
    path = first.steps.front().candidate;
    file = elf.file(path);
  } else {
    file = first_loadable(first, elf, &path);
  }
  if (!file) return replay;

  std::vector<Node> nodes{{Loader{base_of(path), path, file, nullptr}, -1}};
  absl::flat_hash_set<std::string> seen{path};
  absl::flat_hash_set<std::string> names_loaded;  // DT_NEEDED names mapped during this dlopen
  // Breadth-first, each object's entries in order: the first name that cannot be found is the
  // one ld.so reports.
  for (size_t i = 0; i < nodes.size() && nodes.size() < 4096 && !replay.missing; ++i) {
    // The loader chain of node i: itself, the objects that needed it, then the dlopen caller's.
    std::vector<Loader> chain;
    for (int n = static_cast<int>(i); n >= 0; n = nodes[n].parent) chain.push_back(nodes[n].loader);
    const size_t opened_files = chain.size();
    chain.insert(chain.end(), callers.begin(), callers.end());
    for (const std::string& needed : nodes[i].loader.file->needed) {
      if (names_loaded.contains(needed) || already_loaded(needed, seq, lmid, model)) continue;
      LibrarySearch search = plan_search_from(needed, chain, model, elf);
      std::string found;
      const ElfFile* f = nullptr;
      if (search.direct_path) {
        found = search.steps.front().candidate;
        f = elf.file(found);
      } else {
        f = first_loadable(search, elf, &found);
      }
      if (!f) {
        replay.missing =
            MissingDependency{std::move(chain), opened_files, needed, std::move(search)};
        break;
      }
      names_loaded.insert(needed);
      if (!f->soname.empty()) names_loaded.insert(f->soname);
      if (seen.insert(found).second)
        nodes.push_back({Loader{base_of(found), found, f, nullptr}, static_cast<int>(i)});
    }
  }
  for (Node& node : nodes) replay.files.push_back(std::move(node.loader));
  return replay;
}

std::optional<MissingDependency> find_missing_dependency(std::string_view requested,
                                                         std::string_view missing,
                                                         const ObjectRecord* caller, uint64_t seq,
                                                         int64_t lmid, const TraceModel& model,
                                                         ElfCache& elf) {
  DlopenReplay replay = replay_dlopen(requested, caller, seq, lmid, model, elf);
  if (!replay.missing ||
      (replay.missing->name != missing && base_of(replay.missing->name) != base_of(missing)))
    return std::nullopt;
  return std::move(replay.missing);
}

}  // namespace dltrace::viewer

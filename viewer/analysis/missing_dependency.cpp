#include "analysis/missing_dependency.h"

#include <deque>
#include <filesystem>

#include "absl/container/flat_hash_set.h"

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
const ElfFile* first_loadable(const LibrarySearch& search, uint16_t machine, ElfCache& elf,
                              std::string* path) {
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

std::optional<MissingDependency> find_missing_dependency(std::string_view requested,
                                                         std::string_view missing,
                                                         const ObjectRecord* caller, uint64_t seq,
                                                         int64_t lmid, const TraceModel& model,
                                                         ElfCache& elf) {
  const std::vector<Loader> callers = loader_chain(caller, model, elf);
  const uint16_t machine = trace_machine(model, elf);
  // The file dlopen opened.
  std::string path;
  const ElfFile* file = nullptr;
  LibrarySearch first = plan_search_from(requested, callers, model, elf);
  if (first.direct_path) {
    path = first.steps.front().candidate;
    file = elf.file(path);
  } else {
    file = first_loadable(first, machine, elf, &path);
  }
  if (!file) return std::nullopt;

  std::vector<Node> nodes{{Loader{base_of(path), path, file, nullptr}, -1}};
  absl::flat_hash_set<std::string> seen{path};
  absl::flat_hash_set<std::string> names_loaded;  // DT_NEEDED names mapped during this dlopen
  // Breadth-first, each object's entries in order: the first name that cannot be found is the
  // one ld.so reports.
  for (size_t i = 0; i < nodes.size() && nodes.size() < 4096; ++i) {
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
        f = first_loadable(search, machine, elf, &found);
      }
      if (!f) {
        if (needed != missing && base_of(needed) != base_of(missing)) return std::nullopt;
        return MissingDependency{std::move(chain), opened_files, needed, std::move(search)};
      }
      names_loaded.insert(needed);
      if (!f->soname.empty()) names_loaded.insert(f->soname);
      if (seen.insert(found).second)
        nodes.push_back({Loader{base_of(found), found, f, nullptr}, static_cast<int>(i)});
    }
  }
  return std::nullopt;
}

}  // namespace dltrace::viewer

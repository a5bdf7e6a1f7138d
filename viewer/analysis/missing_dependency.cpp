#include "analysis/missing_dependency.h"

#include <deque>
#include <filesystem>

#include "absl/container/flat_hash_set.h"
#include "analysis/file_kind.h"

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

// The file ld.so maps for `search`, as first_loadable, but also one cut short after its headers:
// ld.so's header checks pass, it maps the file and dies when it touches the missing part.
bool mapped_file(const LibrarySearch& search, uint16_t machine, ElfCache& elf, std::string* path,
                 const ElfFile** file) {
  if (search.direct_path) {
    *path = search.steps.front().candidate;
    *file = elf.file(*path);
    return *file || classify_file(*path, machine).kind == FileKind::Kind::kTruncated;
  }
  if ((*file = first_loadable(search, machine, elf, path))) return true;
  for (const SearchStep& step : search.steps) {
    if (!step.exists) continue;
    const FileKind k = classify_file(step.candidate, machine);
    if (k.kind == FileKind::Kind::kTruncated) {
      *path = step.candidate;
      return true;
    }
  }
  return false;
}

}  // namespace

void walk_dlopen_on_disk(std::string_view requested, const ObjectRecord* caller, uint64_t seq,
                         int64_t lmid, const TraceModel& model, ElfCache& elf,
                         const DlopenWalkVisitor& visit) {
  const std::vector<Loader> callers = loader_chain(caller, model, elf);
  const uint16_t machine = trace_machine(model, elf);
  // The file dlopen opened.
  std::string path;
  const ElfFile* file = nullptr;
  LibrarySearch first = plan_search_from(requested, callers, model, elf);
  if (!mapped_file(first, machine, elf, &path, &file)) return;

  std::vector<Node> nodes{{Loader{base_of(path), path, file, nullptr}, -1}};
  if (visit.mapped && !visit.mapped(nodes.back().loader)) return;
  absl::flat_hash_set<std::string> seen{path};
  absl::flat_hash_set<std::string> names_loaded;  // DT_NEEDED names mapped during this dlopen
  // Breadth-first, each object's entries in order: the first name that cannot be found is the
  // one ld.so reports.
  for (size_t i = 0; i < nodes.size() && nodes.size() < 4096; ++i) {
    if (!nodes[i].loader.file) continue;  // cut short: ld.so would not get past it
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
      if (!mapped_file(search, machine, elf, &found, &f)) {
        if (visit.missing)
          visit.missing(
              MissingDependency{std::move(chain), opened_files, needed, std::move(search)});
        return;  // where ld.so stops
      }
      names_loaded.insert(needed);
      if (f && !f->soname.empty()) names_loaded.insert(f->soname);
      if (seen.insert(found).second) {
        nodes.push_back({Loader{base_of(found), found, f, nullptr}, static_cast<int>(i)});
        if (visit.mapped && !visit.mapped(nodes.back().loader)) return;
      }
    }
  }
}

DlopenReplay replay_dlopen(std::string_view requested, const ObjectRecord* caller, uint64_t seq,
                           int64_t lmid, const TraceModel& model, ElfCache& elf) {
  DlopenReplay replay;
  DlopenWalkVisitor visit;
  visit.mapped = [&](const Loader& mapped) {
    if (mapped.file) replay.files.push_back(mapped);  // one cut short has nothing to read
    return true;
  };
  visit.missing = [&](MissingDependency&& m) { replay.missing = std::move(m); };
  walk_dlopen_on_disk(requested, caller, seq, lmid, model, elf, visit);
  return replay;
}

std::optional<MissingDependency> find_missing_dependency(std::string_view requested,
                                                         std::string_view missing,
                                                         const ObjectRecord* caller, uint64_t seq,
                                                         int64_t lmid, const TraceModel& model,
                                                         ElfCache& elf) {
  std::optional<MissingDependency> found;
  DlopenWalkVisitor visit;
  visit.missing = [&](MissingDependency&& m) {
    // A replay that disagrees with ld.so's error is not reported.
    if (m.name == missing || base_of(m.name) == base_of(missing)) found = std::move(m);
  };
  walk_dlopen_on_disk(requested, caller, seq, lmid, model, elf, visit);
  return found;
}

}  // namespace dltrace::viewer

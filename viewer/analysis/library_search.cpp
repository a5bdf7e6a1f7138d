#include "analysis/library_search.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/container/flat_hash_set.h"
#include "common/hwcaps.h"
#include "common/ld_so_cache.h"
#include "common/library_search.h"
#include "common/loader_platform.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

namespace fs = std::filesystem;

// This machine's hwcaps subdirectories and $PLATFORM, computed once.
const common::HwcapsSubdirs& host_subdirs() {
  static const common::HwcapsSubdirs subdirs = [] {
    common::HwcapsSubdirs s;
    common::compute_hwcaps_subdirs(&s);
    return s;
  }();
  return subdirs;
}

bool exists(const std::string& path) {
  struct stat st;
  return !path.empty() && stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string dir_of(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string cache_lookup(std::string_view name, int32_t abi_flags) {
  int fd = open("/etc/ld.so.cache", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat st;
  std::string hit;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      std::string key(name);
      if (const char* p =
              find_in_ld_so_cache(static_cast<const unsigned char*>(map),
                                  static_cast<size_t>(st.st_size), key.c_str(), abi_flags))
        hit = p;
      munmap(map, static_cast<size_t>(st.st_size));
    }
  }
  close(fd);
  return hit;
}

std::vector<std::string> split_colon(std::string_view list) {
  std::vector<std::string> out;
  while (true) {
    size_t sep = list.find_first_of(":;");
    std::string_view part = list.substr(0, sep);
    out.emplace_back(part.empty() ? "." : part);
    if (sep == std::string_view::npos) return out;
    list.remove_prefix(sep + 1);
  }
}

}  // namespace

std::string absolute_in_trace(const TraceModel& model, std::string_view path) {
  return model.absolute_path(path);
}

std::string relative_name_elsewhere(std::string_view name, const ObjectRecord* caller,
                                    const TraceModel& model, std::string* base) {
  if (name.empty() || name.front() == '/' || name.find('/') == std::string_view::npos) return {};
  struct stat st;
  if (stat(model.absolute_path(name).c_str(), &st) == 0) return {};
  std::vector<std::string> bases;
  if (caller) bases.push_back(fs::path(model.file_path(*caller)).parent_path().string());
  if (!model.reader().process().exe.empty())
    bases.push_back(fs::path(model.reader().process().exe).parent_path().string());
  for (const std::string& b : bases) {
    std::string candidate = (fs::path(b) / name).lexically_normal().string();
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (base) *base = b;
      return candidate;
    }
  }
  return {};
}

std::string expand_search_dir(std::string_view dir, std::string_view origin) {
  const common::LoaderPlatform& platform = common::host_loader_platform();
  const char* platform_name = host_subdirs().platform ? host_subdirs().platform : platform.platform;
  std::string origin_text(origin);
  char out[PATH_MAX];
  if (!common::expand_search_dir(dir.data(), dir.size(), origin_text.c_str(), platform.lib,
                                 platform_name, out, sizeof out))
    return {};
  return out[0] == '\0' ? std::string(".") : std::string(out);
}

namespace {

// What the model's visitor collects: every candidate, and one step per directory.
struct StepCollector {
  const std::vector<Loader>* loaders;  // parallel to `chain`
  const common::SearchObject* chain;
  size_t chain_size;
  const common::SearchObject* executable;
  std::string executable_name;
  LibrarySearch* out;
};

std::string source_text(const StepCollector& c, const common::SearchCandidate& cand) {
  auto owner = [&]() -> std::string {
    // The executable's RPATH searched after the loader chain is named as such.
    if (cand.object == c.executable && cand.object != c.chain)
      return "the executable " + c.executable_name;
    size_t i = static_cast<size_t>(cand.object - c.chain);
    return i < c.loaders->size() ? (*c.loaders)[i].name : std::string("?");
  };
  switch (cand.source) {
    case common::SearchSource::kRpath:
      return "DT_RPATH of " + owner();
    case common::SearchSource::kRunpath:
      return "DT_RUNPATH of " + owner();
    case common::SearchSource::kLdLibraryPath:
      return "LD_LIBRARY_PATH";
    case common::SearchSource::kLdSoCache:
      return "/etc/ld.so.cache";
    case common::SearchSource::kDefaultDirs:
      return "default directory";
  }
  return "?";
}

bool collect_step(const common::SearchCandidate& cand, void* context) {
  auto* c = static_cast<StepCollector*>(context);
  c->out->tried.emplace_back(cand.path);
  const bool is_subdir = cand.subdir[0] != '\0';
  std::string path = cand.path[0] == '/' ? fs::path(cand.path).lexically_normal().string()
                                         : std::string(cand.path);
  const bool there = exists(path);
  if (is_subdir && !there) return false;
  std::string source = source_text(*c, cand);
  if (is_subdir) source += fmt::format(", hwcaps subdirectory {}", cand.subdir);
  c->out->steps.push_back({std::move(source), std::move(path), there});
  return false;  // the viewer wants every step
}

const ObjectRecord* main_program(const TraceModel& model) {
  for (const ObjectRecord* o : model.objects_by_load())
    if (model.is_main_program(*o)) return o;
  return nullptr;
}

}  // namespace

std::vector<Loader> loader_chain(const ObjectRecord* caller, const TraceModel& model,
                                 ElfCache& elf) {
  std::vector<Loader> chain;
  absl::flat_hash_set<uint32_t> seen;
  for (const ObjectRecord* o = caller; o && seen.insert(o->id).second;
       o = model.reader().object(o->parent))
    chain.push_back({model.name_of(*o), absolute_in_trace(model, model.path_of(*o)),
                     elf.for_object(*o, model.file_path(*o)).file, o});
  return chain;
}

uint16_t trace_machine(const TraceModel& model, ElfCache& elf) {
  for (const ObjectRecord* o : model.objects_by_load()) {
    const std::string name = fs::path(model.path_of(*o)).filename().string();
    if (const common::LoaderPlatform* p = common::loader_platform_of_loader(name.c_str()))
      return p->machine;
  }
  if (const ObjectRecord* main = main_program(model))
    if (const ElfFile* exe = elf.for_object(*main, model.file_path(*main)).file)
      return exe->machine;
  return common::host_loader_platform().machine;
}

LibrarySearch plan_search(std::string_view name, const ObjectRecord* caller,
                          const TraceModel& model, ElfCache& elf) {
  if (!caller) caller = main_program(model);
  return plan_search_from(name, loader_chain(caller, model, elf), model, elf);
}

LibrarySearch plan_search_from(std::string_view name, const std::vector<Loader>& loaders,
                               const TraceModel& model, ElfCache& elf) {
  LibrarySearch out;
  if (name.find('/') != std::string_view::npos) {
    out.direct_path = true;
    std::string path = absolute_in_trace(model, name);
    out.steps.push_back({"the name contains '/': only this file", path, exists(path)});
    return out;
  }
  const ObjectRecord* main = main_program(model);
  const Loader* loader = loaders.empty() ? nullptr : &loaders.front();
  if (loader && !loader->file)
    out.notes.push_back(
        fmt::format("{}'s file could not be read: its RPATH/RUNPATH are unknown", loader->name));

  // The chain the model walks, and the executable after it when the chain does not reach it
  // (ld.so searches the executable's RPATH once either way).
  std::vector<Loader> all = loaders;
  size_t chain_size = all.size();
  size_t exe_index = all.size();
  for (size_t i = 0; i < all.size(); ++i)
    if (main && all[i].object == main) exe_index = i;
  if (main && exe_index == all.size()) {
    all.push_back({model.name_of(*main), absolute_in_trace(model, model.path_of(*main)),
                   elf.for_object(*main, model.file_path(*main)).file, main});
  }
  std::vector<std::string> rpaths(all.size()), runpaths(all.size()), origins(all.size());
  std::vector<common::SearchObject> chain(all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    origins[i] = dir_of(all[i].path);
    chain[i].origin = origins[i].c_str();
    if (const ElfFile* f = all[i].file) {
      if (f->rpath) rpaths[i] = *f->rpath;
      if (f->runpath) runpaths[i] = *f->runpath;
      chain[i].rpath = f->rpath ? rpaths[i].c_str() : nullptr;
      chain[i].runpath = f->runpath ? runpaths[i].c_str() : nullptr;
      chain[i].nodeflib = (f->flags_1 & DF_1_NODEFLIB) != 0;
    }
  }
  const common::SearchObject* executable = main ? &chain[exe_index] : nullptr;

  const common::LoaderPlatform* platform = &common::host_loader_platform();
  if (const common::LoaderPlatform* p = common::loader_platform(trace_machine(model, elf)))
    platform = p;
  const bool host = platform == &common::host_loader_platform();
  const common::HwcapsSubdirs& subdirs = host_subdirs();

  const auto& llp = model.reader().process().ld_library_path;
  if (!llp)
    out.notes.push_back("LD_LIBRARY_PATH was not set (or the trace predates its recording)");
  if (loader && loader->file && loader->file->runpath && loader->file->rpath)
    out.notes.push_back(fmt::format("{} has DT_RUNPATH, so its DT_RPATH is ignored", loader->name));

  std::string name_text(name);
  const common::SearchObject* flags_of = chain_size > 0 ? &chain[0] : executable;
  const bool nodeflib = flags_of && flags_of->nodeflib;
  std::string hit = nodeflib ? std::string() : cache_lookup(name, platform->cache_flags);

  common::SearchRequest request;
  request.name = name_text.c_str();
  request.chain = chain.data();
  request.chain_size = chain_size;
  request.executable = executable;
  request.ld_library_path = llp && !llp->empty() ? llp->c_str() : nullptr;
  request.platform = platform;
  request.platform_name = host ? subdirs.platform : nullptr;
  request.cache_hit = hit.empty() ? nullptr : hit.c_str();
  request.subdirs = host ? subdirs.names : nullptr;
  request.subdir_count = host ? subdirs.count : 0;
  StepCollector collector{
      &all, chain.data(), chain_size, executable, main ? model.name_of(*main) : std::string(),
      &out};
  common::search_library(request, collect_step, &collector);
  if (!nodeflib && hit.empty()) {
    // The model only yields the cache's answer; say that it had none, where it would have been.
    auto at = std::find_if(out.steps.begin(), out.steps.end(), [](const SearchStep& s) {
      return s.source.rfind("default directory", 0) == 0;
    });
    out.steps.insert(at, SearchStep{"/etc/ld.so.cache", "", false});
  }
  if (nodeflib)
    out.notes.push_back(
        fmt::format("{} is linked with -z nodeflib: the cache and the default "
                    "directories are not searched",
                    loader ? loader->name : std::string("the executable")));
  if (host && subdirs.count > 1)
    out.notes.push_back(
        fmt::format("ld.so also tried each directory's {} hwcaps subdirectories "
                    "first ({}, …); only those holding the file are listed",
                    subdirs.count - 1, subdirs.names[0]));
  else if (!host)
    out.notes.push_back(
        fmt::format("the trace is from another CPU ({}): its hwcaps "
                    "subdirectories are not listed",
                    platform->name));
  return out;
}

std::vector<std::string> find_on_disk(std::string_view name, const TraceModel& model,
                                      size_t max_entries) {
  // Directories are walked once, so the ones to descend into come first.
  std::vector<std::pair<std::string, int>> roots;  // directory, depth to descend
  const ProcessInfo& p = model.reader().process();
  if (!p.exe.empty()) roots.emplace_back(dir_of(p.exe), 2);
  if (!p.cwd.empty()) roots.emplace_back(p.cwd, 2);
  for (const ObjectRecord* o : model.objects_by_load()) {
    std::string_view path = model.path_of(*o);
    if ((o->flags & format::kObjectVdso) || path.find('/') == std::string_view::npos) continue;
    roots.emplace_back(dir_of(absolute_in_trace(model, path)), 0);
  }
  if (p.ld_library_path)
    for (const auto& d : split_colon(*p.ld_library_path)) roots.emplace_back(d, 0);
  const common::LoaderPlatform& platform = common::host_loader_platform();
  for (size_t i = 0; i < platform.default_dir_count; ++i)
    roots.emplace_back(platform.default_dirs[i], 0);

  std::vector<std::string> found;
  absl::flat_hash_set<std::string> seen_dirs, seen_files;
  size_t budget = max_entries;
  std::string prefix = std::string(name) + ".";
  // Breadth-first, so a big tree under the working directory cannot starve the other roots.
  for (size_t i = 0; i < roots.size() && budget > 0; ++i) {
    std::error_code ec;
    fs::path dir = fs::weakly_canonical(roots[i].first, ec);
    if (ec || !seen_dirs.insert(dir.string()).second) continue;
    for (fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
         !ec && it != end && budget > 0; it.increment(ec), --budget) {
      const fs::directory_entry& entry = *it;
      std::string file = entry.path().filename().string();
      std::error_code type_ec;
      if (entry.is_directory(type_ec)) {
        if (roots[i].second > 0 && !entry.is_symlink(type_ec) && file.front() != '.')
          roots.emplace_back(entry.path().string(), roots[i].second - 1);
        continue;
      }
      if (file != name && file.rfind(prefix, 0) != 0) continue;
      std::string path = entry.path().lexically_normal().string();
      if (seen_files.insert(path).second) found.push_back(std::move(path));
    }
  }
  return found;
}

}  // namespace dltrace::viewer

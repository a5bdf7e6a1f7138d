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
#include "dltrace/ld_so_cache.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

namespace fs = std::filesystem;

// Debian's multiarch glibc: the trusted directories searched last (unless DF_1_NODEFLIB).
constexpr std::string_view kDefaultDirs[] = {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                                             "/lib", "/usr/lib"};

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

// An object's path made absolute against the traced process's working directory.
std::string absolute_in(const TraceModel& model, std::string_view path) {
  if (path.empty() || path.front() == '/') return std::string(path);
  const std::string& cwd = model.reader().process().cwd;
  return fs::path(cwd.empty() ? "." : cwd).append(path).lexically_normal().string();
}

std::string cache_lookup(std::string_view name) {
  int fd = open("/etc/ld.so.cache", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat st;
  std::string hit;
  if (fstat(fd, &st) == 0 && st.st_size > 0) {
    void* map = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      std::string key(name);
      if (const char* p = find_in_ld_so_cache(static_cast<const unsigned char*>(map),
                                              static_cast<size_t>(st.st_size), key.c_str()))
        hit = p;
      munmap(map, static_cast<size_t>(st.st_size));
    }
  }
  close(fd);
  return hit;
}

void add_list(LibrarySearch& out, const std::vector<std::string>& dirs, std::string_view origin,
              std::string_view name, const std::string& source) {
  for (const auto& d : dirs) {
    std::string dir = expand_search_dir(d, origin);
    std::string candidate = fs::path(dir).append(name).lexically_normal().string();
    out.steps.push_back({source, candidate, exists(candidate)});
  }
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

std::string expand_search_dir(std::string_view dir, std::string_view origin) {
  std::string out;
  for (size_t i = 0; i < dir.size();) {
    if (dir[i] == '$') {
      std::string_view rest = dir.substr(i + 1);
      struct Token {
        std::string_view name, value;
      };
      const Token tokens[] = {{"ORIGIN", origin}, {"LIB", "lib/x86_64-linux-gnu"}, {"PLATFORM", "x86_64"}};
      bool done = false;
      for (const auto& t : tokens) {
        if (rest.substr(0, t.name.size()) == t.name) {
          out += t.value;
          i += 1 + t.name.size();
          done = true;
        } else if (rest.size() >= t.name.size() + 2 && rest[0] == '{' &&
                   rest.substr(1, t.name.size()) == t.name && rest[t.name.size() + 1] == '}') {
          out += t.value;
          i += 3 + t.name.size();
          done = true;
        }
        if (done) break;
      }
      if (done) continue;
    }
    out += dir[i++];
  }
  return out.empty() ? std::string(".") : out;
}

LibrarySearch plan_search(std::string_view name, const ObjectRecord* caller,
                          const TraceModel& model, ElfCache& elf) {
  LibrarySearch out;
  if (name.find('/') != std::string_view::npos) {
    out.direct_path = true;
    std::string path = absolute_in(model, name);
    out.steps.push_back({"the name contains '/': only this file", path, exists(path)});
    return out;
  }
  const TraceReader& reader = model.reader();
  const ObjectRecord* main = nullptr;
  for (const ObjectRecord* o : model.objects_by_load())
    if (model.is_main_program(*o)) {
      main = o;
      break;
    }
  if (!caller) caller = main;
  auto file_of = [&](const ObjectRecord* o) -> const ElfFile* {
    return o ? elf.for_object(*o, model.path_of(*o)).file : nullptr;
  };
  auto origin_of = [&](const ObjectRecord* o) {
    return dir_of(absolute_in(model, model.path_of(*o)));
  };
  const ElfFile* caller_file = file_of(caller);
  if (caller && !caller_file)
    out.notes.push_back(fmt::format("{}'s file could not be read: its RPATH/RUNPATH are unknown",
                                    model.name_of(*caller)));
  const bool caller_runpath = caller_file && !caller_file->runpath.empty();
  // DT_RPATH of the caller and of the objects that loaded it, then the executable's; all of
  // them ignored when the caller has DT_RUNPATH.
  if (caller_runpath) {
    if (!caller_file->rpath.empty())
      out.notes.push_back(fmt::format("{} has DT_RUNPATH, so its DT_RPATH is ignored",
                                      model.name_of(*caller)));
  } else {
    absl::flat_hash_set<uint32_t> seen;
    for (const ObjectRecord* o = caller; o && seen.insert(o->id).second;
         o = reader.object(o->parent)) {
      const ElfFile* f = file_of(o);
      if (f && !f->rpath.empty())
        add_list(out, f->rpath, origin_of(o), name, "DT_RPATH of " + model.name_of(*o));
      if (o->cause != format::ObjectCause::kNeeded) break;
    }
    if (main && caller != main && !seen.contains(main->id)) {
      const ElfFile* f = file_of(main);
      if (f && !f->rpath.empty() && f->runpath.empty())
        add_list(out, f->rpath, origin_of(main), name, "DT_RPATH of the executable " + model.name_of(*main));
    }
  }
  const auto& llp = reader.process().ld_library_path;
  if (llp && !llp->empty()) {
    add_list(out, split_colon(*llp), "", name, "LD_LIBRARY_PATH");
  } else if (!llp) {
    out.notes.push_back("LD_LIBRARY_PATH was not set (or the trace predates its recording)");
  }
  if (caller_runpath)
    add_list(out, caller_file->runpath, origin_of(caller), name,
             "DT_RUNPATH of " + model.name_of(*caller));
  const bool nodeflib = caller_file && (caller_file->flags_1 & DF_1_NODEFLIB);
  std::string hit = nodeflib ? std::string() : cache_lookup(name);
  if (!nodeflib)
    out.steps.push_back({"/etc/ld.so.cache", hit, exists(hit)});
  if (nodeflib) {
    out.notes.push_back(fmt::format("{} is linked with -z nodeflib: the cache and the default "
                                    "directories are not searched",
                                    model.name_of(*caller)));
  } else {
    for (std::string_view d : kDefaultDirs) {
      std::string candidate = fmt::format("{}/{}", d, name);
      out.steps.push_back({"default directory", candidate, exists(candidate)});
    }
  }
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
    roots.emplace_back(dir_of(absolute_in(model, path)), 0);
  }
  if (p.ld_library_path)
    for (const auto& d : split_colon(*p.ld_library_path)) roots.emplace_back(d, 0);
  for (std::string_view d : kDefaultDirs) roots.emplace_back(std::string(d), 0);

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

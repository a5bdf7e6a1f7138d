// Emulation of ld.so's library search, for matching override rules against the file a dlopen
// will load. Only open/pread/dl_iterate_phdr: nothing here touches dlerror state.
#include "library_resolver.h"

#include <elf.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "arch/arch.h"
#include "common/hwcaps.h"
#include "common/ld_so_cache.h"
#include "common/library_search.h"
#include "common/loader_platform.h"
#include "fork_gate.h"
#include "self_exe.h"

namespace dltrace::preload {
namespace {

// Set once by resolver_init(), read-only afterwards.
DLTRACE_LARGE_BSS char g_exe[PATH_MAX];
DLTRACE_LARGE_BSS char g_exe_dir[PATH_MAX];
const char* g_ld_library_path = nullptr;  // glibc reads it once at start-up, so do we
const ElfW(Dyn) * g_exe_dyn = nullptr;
ElfW(Addr) g_exe_base = 0;
const unsigned char* g_cache = nullptr;  // /etc/ld.so.cache, mapped
size_t g_cache_size = 0;
// constinit: filled by resolver_init(), possibly from a constructor that runs before this
// file's own static initialisers would.
constinit common::HwcapsSubdirs g_subdirs;  // computed once: cpuid does not change
const char* g_platform_name = nullptr;      // $PLATFORM

struct DynInfo {
  const char* strtab = nullptr;
  const char* rpath = nullptr;
  const char* runpath = nullptr;
  const char* soname = nullptr;
  bool nodeflib = false;
};

// d_ptr values are relocated by ld.so, except in the vDSO (and non-PIE executables, base 0).
DynInfo read_dynamic(const ElfW(Dyn) * dyn, ElfW(Addr) base) {
  DynInfo info;
  if (dyn == nullptr) return info;
  ElfW(Addr) strtab = 0;
  long rpath = -1, runpath = -1, soname = -1;
  for (const ElfW(Dyn)* d = dyn; d->d_tag != DT_NULL; ++d) {
    switch (d->d_tag) {
      case DT_STRTAB:
        strtab = d->d_un.d_ptr;
        break;
      case DT_RPATH:
        rpath = static_cast<long>(d->d_un.d_val);
        break;
      case DT_RUNPATH:
        runpath = static_cast<long>(d->d_un.d_val);
        break;
      case DT_SONAME:
        soname = static_cast<long>(d->d_un.d_val);
        break;
      case DT_FLAGS_1:
        info.nodeflib = (d->d_un.d_val & DF_1_NODEFLIB) != 0;
        break;
      default:
        break;
    }
  }
  if (strtab == 0) return info;
  if (strtab < base) strtab += base;
  info.strtab = reinterpret_cast<const char*>(strtab);
  if (rpath >= 0) info.rpath = info.strtab + rpath;
  if (runpath >= 0) info.runpath = info.strtab + runpath;
  if (soname >= 0) info.soname = info.strtab + soname;
  return info;
}

const ElfW(Dyn) * dynamic_of(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
      return reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
  return nullptr;
}

// Appends s to buf[*len] within cap; false on overflow.
bool append(char* buf, size_t cap, size_t* len, const char* s, size_t n) {
  if (*len + n >= cap) return false;
  memcpy(buf + *len, s, n);
  *len += n;
  buf[*len] = '\0';
  return true;
}

void copy(char* dst, size_t cap, const char* src) {
  size_t n = strnlen(src, cap - 1);
  memcpy(dst, src, n);
  dst[n] = '\0';
}

void dirname_into(char* dst, size_t cap, const char* path) {
  const char* slash = strrchr(path, '/');
  if (slash == nullptr) {
    copy(dst, cap, ".");
    return;
  }
  size_t n = static_cast<size_t>(slash - path);
  if (n == 0) n = 1;  // "/x" → "/"
  if (n >= cap) n = cap - 1;
  memcpy(dst, path, n);
  dst[n] = '\0';
}

// Reads the ELF header of an open file and, if it is a 64-bit x86-64 shared object, its
// DT_SONAME. Returns false when ld.so would skip the file (wrong class or machine).
bool elf_soname_fd(int fd, char* soname, size_t cap) {
  soname[0] = '\0';
  ElfW(Ehdr) eh;
  if (pread(fd, &eh, sizeof eh, 0) != static_cast<ssize_t>(sizeof eh)) return false;
  if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_machine != common::host_loader_platform().machine)
    return false;
  if (eh.e_phentsize != sizeof(ElfW(Phdr)) || eh.e_phnum == 0 || eh.e_phnum > 64) return true;
  ElfW(Phdr) ph[64];
  size_t ph_bytes = sizeof(ElfW(Phdr)) * eh.e_phnum;
  if (pread(fd, ph, ph_bytes, static_cast<off_t>(eh.e_phoff)) != static_cast<ssize_t>(ph_bytes))
    return true;
  const ElfW(Phdr)* dyn_ph = nullptr;
  for (int i = 0; i < eh.e_phnum; ++i)
    if (ph[i].p_type == PT_DYNAMIC) dyn_ph = &ph[i];
  if (dyn_ph == nullptr) return true;
  ElfW(Dyn) dyn[256];
  size_t dyn_bytes = dyn_ph->p_filesz < sizeof dyn ? dyn_ph->p_filesz : sizeof dyn;
  ssize_t got = pread(fd, dyn, dyn_bytes, static_cast<off_t>(dyn_ph->p_offset));
  if (got <= 0) return true;
  size_t count = static_cast<size_t>(got) / sizeof(ElfW(Dyn));
  ElfW(Addr) strtab = 0;
  long off = -1;
  for (size_t i = 0; i < count && dyn[i].d_tag != DT_NULL; ++i) {
    if (dyn[i].d_tag == DT_STRTAB) strtab = dyn[i].d_un.d_ptr;
    if (dyn[i].d_tag == DT_SONAME) off = static_cast<long>(dyn[i].d_un.d_val);
  }
  if (off < 0 || strtab == 0) return true;
  // The string table's address → file offset through the PT_LOAD that maps it.
  for (int i = 0; i < eh.e_phnum; ++i) {
    if (ph[i].p_type != PT_LOAD || strtab < ph[i].p_vaddr ||
        strtab >= ph[i].p_vaddr + ph[i].p_filesz)
      continue;
    off_t at = static_cast<off_t>(strtab - ph[i].p_vaddr + ph[i].p_offset) + off;
    ssize_t n = pread(fd, soname, cap - 1, at);
    if (n <= 0) {
      soname[0] = '\0';
      return true;
    }
    soname[n] = '\0';
    soname[strnlen(soname, static_cast<size_t>(n))] = '\0';
    return true;
  }
  return true;
}

// Tries one candidate file; on success fills *out.
bool try_file(const char* path, ResolvedLibrary* out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = elf_soname_fd(fd, out->soname, sizeof out->soname);
  close(fd);
  if (ok) copy(out->path, sizeof out->path, path);
  return ok;
}

// The search's visitor: stops at the first candidate ld.so would load (an ELF file of this
// ABI). A hwcaps subdirectory is only opened when its first component exists in that
// directory: 19 of the 20 candidates per directory are subdirectories that almost never exist.
struct FileSearch {
  ResolvedLibrary* out;
  const char* dir = nullptr;  // the directory whose subdirectories `present` describes
  uint32_t present = 0;       // bit i: the first component of subdir i exists
};

bool first_component_exists(const char* dir, const char* subdir) {
  char path[PATH_MAX];
  const char* slash = strchr(subdir, '/');
  size_t n = slash != nullptr ? static_cast<size_t>(slash - subdir) : strlen(subdir);
  size_t dl = strlen(dir);
  if (dl + n + 1 >= sizeof path) return false;
  memcpy(path, dir, dl);
  memcpy(path + dl, subdir, n);
  path[dl + n] = '\0';
  struct stat st;
  return stat(path[0] != '\0' ? path : ".", &st) == 0 && S_ISDIR(st.st_mode);
}

bool visit_candidate(const common::SearchCandidate& c, void* context) {
  auto* s = static_cast<FileSearch*>(context);
  if (c.subdir[0] != '\0') {
    if (s->dir != c.dir) {
      s->dir = c.dir;
      s->present = 0;
      for (size_t i = 0; i + 1 < g_subdirs.count && i < 32; ++i)
        if (first_component_exists(c.dir, g_subdirs.names[i])) s->present |= 1u << i;
    }
    size_t index = 0;
    while (index + 1 < g_subdirs.count && g_subdirs.names[index] != c.subdir) ++index;
    if (index < 32 && !(s->present & (1u << index))) return false;
  }
  return try_file(c.path, s->out);
}

struct LoadedSearch {
  const char* name;
  ResolvedLibrary* out;
  bool found;
};

int find_loaded(dl_phdr_info* info, size_t, void* data) {
  auto* s = static_cast<LoadedSearch*>(data);
  if (info->dlpi_name == nullptr || info->dlpi_name[0] == '\0') return 0;
  DynInfo d = read_dynamic(dynamic_of(info), info->dlpi_addr);
  if (d.soname == nullptr || strcmp(d.soname, s->name) != 0) return 0;
  copy(s->out->path, sizeof s->out->path, info->dlpi_name);
  copy(s->out->soname, sizeof s->out->soname, d.soname);
  s->found = true;
  return 1;
}

int find_exe(dl_phdr_info* info, size_t, void*) {
  g_exe_base = info->dlpi_addr;
  g_exe_dyn = dynamic_of(info);
  return 1;  // the first object is the executable
}

// ---- the per-(caller, name) cache ----
struct CacheEntry {
  bool valid;
  bool found;
  const ElfW(Dyn) * caller;
  uint64_t generation;
  char name[256];
  ResolvedLibrary lib;
};
constexpr size_t kCacheEntries = 64;  // direct-mapped by name hash
DLTRACE_LARGE_BSS CacheEntry g_entries[kCacheEntries];
pthread_mutex_t g_cache_mu = PTHREAD_MUTEX_INITIALIZER;

int read_generation(dl_phdr_info* info, size_t size, void* data) {
  if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
    *static_cast<uint64_t*>(data) = info->dlpi_adds * 0x9E3779B97F4A7C15ull + info->dlpi_subs;
  return 1;
}

// Changes whenever an object is loaded or unloaded (the search result may change with them).
uint64_t load_generation() {
  uint64_t g = 0;
  fork_gate::iterate_phdr(read_generation, &g);
  return g;
}

void copy_result(ResolvedLibrary* dst, const ResolvedLibrary& src) {
  copy(dst->path, sizeof dst->path, src.path);
  copy(dst->soname, sizeof dst->soname, src.soname);
}

}  // namespace

bool resolve_library_cached(const char* name, const CallerObject* caller_object,
                            ResolvedLibrary* out) {
  if (name == nullptr || (name[0] != '/' && strchr(name, '/') != nullptr) ||
      strlen(name) >= sizeof(CacheEntry::name))
    return resolve_library(name, caller_object, out);
  const ElfW(Dyn)* caller = caller_object != nullptr ? caller_object->dynamic : nullptr;
  uint64_t h = 1469598103934665603ull ^ reinterpret_cast<uintptr_t>(caller);
  for (const char* p = name; *p != '\0'; ++p)
    h = (h ^ static_cast<unsigned char>(*p)) * 1099511628211ull;
  CacheEntry& e = g_entries[h % kCacheEntries];
  const uint64_t generation = load_generation();
  pthread_mutex_lock(&g_cache_mu);
  if (e.valid && e.generation == generation && e.caller == caller && strcmp(e.name, name) == 0) {
    bool found = e.found;
    copy_result(out, e.lib);
    pthread_mutex_unlock(&g_cache_mu);
    return found;
  }
  pthread_mutex_unlock(&g_cache_mu);
  // The search runs unlocked: it takes the loader's lock (dl_iterate_phdr), which a thread
  // inside a constructor already holds while it may be waiting for ours.
  bool found = resolve_library(name, caller_object, out);
  pthread_mutex_lock(&g_cache_mu);
  e.valid = true;
  e.found = found;
  e.caller = caller;
  e.generation = generation;
  copy(e.name, sizeof e.name, name);
  copy_result(&e.lib, *out);
  pthread_mutex_unlock(&g_cache_mu);
  return found;
}

void resolver_init() {
  if (const char* exe = self_exe_path(g_exe, sizeof g_exe); exe != g_exe) {
    const size_t n = strnlen(exe, sizeof g_exe - 1);
    memcpy(g_exe, exe, n);
    g_exe[n] = '\0';
  }
  dirname_into(g_exe_dir, sizeof g_exe_dir, g_exe);
  // ld.so ignores LD_LIBRARY_PATH in secure-execution (setuid) mode.
  const char* llp = getauxval(AT_SECURE) != 0 ? nullptr : getenv("LD_LIBRARY_PATH");
  if (llp != nullptr && *llp != '\0') g_ld_library_path = strdup(llp);
  fork_gate::iterate_phdr(find_exe, nullptr);
  common::compute_hwcaps_subdirs(&g_subdirs);
  g_platform_name = g_subdirs.platform != nullptr
                        ? g_subdirs.platform
                        : reinterpret_cast<const char*>(getauxval(AT_PLATFORM));
  int fd = open("/etc/ld.so.cache", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
      void* m = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      if (m != MAP_FAILED) {
        g_cache = static_cast<const unsigned char*>(m);
        g_cache_size = static_cast<size_t>(st.st_size);
      }
    }
    close(fd);
  }
}

const char* executable_path() {
  return g_exe;
}

bool read_soname(const char* path, char* soname, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = elf_soname_fd(fd, soname, cap);
  close(fd);
  return ok && soname[0] != '\0';
}

struct CallerSearch {
  ElfW(Addr) ip;
  CallerObject* out;
  bool found;
};

static int find_containing(dl_phdr_info* info, size_t, void* data) {
  auto* s = static_cast<CallerSearch*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    ElfW(Addr) start = info->dlpi_addr + ph.p_vaddr;
    if (s->ip >= start && s->ip < start + ph.p_memsz) {
      s->out->path =
          info->dlpi_name != nullptr && info->dlpi_name[0] != '\0' ? info->dlpi_name : g_exe;
      s->out->base = info->dlpi_addr;
      s->out->dynamic = dynamic_of(info);
      s->found = true;
      return 1;
    }
  }
  return 0;
}

bool find_caller(const void* ip, CallerObject* out) {
  CallerSearch s{reinterpret_cast<ElfW(Addr)>(ip), out, false};
  if (ip != nullptr) fork_gate::iterate_phdr(find_containing, &s);
  return s.found;
}

bool resolve_library(const char* name, const CallerObject* caller, ResolvedLibrary* out) {
  out->path[0] = '\0';
  out->soname[0] = '\0';
  if (name == nullptr || *name == '\0') return false;

  if (strchr(name, '/') != nullptr) {
    // A path: the file is the path itself (made absolute against the cwd, as ld.so records it).
    size_t len = 0;
    out->path[0] = '\0';
    if (name[0] != '/') {
      if (getcwd(out->path, sizeof out->path) == nullptr) return false;
      len = strlen(out->path);
      while (name[0] == '.' && name[1] == '/') {
        name += 2;
        while (*name == '/') ++name;
      }
      if (!(len == 1 && out->path[0] == '/') && !append(out->path, sizeof out->path, &len, "/", 1))
        return false;
    }
    if (!append(out->path, sizeof out->path, &len, name, strlen(name))) return false;
    char soname[sizeof out->soname];
    if (read_soname(out->path, soname, sizeof soname))
      copy(out->soname, sizeof out->soname, soname);
    return true;
  }

  LoadedSearch loaded{name, out, false};
  fork_gate::iterate_phdr(find_loaded, &loaded);
  if (loaded.found) return true;

  // The caller (or, unknown, the executable) is the loader. ld.so would also walk the RPATHs
  // of the objects that loaded the caller (l_loader), which only ld.so knows: not emulated.
  common::SearchObject exe, loader;
  char exe_origin[PATH_MAX], loader_origin[PATH_MAX];
  DynInfo ed = read_dynamic(g_exe_dyn, g_exe_base);
  copy(exe_origin, sizeof exe_origin, g_exe_dir);
  exe = {ed.rpath, ed.runpath, exe_origin, ed.nodeflib};
  const bool caller_is_exe =
      caller == nullptr || caller->dynamic == nullptr || caller->dynamic == g_exe_dyn;
  if (!caller_is_exe) {
    DynInfo cd = read_dynamic(caller->dynamic, caller->base);
    dirname_into(loader_origin, sizeof loader_origin,
                 caller->path != nullptr && caller->path[0] != '\0' ? caller->path : g_exe);
    loader = {cd.rpath, cd.runpath, loader_origin, cd.nodeflib};
  }
  common::SearchRequest request;
  request.name = name;
  request.chain = caller_is_exe ? &exe : &loader;
  request.chain_size = 1;
  request.executable = &exe;
  request.ld_library_path = g_ld_library_path;
  request.platform = &common::host_loader_platform();
  request.platform_name = g_platform_name;
  request.cache_hit =
      find_in_ld_so_cache(g_cache, g_cache_size, name, request.platform->cache_flags);
  request.subdirs = g_subdirs.names;
  request.subdir_count = g_subdirs.count;
  FileSearch search{out};
  return common::search_library(request, visit_candidate, &search);
}

}  // namespace dltrace::preload

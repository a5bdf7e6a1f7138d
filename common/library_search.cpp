#include "common/library_search.h"

namespace dltrace::common {
namespace {

bool append(char* buf, size_t cap, size_t* len, const char* s, size_t n) {
  if (*len + n >= cap) return false;
  memcpy(buf + *len, s, n);
  *len += n;
  buf[*len] = '\0';
  return true;
}

bool is_name_char(char c) {
  return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// glibc's is_dst: the length of "$NAME"'s NAME or "{NAME}" at `s`, 0 when it is not that token.
size_t token_length(const char* s, size_t left, const char* token) {
  const size_t tl = strlen(token);
  if (left >= tl + 2 && s[0] == '{' && memcmp(s + 1, token, tl) == 0 && s[tl + 1] == '}')
    return tl + 2;
  if (left >= tl && memcmp(s, token, tl) == 0 && (left == tl || !is_name_char(s[tl]))) return tl;
  return 0;
}

struct Walk {
  const SearchRequest& request;
  SearchVisitor visit;
  void* context;
  const char* lib;
  const char* platform;
};

// Tries every subdirectory of one expanded directory (kept with its trailing '/').
bool try_directory(Walk& w, SearchSource source, const SearchObject* object, const char* dir) {
  static const char* const kNoSubdirs[] = {""};
  const char* const* subdirs = w.request.subdir_count ? w.request.subdirs : kNoSubdirs;
  const size_t count = w.request.subdir_count ? w.request.subdir_count : 1;
  for (size_t i = 0; i < count; ++i) {
    char path[PATH_MAX];
    size_t len = 0;
    path[0] = '\0';
    const char* sub = subdirs[i];
    if (!append(path, sizeof path, &len, dir, strlen(dir)) ||
        (sub[0] != '\0' && (!append(path, sizeof path, &len, sub, strlen(sub)) ||
                            !append(path, sizeof path, &len, "/", 1))) ||
        !append(path, sizeof path, &len, w.request.name, strlen(w.request.name)))
      continue;
    if (w.visit(SearchCandidate{source, object, dir, sub, path}, w.context)) return true;
  }
  return false;
}

// One RPATH/RUNPATH/LD_LIBRARY_PATH list, split at `separators`, each element expanded and
// normalised as glibc's fillin_rpath does; a directory already in the list is not tried again.
bool try_list(Walk& w, SearchSource source, const SearchObject* object, const char* list,
              const char* separators, const char* origin) {
  if (list == nullptr) return false;
  // Directories of this list so far, as 64-bit hashes: the recorder runs on threads with small
  // stacks, and a collision (2^-64) costs one directory not tried twice.
  constexpr size_t kMaxSeen = 64;
  uint64_t seen[kMaxSeen];
  size_t seen_count = 0;
  for (const char* p = list;;) {
    const char* end = p;
    while (*end != '\0' && strchr(separators, *end) == nullptr) ++end;
    const size_t n = static_cast<size_t>(end - p);
    char dir[PATH_MAX];
    bool usable = true;
    if (n == 0) {
      dir[0] = '\0';  // an empty element is the working directory: "" + name
    } else {
      usable =
          expand_search_dir(p, n, origin, w.lib, w.platform, dir, sizeof dir) && dir[0] != '\0';
      if (usable) {
        size_t len = strlen(dir);
        while (len > 1 && dir[len - 1] == '/') --len;
        dir[len] = '\0';
        if (dir[len - 1] != '/') usable = append(dir, sizeof dir, &len, "/", 1);
      }
    }
    if (usable) {
      uint64_t h = 1469598103934665603ull;
      for (const char* c = dir; *c != '\0'; ++c)
        h = (h ^ static_cast<unsigned char>(*c)) * 1099511628211ull;
      bool again = false;
      for (size_t i = 0; i < seen_count && !again; ++i) again = seen[i] == h;
      if (!again) {
        if (seen_count < kMaxSeen) seen[seen_count++] = h;
        if (try_directory(w, source, object, dir)) return true;
      }
    }
    if (*end == '\0') return false;
    p = end + 1;
  }
}

}  // namespace

const char* search_source_name(SearchSource source) {
  switch (source) {
    case SearchSource::kRpath:
      return "RPATH";
    case SearchSource::kLdLibraryPath:
      return "LD_LIBRARY_PATH";
    case SearchSource::kRunpath:
      return "RUNPATH";
    case SearchSource::kLdSoCache:
      return "ld.so.cache";
    case SearchSource::kDefaultDirs:
      return "system search path";
  }
  return "?";
}

bool expand_search_dir(const char* element, size_t n, const char* origin, const char* lib,
                       const char* platform, char* dst, size_t cap) {
  size_t len = 0;
  dst[0] = '\0';
  for (size_t i = 0; i < n;) {
    if (element[i] == '$') {
      const char* rest = element + i + 1;
      const size_t left = n - i - 1;
      struct Token {
        const char* name;
        const char* value;
      };
      const Token tokens[] = {{"ORIGIN", origin}, {"LIB", lib}, {"PLATFORM", platform}};
      size_t used = 0;
      for (const Token& t : tokens) {
        used = token_length(rest, left, t.name);
        if (used == 0) continue;
        if (t.value == nullptr) return false;  // a known token without a value: drop the element
        if (!append(dst, cap, &len, t.value, strlen(t.value))) return false;
        break;
      }
      if (used != 0) {
        i += 1 + used;
        continue;
      }
    }
    if (!append(dst, cap, &len, element + i, 1)) return false;
    ++i;
  }
  return true;
}

bool search_library(const SearchRequest& r, SearchVisitor visit, void* context) {
  if (r.name == nullptr || r.name[0] == '\0' || is_path_name(r.name) || r.platform == nullptr)
    return false;
  Walk w{r, visit, context, r.platform->lib,
         r.platform_name != nullptr ? r.platform_name : r.platform->platform};
  const SearchObject* loader = r.chain_size > 0 ? &r.chain[0] : nullptr;

  if (loader == nullptr || loader->runpath == nullptr) {
    bool did_executable = false;
    for (size_t i = 0; i < r.chain_size; ++i) {
      const SearchObject& o = r.chain[i];
      if (o.runpath != nullptr || o.rpath == nullptr) continue;  // RUNPATH switches RPATH off
      if (try_list(w, SearchSource::kRpath, &o, o.rpath, ":", o.origin)) return true;
      did_executable |= &o == r.executable;
    }
    const SearchObject* exe = r.executable;
    if (!did_executable && exe != nullptr && exe->runpath == nullptr &&
        try_list(w, SearchSource::kRpath, exe, exe->rpath, ":", exe->origin))
      return true;
  }
  if (try_list(w, SearchSource::kLdLibraryPath, nullptr, r.ld_library_path, ":;",
               r.executable != nullptr ? r.executable->origin : nullptr))
    return true;
  if (loader != nullptr &&
      try_list(w, SearchSource::kRunpath, loader, loader->runpath, ":", loader->origin))
    return true;

  const SearchObject* flags_of = loader != nullptr ? loader : r.executable;
  if (flags_of != nullptr && flags_of->nodeflib) return false;
  if (r.cache_hit != nullptr &&
      visit(SearchCandidate{SearchSource::kLdSoCache, nullptr, "", "", r.cache_hit}, context))
    return true;
  for (size_t i = 0; i < r.platform->default_dir_count; ++i) {
    char dir[PATH_MAX];
    size_t len = 0;
    dir[0] = '\0';
    const char* d = r.platform->default_dirs[i];
    if (append(dir, sizeof dir, &len, d, strlen(d)) && append(dir, sizeof dir, &len, "/", 1) &&
        try_directory(w, SearchSource::kDefaultDirs, nullptr, dir))
      return true;
  }
  return false;
}

}  // namespace dltrace::common

// ld.so's search for a library name: glibc 2.36 `_dl_map_object` (loader-rules.md §1), written
// once for the recorder, which stops at the first usable file to match override rules, and for
// the viewer, which shows every step of a failed search. Pure: it yields candidate paths in
// ld.so's order and does no I/O; the visitor decides what a candidate is worth. No allocation.
//
//   1. RPATH of the loader, then of its loader, up the chain, then the executable's — all only
//      when the loader has no RUNPATH (an object's RUNPATH also switches its own RPATH off);
//   2. LD_LIBRARY_PATH (unset in secure mode);
//   3. RUNPATH of the loader itself (never inherited);
//   4. /etc/ld.so.cache, 5. the default directories — both skipped when the loader (or,
//      without one, the executable) is linked with -z nodeflib.
// Each directory of 1–3 and 5 is tried with every hwcaps subdirectory first (common/hwcaps.h).
// A name containing '/' is not searched at all (see is_path_name).
#pragma once

#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/loader_platform.h"

namespace dltrace::common {

enum class SearchSource : uint8_t { kRpath, kLdLibraryPath, kRunpath, kLdSoCache, kDefaultDirs };

// LD_DEBUG=libs's words for each source: "RPATH", "LD_LIBRARY_PATH", "RUNPATH",
// "ld.so.cache", "system search path".
const char* search_source_name(SearchSource source);

// One object of the loader chain, as the search needs it.
struct SearchObject {
  const char* rpath = nullptr;    // DT_RPATH, nullptr when none
  const char* runpath = nullptr;  // DT_RUNPATH, nullptr when none
  const char* origin = nullptr;   // its directory, for $ORIGIN; nullptr: unknown (elements dropped)
  bool nodeflib = false;          // DF_1_NODEFLIB
};

struct SearchRequest {
  const char* name = nullptr;
  // The loader (the dlopen caller, or the object holding the DT_NEEDED entry), then the object
  // that loaded it, and so on: ld.so's l_loader chain. Empty when the loader is unknown.
  const SearchObject* chain = nullptr;
  size_t chain_size = 0;
  // The main program; when it is also in the chain it must be the same pointer.
  const SearchObject* executable = nullptr;
  // LD_LIBRARY_PATH as ld.so read it at start-up; nullptr when unset or in secure mode. Its
  // $ORIGIN is the executable's.
  const char* ld_library_path = nullptr;
  const LoaderPlatform* platform = nullptr;  // $LIB, $PLATFORM and the default directories
  // $PLATFORM: HwcapsSubdirs::platform, else the process's AT_PLATFORM; nullptr: the
  // platform's default.
  const char* platform_name = nullptr;
  const char* cache_hit = nullptr;  // what ld.so.cache maps `name` to, nullptr when nothing
  // Subdirectories tried in front of each directory, the last one "" (common/hwcaps.h). None
  // given: only the directory itself.
  const char* const* subdirs = nullptr;
  size_t subdir_count = 0;
};

struct SearchCandidate {
  SearchSource source;
  const SearchObject* object;  // whose RPATH/RUNPATH; nullptr for the other sources
  const char* dir;     // the expanded directory as ld.so keeps it: with a trailing '/', "" = cwd
  const char* subdir;  // the hwcaps subdirectory, "" for the directory itself
  const char* path;    // the file to try
};

// Called for each candidate; returns true to stop the search there.
using SearchVisitor = bool (*)(const SearchCandidate& candidate, void* context);

// Calls visit for every candidate, in ld.so's order. Returns true when visit stopped it.
bool search_library(const SearchRequest& request, SearchVisitor visit, void* context);

// ld.so does not search a name that contains '/': it opens it (relative to the cwd).
inline bool is_path_name(const char* name) {
  return strchr(name, '/') != nullptr;
}

// Expands $ORIGIN, $LIB, $PLATFORM (also as ${...}) in one path element of n bytes into dst.
// Returns false when the element must be dropped, as ld.so does: it names $ORIGIN and the
// origin is unknown, or it does not fit.
bool expand_search_dir(const char* element, size_t n, const char* origin, const char* lib,
                       const char* platform, char* dst, size_t cap);

}  // namespace dltrace::common

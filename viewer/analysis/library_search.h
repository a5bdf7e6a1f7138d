// Where ld.so looked for a library name, step by step with the source of each directory, and
// where files of that name exist elsewhere: the evidence for "library not found" and for "which
// copy was loaded". The order is common/library_search.h's model of ld.so (shared with the
// recorder); this file feeds it from the trace (the loader chain, LD_LIBRARY_PATH, the working
// directory) and the ELF files on disk.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "analysis/elf_file.h"
#include "dltrace/reader.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

struct SearchStep {
  std::string source;     // "RPATH of libhost.so", "LD_LIBRARY_PATH", "/etc/ld.so.cache", ...
  std::string candidate;  // the file ld.so tried ("" for a cache miss)
  bool exists = false;    // the file exists now
};

struct LibrarySearch {
  bool direct_path = false;  // the name contains '/': no search, only that file
  // One step per directory, in ld.so's order; a hwcaps subdirectory only where the file exists.
  std::vector<SearchStep> steps;
  // Every file ld.so would try, hwcaps subdirectories included, spelled as LD_DEBUG=libs's
  // "trying file=" lines (ld.so skips those in directories it already knows are missing).
  std::vector<std::string> tried;
  std::vector<std::string> notes;  // e.g. "libhost.so has DT_RUNPATH, so its DT_RPATH is ignored"
};

// One object of the loader chain a search runs from (ld.so's l_loader: the object that asks,
// the one that loaded it, ...): a loaded object of the trace, or a file that was never loaded
// (a dependency inside a dlopen that failed).
struct Loader {
  std::string name;                      // for the step texts: "libhost.so"
  std::string path;                      // its file, absolute ($ORIGIN)
  const ElfFile* file = nullptr;         // its RPATH, RUNPATH, NODEFLIB; null: unreadable
  const ObjectRecord* object = nullptr;  // when it is in the trace
};

// `caller` and the objects that loaded it, up to one the trace does not know.
std::vector<Loader> loader_chain(const ObjectRecord* caller, const TraceModel& model,
                                 ElfCache& elf);

// The search for `name` as dlopen'ed from `caller` (null: the executable).
LibrarySearch plan_search(std::string_view name, const ObjectRecord* caller,
                          const TraceModel& model, ElfCache& elf);
// The search for `name` asked by `chain.front()` (a dlopen from it, or its DT_NEEDED entry).
LibrarySearch plan_search_from(std::string_view name, const std::vector<Loader>& chain,
                               const TraceModel& model, ElfCache& elf);

// Files on disk named `name` (or `name`.N...: other versions of the same library) under the
// directories of the loaded objects, the executable's and the working directory's trees (two
// levels deep), LD_LIBRARY_PATH and the default directories. Bounded: at most `max_entries`
// directory entries are looked at. Paths are normalised and unique.
std::vector<std::string> find_on_disk(std::string_view name, const TraceModel& model,
                                      size_t max_entries = 50000);

// For a relative name with a '/' ("./helpers/libh.so") that does not exist in the traced
// process's working directory: the file it names relative to the calling object's directory
// or the program's, where the programmer likely meant it; "" when none. *base: that directory.
std::string relative_name_elsewhere(std::string_view name, const ObjectRecord* caller,
                                    const TraceModel& model, std::string* base = nullptr);

// The traced process's CPU as an ELF e_machine, from the trace: every trace records the dynamic
// loader among its objects, under the name the program's PT_INTERP gives it
// (/lib/ld-linux-aarch64.so.1, /lib64/ld-linux-x86-64.so.2), and each CPU has its own. Else the
// executable's ELF machine, else this machine's. ld.so's rules for that CPU apply.
uint16_t trace_machine(const TraceModel& model, ElfCache& elf);

// A path of the traced process made absolute against its recorded working directory.
std::string absolute_in_trace(const TraceModel& model, std::string_view path);

// Expands $ORIGIN / ${ORIGIN} / $LIB / $PLATFORM in one RPATH/RUNPATH element, for this
// machine's loader ("" when the element would be dropped).
std::string expand_search_dir(std::string_view dir, std::string_view origin);

}  // namespace dltrace::viewer

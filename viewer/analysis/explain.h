// `dltrace explain`: every failed dlopen/dlsym/dlvsym and every object of a trace turned into
// findings with evidence and a fix. Kinds (Finding::kind, stable ids):
//   undefined-symbol-local-scope  the symbol is defined by a loaded object that is not in the
//                                 failing object's scopes (a group opened RTLD_LOCAL)
//   undefined-symbol-other-namespace  defined only by an object of another dlmopen namespace
//   symbol-not-exported           defined in the executable (or a library) but not exported
//                                 (e.g. a static Lua without -Wl,--export-dynamic; hidden
//                                 visibility, a version script's local:, static)
//   undefined-symbol-cxx-abi      the same C++ function under the other std::string ABI
//                                 (_GLIBCXX_USE_CXX11_ABI) or another ABI tag
//   undefined-symbol-not-extern-c a C name asked for, exported only C++-mangled
//   undefined-symbol-extern-c     a C++ name asked for, the function exported as extern "C"
//   undefined-symbol-other-version  the name exported under another symbol version
//   lazy-undefined-function       an RTLD_LAZY object calls a function nothing in its scope
//                                 defines: ld.so ends the process at the first call (exit 127)
//   python-abi-mismatch           an extension module needs a C-API function the running
//                                 CPython does not have: built for another Python
//   undefined-symbol              defined nowhere that was loaded
//   library-not-found             every path the loader tried, and copies found elsewhere; for a
//                                 dependency, the needing chain and the search from its needer
//   version-not-found             the copy that was loaded, by whom, and copies that have it
//   load-failed / lookup-failed   any other dlopen / dlsym error (its text, the file it found);
//                                 for a refused file, what it is (file_kind)
//   static-tls                    no room in the static TLS block: its TLS size, the tunable
//   died-in-call                  the process ended inside a dlopen/dlmopen (a crash in the
//                                 loader or a constructor, a file cut short): model/in_flight.h
//   duplicate-library             one library loaded twice (paths or namespaces)
//   duplicate-symbol              one symbol defined by several objects of one scope
//   api-copy                      an object brings a second copy of functions another object of
//                                 an earlier search list defines (a libpython linked into an
//                                 extension, an -rdynamic executable), and references split
//   runtime-copy                  a module carries its own static libstdc++/C library
//   dlsym-interposed / dlsym-from-dependency / deepbind / override-applied (informational)
//   file-changed / file-missing   the file on disk is not the one that was loaded, or is gone
//   more-failures                 distinct failures past the analysis limit, counted
//   probe                         (--probes only) a failed call the program expected and handled
// Every failed call is first classified (analysis/outcome.h): failures become the findings above,
// with the severity their consequence gives them; probes are counted per name and folded into
// one summary (ExplainResult::probe_groups), and never get a fix.
#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "analysis/elf_file.h"
#include "analysis/finding.h"
#include "analysis/outcome.h"
#include "analysis/scope_graph.h"
#include "analysis/symbol_near_miss.h"
#include "analysis/symbolizer.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

// Shared by the explain passes: the trace, its files, its scopes, and how to describe a call.
class ExplainContext {
 public:
  ExplainContext(const TraceModel& model, ElfCache& elf, const ScopeGraph& graph);

  const TraceModel& model() const { return model_; }
  const TraceReader& reader() const { return model_.reader(); }
  ElfCache& elf() { return elf_; }
  const ScopeGraph& graph() const { return graph_; }
  const ElfFile* file_of(const ObjectRecord& o) {
    return elf_.for_object(o, model_.file_path(o)).file;
  }

  // "main() at host.c:57 in ov_host" / "ov_host+0x1234": where the call was made.
  std::string call_site(const format::EventSlot& e);
  // The innermost Python frame "app.py:3 in <module>", "" when none.
  std::string python_line(const format::EventSlot& e) const;
  // Whether Python code made the call through ctypes (CDLL/LoadLibrary) rather than an import.
  bool python_ctypes_load(const format::EventSlot& e) const;
  // `dlopen("libfoo.so", RTLD_NOW|RTLD_LOCAL)` as the call was written (requested flags).
  std::string call_text(const format::EventSlot& e) const;
  // A few symbolized native frames, "" when no stack was recorded.
  std::vector<std::string> stack_lines(const format::EventSlot& e, size_t max_frames = 6);
  // The alive objects at `seq` that export `symbol` (exactly `version` when given).
  std::vector<const ObjectRecord*> exporters(std::string_view symbol, std::string_view version,
                                             uint64_t seq);
  // The trace object loaded from `path` (an l_name as glibc prints it), alive at `seq`.
  const ObjectRecord* object_by_path(std::string_view path, uint64_t seq) const;
  // True the first time `key` is seen: informational findings are reported once per key.
  bool first_time(std::string key) { return noted_.insert(std::move(key)).second; }
  NearMissFinder& near_misses() { return near_misses_; }

 private:
  NearMissFinder near_misses_;
  absl::flat_hash_set<std::string> noted_;
  const TraceModel& model_;
  ElfCache& elf_;
  const ScopeGraph& graph_;
  Symbolizer symbolizer_;
};

// Failed dlopen/dlmopen/dlsym/dlvsym events classified as failures (explain_failures.cpp).
void explain_failed_call(ExplainContext& ctx, const format::EventSlot& e,
                         const Classification& outcome, std::vector<Finding>& out);
// A failed call classified as a probe: what was asked, by whom, and why it was expected; no fix.
Finding probe_finding(ExplainContext& ctx, const format::EventSlot& e,
                      const Classification& outcome);
// A failed dlopen of `requested` whose dependency `missing` was not found: fills the needing
// chain, the search from the needer and the fixes into f; false when the replay on disk does
// not end at `missing` (explain_dependency.cpp).
bool explain_missing_dependency(ExplainContext& ctx, const format::EventSlot& e,
                                std::string_view requested, std::string_view missing, Finding& f);
// A failed dlopen refused because of the file at `path` (as the process named it): what the
// file is and what to do; false when the file is a loadable shared object (explain_file.cpp).
bool explain_unloadable_file(ExplainContext& ctx, const format::EventSlot& e, std::string_view path,
                             Finding& f);
// A dlopen of a relative path ("./helpers/libh.so") that is not there from the recorded working
// directory but is next to the caller or the program (explain_file.cpp).
bool explain_relative_name(ExplainContext& ctx, const format::EventSlot& e, std::string_view name,
                           Finding& f);
// "cannot allocate memory in static TLS block" for the object at `path`: its TLS size and
// model, and the fixes with numbers (explain_file.cpp).
bool explain_static_tls(ExplainContext& ctx, const format::EventSlot& e, std::string_view path,
                        Finding& f);
// A dlopen/dlmopen the process ended inside: how far it got and what its files are on disk now
// (explain_in_flight.cpp).
void explain_in_flight(ExplainContext& ctx, const format::EventSlot& e, std::vector<Finding>& out);
// A file a failed lookup's near misses are looked for in: a loaded object, or a file of the
// failed dlopen's group that the loader mapped and unmapped again.
struct NearMissPlace {
  const ElfFile* file = nullptr;
  const ObjectRecord* object = nullptr;  // null for a file of the failed group
  std::string name;                      // "libgreet.so"
  std::string path;
  bool in_scope = false;  // the failing lookup searched it
  // Not loaded, not a dependency: a library next to the failing object (its directory, its
  // RUNPATH/RPATH), which that object names nowhere: "" for the others.
  std::string neighbour_of;
};
// An undefined symbol for which a near miss exists in `places` (most relevant first): what
// the near miss means, and the fix for that cause; false when there is none
// (explain_near_miss.cpp).
bool explain_near_miss(ExplainContext& ctx, const format::EventSlot& e, std::string_view symbol,
                       std::string_view version, std::string_view needer,
                       const std::vector<NearMissPlace>& places, Finding& f);
// An extension module loaded by CPython that needs a Py*/_Py* function the running interpreter
// does not export: built for another Python (explain_python_abi.cpp).
bool explain_python_abi(ExplainContext& ctx, const format::EventSlot& e, std::string_view symbol,
                        std::string_view needer, Finding& f);
// Successful calls worth a note: interposed dlsym, RTLD_DEEPBIND, overrides (explain_calls.cpp).
void explain_call(ExplainContext& ctx, const format::EventSlot& e, std::vector<Finding>& out);
// Objects opened RTLD_LAZY whose PLT calls a function nothing in their scope defines: the first
// call ends the process with exit 127 (explain_lazy.cpp).
void explain_lazy_bindings(ExplainContext& ctx, std::vector<Finding>& out);
// An object whose exported API another object of an earlier search list already defines, with
// the references split between the two copies: api-copy, runtime-copy (explain_copies.cpp).
void explain_copies(ExplainContext& ctx, std::vector<Finding>& out);
// Per-object and per-scope findings: duplicates, changed files (explain_objects.cpp).
void explain_objects(ExplainContext& ctx, std::vector<Finding>& out);

// The probes of one name (or one convention's pattern, "*_LTX_*") and why they were expected.
struct ProbeGroup {
  std::string name;   // the symbol, the library's basename or the convention's pattern
  std::string label;  // "GModule", "RTLD_NOLOAD", "found later", ...
  uint64_t count = 0;
  uint64_t first_seq = 0;
};

struct ExplainResult {
  std::vector<Finding> findings;         // errors first, then warnings, then informational; by seq
  size_t problems = 0;                   // errors + warnings
  uint64_t failure_calls = 0;            // failed calls classified as failures
  uint64_t probe_calls = 0;              // failed calls classified as probes
  std::vector<ProbeGroup> probe_groups;  // most calls first
  std::vector<Finding> probes;  // kind "probe", one per distinct call site and error, by seq
};

// "312 optional lookups missed as their callers expected: g_module_check_init ×102 (GModule),
// ..." (at most `max_groups` names), or "" without probes.
std::string probe_summary(const ExplainResult& result, size_t max_groups = 8);

// One pass over the events; identical failures (same error, same call site) are merged.
ExplainResult explain_trace(const TraceModel& model, ElfCache& elf, const ScopeGraph& graph);
ExplainResult explain_trace(const TraceModel& model, ElfCache& elf, const ScopeGraph& graph,
                            OutcomeClassifier& outcomes);

}  // namespace dltrace::viewer

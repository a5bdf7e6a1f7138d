// What a failed dlopen/dlsym meant to the program that made it: a *probe* (a miss the program
// expected and handled: an RTLD_NOLOAD question, an optional hook, a name it then found elsewhere)
// or a *failure* (a miss that mattered: a definition exists that the lookup could not use, the
// file exists and could not be loaded, an ImportError, the process failing after it). Decided from
// the trace and the ELF files alone; the rules, in the order they apply, are in outcome.cpp.
// explain, stats, html and export all classify through this one class.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "analysis/elf_file.h"
#include "analysis/finding.h"
#include "analysis/symbol_near_miss.h"
#include "model/trace_model.h"

namespace dltrace::viewer {

enum class Outcome : uint8_t { kProbe, kFailure };

inline const char* outcome_name(Outcome o) {
  return o == Outcome::kProbe ? "probe" : "failure";
}

struct Classification {
  Outcome outcome = Outcome::kFailure;
  Severity severity = Severity::kError;  // of a failure; kInfo for a probe
  // Stable id of the rule that decided. Probes: noload, obtained-later, alternative,
  // optional-hook, defined-nowhere. Failures: near-miss, broken, exists, python-import, needed,
  // end-unknown, signal, not-installed (a note), unverifiable, other.
  std::string_view rule;
  std::string_view convention;  // the framework of a named convention ("GModule"), else ""
  std::string_view pattern;     // that convention's name pattern ("*_LTX_*"), else ""
  std::string reason;           // the evidence, one sentence without a final period
  // dlsym/dlvsym: the caller looks this name up in each module it opens (its own handle each
  // time), so a definition in another module is that module's, not one this lookup missed.
  bool per_module = false;
  bool probe() const { return outcome == Outcome::kProbe; }
};

class OutcomeClassifier {
 public:
  // One pass over the events, keeping per (caller, name), thread and library name
  // what happened last: memory grows with the catalog, not with the event count.
  OutcomeClassifier(const TraceModel& model, ElfCache& elf);

  // A failed dlopen/dlmopen/dlsym/dlvsym event of this trace.
  Classification classify(const format::EventSlot& e);

 private:
  // What one caller did with one symbol name.
  struct Lookups {
    uint64_t last_found = 0;                // seq of its last successful lookup, 0: none
    uint32_t first_handle = format::kNoId;  // the first object whose handle it was looked up in
    bool several_handles = false;           // ... and another object's handle too
  };
  struct PendingOpen {
    uint64_t seq;
    uint32_t caller;
    std::string_view name;
  };
  struct Alternative {
    uint64_t seq;
    std::string_view name;
  };
  enum class End { kClean, kBad, kUnknown };

  Classification classify_open(const format::EventSlot& e);
  Classification classify_sym(const format::EventSlot& e);
  void index(const format::EventSlot& e);

  // A definition the failed lookup of `name` could have meant, as a sentence; nullopt if none.
  std::optional<std::string> near_miss(const format::EventSlot& e, std::string_view name,
                                       std::string_view version, bool per_module);
  // Whether the files of every object alive at `seq` could be read (a definition anywhere
  // would have been seen); `missing` gets the name of one that could not.
  bool files_complete(uint64_t seq, std::string* missing);
  // The last successful dlopen/dlsym on the same thread after `e`, if any.
  std::optional<uint64_t> went_on(const format::EventSlot& e) const;
  bool python_import(const format::EventSlot& e);
  const std::vector<std::string>& on_disk(std::string_view name);
  std::string caller_name(const format::EventSlot& e) const;
  std::string end_clause() const;  // "the process exited with status 1"

  const TraceModel& model_;
  ElfCache& elf_;
  End end_ = End::kUnknown;
  bool main_here_ = false;  // the executable's file on this machine is the one that ran

  // (caller object, symbol name's string id): by id, not text, since the recorder interns each
  // name once and this is the hot path (one hash lookup per dlsym).
  absl::flat_hash_map<std::pair<uint32_t, uint32_t>, Lookups> lookups_;
  absl::flat_hash_map<uint32_t, uint64_t> last_ok_;  // tid -> last successful open/lookup
  uint64_t last_new_load_ = 0;                       // the last dlopen that brought new objects in
  uint32_t last_tid_ = 0;                            // the thread of the previous event
  uint64_t* last_tid_ok_ = nullptr;                  // its last_ok_ entry
  absl::flat_hash_map<std::string_view, uint64_t> opened_;           // basename -> last ok
  absl::flat_hash_map<uint32_t, std::vector<PendingOpen>> pending_;  // tid -> failed opens
  absl::flat_hash_map<std::pair<uint32_t, std::string_view>, Alternative> alternatives_;
  absl::flat_hash_map<uint32_t, bool> python_import_;  // py_stack id -> made by an import
  absl::flat_hash_map<std::string, std::vector<std::string>> on_disk_;
  NearMissFinder near_misses_;
};

// Failed calls of a whole trace by class (stats): its own model, ELF cache and two passes.
struct OutcomeCounts {
  uint64_t failures = 0;
  uint64_t probes = 0;
};
OutcomeCounts count_outcomes(const TraceReader& reader);

}  // namespace dltrace::viewer

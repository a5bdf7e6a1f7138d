// Thin helpers over the TraceReader shared by every command: opening a trace as a StatusOr,
// naming calls/causes/ends, object naming, the dlopen -> new objects index, and the sentences
// that describe what the reader could not recover.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "dltrace/format.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

// Opens a trace; a trace recorded by another dltrace version (or an older one that did not record
// it) gets one `dltrace: note:` line on stderr unless `note_version` is false.
absl::StatusOr<std::unique_ptr<TraceReader>> open_trace(const std::string& path,
                                                        bool note_version = true);
// That note's text, or nothing when this build recorded the trace.
std::optional<std::string> other_version_note(const std::string& path, const ProcessInfo& process);

std::string_view call_name(uint16_t call);  // "dlopen", ..., "unknown"
std::string_view cause_name(format::ObjectCause cause);
std::string_view end_name(format::EndKind end);  // "exit" | "signal" | "exec" | "unknown"
// Who recorded the end: "exit" (exit() or a return from main), "_exit" (_exit/_Exit),
// "signal-handler" (the recorder's fatal-signal handler), "exec", "observed" (`dltrace run`, from
// the wait status it reaped); nullopt when nobody said (no end, or an older recorder).
std::optional<std::string_view> end_via_name(uint32_t via);
std::string signal_text(int sig);  // "signal 11 (SIGSEGV)"

// What every view says of a process without a recorded end.
inline constexpr std::string_view kNoRecordedEnd =
    "no recorded end: killed by SIGKILL, vanished, or still running";
// How the process ended, in the words every view uses: "exited with status 0", "exited with
// status 4 via _exit", "killed by signal 11 (SIGSEGV)", "exec'ed /usr/bin/ls", "exited with status
// 127 (observed by dltrace run)", or kNoRecordedEnd. `when` (e.g. "after 1.250 ms") goes right
// after the end itself.
std::string end_text(const ProcessInfo& p, std::string_view when = {});
// The same in a few words, for one line per process: "exit 0", "exit 4 via _exit", "killed by
// signal 9 (SIGKILL)", "exec → ls", "exit 127, observed by dltrace run", or kNoRecordedEnd.
std::string end_summary(const ProcessInfo& p);
// ", outside its PID namespace 4010 (parent 4000)" when the outer pids differ, else "".
std::string outer_pids_text(const ProcessInfo& p);
std::string_view basename_of(std::string_view path);

inline bool is_open_call(uint16_t call) {
  return call == static_cast<uint16_t>(format::CallKind::kDlopen) ||
         call == static_cast<uint16_t>(format::CallKind::kDlmopen);
}
inline bool is_sym_call(uint16_t call) {
  return call == static_cast<uint16_t>(format::CallKind::kDlsym) ||
         call == static_cast<uint16_t>(format::CallKind::kDlvsym);
}
inline bool is_close_call(uint16_t call) {
  return call == static_cast<uint16_t>(format::CallKind::kDlclose);
}

// In the global scope: at load time, or promoted later (dlopen RTLD_NOLOAD|RTLD_GLOBAL).
inline bool is_global(const ObjectRecord& o) {
  return o.global_at_load() || o.promote_seq;
}

// Short human name of an object: basename of its path, else soname, else "[vdso]" / "#id".
std::string object_name(const ObjectRecord& o);

// A path in the system library directories (/lib, /usr/lib, ...) or of the dynamic loader /
// vDSO: what tree and dot fold away unless --all.
bool is_system_path(std::string_view path);

// One sentence per thing the reader could not recover; empty for a clean trace.
std::vector<std::string> recovery_sentences(const TraceReader& reader);

// Per-trace indexes built once, O(objects).
class TraceModel {
 public:
  explicit TraceModel(const TraceReader& reader);

  const TraceReader& reader() const { return reader_; }
  // Ids of the objects a dlopen/dlmopen event brought in (opened_by == seq), in id order.
  std::span<const uint32_t> new_objects(uint64_t seq) const;
  // Ids of the objects a dlclose event really unloaded (unload_seq == seq), in id order.
  std::span<const uint32_t> unloaded_by(uint64_t seq) const;
  // Objects in the order they were loaded (load_seq, then id): the order jsonl emits them.
  const std::vector<const ObjectRecord*>& objects_by_load() const { return by_load_; }
  // The object's file: its recorded path, or for the main program (whose link_map name is
  // empty) the process's executable.
  std::string_view path_of(const ObjectRecord& o) const;
  // The file to read for an object: path_of made absolute against the traced process's
  // working directory (an object dlopen'ed as "./lib.so" has that l_name), so that the viewer
  // finds it from any directory.
  std::string file_path(const ObjectRecord& o) const { return absolute_path(path_of(o)); }
  // A path the traced process used, made absolute against its recorded working directory.
  std::string absolute_path(std::string_view path) const;
  // object_name(), but the main program is named after the executable.
  std::string name_of(const ObjectRecord& o) const;
  // The executable itself (not the vDSO or the loader, also at start-up).
  bool is_main_program(const ObjectRecord& o) const;
  // A system library that nobody dlopen'ed by name (folded by tree and dot unless --all).
  bool is_system_object(const ObjectRecord& o) const;
  // Event times in CLOCK_MONOTONIC ns, whatever clock the recorder stored them in (raw TSC
  // ticks are converted with the header's calibration points).
  uint64_t time_ns(const format::EventSlot& e) const { return to_ns(e.time_ns, true); }
  uint64_t duration_ns(const format::EventSlot& e) const { return to_ns(e.duration_ns, false); }
  // Milliseconds since the process started (the trace's CLOCK_MONOTONIC origin).
  double relative_ms(uint64_t time_ns) const;
  // Object whose mapping held `address` at event `seq`; falls back to `hint` (a recorded id).
  const ObjectRecord* object_for(uint64_t address, uint64_t seq, uint32_t hint) const;

 private:
  uint64_t to_ns(uint64_t value, bool absolute) const;

  const TraceReader& reader_;
  bool tsc_ = false;
  long double ns_per_tick_ = 1.0L;
  absl::flat_hash_map<uint64_t, std::vector<uint32_t>> new_objects_;
  absl::flat_hash_map<uint64_t, std::vector<uint32_t>> unloaded_by_;
  std::vector<const ObjectRecord*> by_load_;
};

}  // namespace dltrace::viewer

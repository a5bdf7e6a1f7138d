// Reading a dltrace trace file: the API shared by the viewer, the tests and the fuzzer.
//
// The reader maps the file read-only, loads the catalog (strings, objects, stacks) into memory
// and streams events from the ring in seq order, so memory stays bounded by the catalog size,
// not by the number of events. It never trusts the file: every offset, size, id and checksum is
// checked, and what could not be read is counted in Recovery rather than failing the whole read.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dltrace/format.h"

namespace dltrace {

struct ProcessInfo {
  int32_t pid = 0;
  int32_t ppid = 0;
  std::string exe;
  std::string cwd;
  std::vector<std::string> argv;
  // kRunning: no end was recorded (killed by SIGKILL, vanished, or still running).
  format::EndKind end = format::EndKind::kRunning;
  int32_t end_code = 0;                    // exit status or signal number (0 for kExec)
  uint32_t end_via = format::kEndViaNone;  // format::EndVia: who recorded the end
  std::string exec_target;                 // end kExec: the program exec'ed (empty if unknown)
  // pid/ppid as seen from the outermost PID namespace visible to the process (0 = unknown); they
  // differ from pid/ppid inside a sandbox's PID namespace.
  int32_t outer_pid = 0;
  int32_t outer_ppid = 0;
  uint64_t start_realtime_ns = 0;
  uint64_t start_monotonic_ns = 0;
  uint64_t end_monotonic_ns = 0;
  uint32_t stack_depth = 0;
  uint32_t recorder_flags = 0;
  std::string config;                          // override config path, empty if none
  std::optional<std::string> ld_library_path;  // LD_LIBRARY_PATH at start-up, if set
  // The recorder's version ("0.1.0+<commit>"); empty in traces of recorders that predate it.
  std::string recorder_version;
};

struct ObjectRecord {
  uint32_t id = format::kNoId;
  std::string path;
  std::string soname;
  format::ObjectCause cause = format::ObjectCause::kStartup;
  uint32_t flags = 0;  // format::ObjectFlags
  uint32_t parent = format::kNoId;
  uint64_t opened_by = 0;  // 0 = start-up
  uint64_t load_seq = 0;
  int64_t lmid = 0;
  uint64_t base = 0;
  uint64_t map_start = 0;
  uint64_t map_end = 0;
  uint64_t link_map = 0;
  std::string build_id;  // lowercase hex, empty if none
  std::optional<uint64_t> unload_seq;
  std::optional<uint64_t> promote_seq;  // joined the global scope after its load

  bool global_at_load() const { return (flags & format::kObjectGlobal) != 0; }
  // Whether the object was loaded and not yet unloaded when event `seq` ran.
  bool alive_at(uint64_t seq) const {
    return load_seq <= seq && (!unload_seq || *unload_seq > seq);
  }
};

struct OverrideRecord {
  uint64_t seq = 0;
  uint32_t line = 0;
  int32_t flags_before = 0;
  int32_t flags_after = 0;
};

// What the reader could not read, and why. Never fatal once the header is valid.
struct Recovery {
  bool truncated = false;    // the file is shorter than its header says
  uint64_t torn_events = 0;  // slots reserved but never committed, or failing the checksum
  uint64_t dropped_events =
      0;  // seqs handed out whose events are not readable (overwritten or torn)
  uint64_t corrupt_catalog = 0;    // catalog bytes skipped because they did not check out
  uint64_t catalog_dropped = 0;    // catalog entries the recorder could not fit (from the header)
  std::vector<std::string> notes;  // one human-readable sentence per problem
  bool clean() const {
    return !truncated && torn_events == 0 && corrupt_catalog == 0 && catalog_dropped == 0;
  }
};

class TraceReader {
 public:
  // Opens and validates a trace. On failure returns nullptr and sets *error to one sentence
  // that says what is wrong: "empty file", "truncated header", "not a dltrace trace (bad magic)",
  // "trace format version 7 is not supported (this dltrace reads versions 2 to 3)",
  // "corrupt trace header (...)", "cannot open PATH: <strerror>".
  static std::unique_ptr<TraceReader> open(const std::string& path, std::string* error);
  // Same over bytes already in memory (the fuzzer; tests). The bytes must outlive the reader.
  static std::unique_ptr<TraceReader> open_bytes(const void* data, size_t size, std::string* error);

  virtual ~TraceReader() = default;

  virtual const format::FileHeader& header() const = 0;
  virtual const ProcessInfo& process() const = 0;
  virtual const Recovery& recovery() const = 0;

  // Objects by id (ids are dense from 0 in the order the recorder wrote them).
  virtual const std::vector<ObjectRecord>& objects() const = 0;
  virtual const ObjectRecord* object(uint32_t id) const = 0;
  // The object whose mapping contained `address` when event `seq` ran, or nullptr.
  virtual const ObjectRecord* object_at(uint64_t address, uint64_t seq) const = 0;

  // Interned strings; an unknown id gives "" and has_string() false.
  virtual std::string_view string(uint32_t id) const = 0;
  virtual bool has_string(uint32_t id) const = 0;

  virtual std::span<const uint64_t> stack(uint32_t id) const = 0;
  virtual std::span<const format::PyFrame> py_stack(uint32_t id) const = 0;
  virtual std::vector<OverrideRecord> overrides_for(uint64_t seq) const = 0;

  // Highest seq handed out (next_seq - 1): the event count the process attempted.
  virtual uint64_t last_seq() const = 0;
  // Readable events in seq order; return false from `fn` to stop early.
  virtual void for_each_event(const std::function<bool(const format::EventSlot&)>& fn) const = 0;
  // The event with this seq if it is readable.
  virtual std::optional<format::EventSlot> event(uint64_t seq) const = 0;
};

}  // namespace dltrace

// The dltrace trace file: the one contract between the recorder (preload/) and every reader.
//
// Layout (all little-endian, x86-64 natural alignment). Offsets in the header are offsets in the
// *logical image*:
//
//   [FileHeader: 4096 bytes][catalog: catalog_size bytes][ring: slot_count * 128 bytes]
//
// Version 3 (this one): the file holds only what the recorder backed, so its size is what the
// trace holds. It is the header followed by chunks in the order they were backed; the header's
// extent table says where each chunk of the logical image lies in the file
// ({logical_offset, file_offset, length}; the first extent is the header and the first catalog
// chunk at file offset 0). A part of the image that no extent covers was never written. The
// catalog and the ring each grow from their start, so each is backed contiguously in the image.
// Version 2: the file is the logical image itself (sized sparse to file_size), no extents.
//
// The file is mapped MAP_SHARED (chunk by chunk, at its logical place) in the traced process, so
// whatever was committed is in the page cache and survives SIGKILL/SIGSEGV/abort without a flush.
// A chunk is zero-written into the file and mapped before its extent is published, and the
// extent before anything is written into the chunk: a reader never sees a record outside the
// extents.
//
// * The catalog is append-only and never overwritten: strings, objects (load/unload/promote),
//   stacks and process info. Entries are reserved with one fetch_add on catalog_used and
//   committed by a release-store of their tag, written last.
// * The ring holds fixed 128-byte EventSlots. An event reserves seq = fetch_add(next_seq) and
//   lives in slot (seq - 1) % slot_count; it claims the slot by swapping its seq for kSlotBusy
//   (unless a newer event already holds it: the ring keeps the newest), writes the payload and
//   checksum, then release-stores seq. When the ring wraps, the oldest events are overwritten; the
//   number of dropped events is next_seq - 1 minus the events that are readable.
//
// Every seq names exactly one event; objects' load/unload seqs refer to those events.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dltrace/calls.h"

namespace dltrace::format {

inline constexpr char kMagic[8] = {'D', 'L', 'T', 'R', 'A', 'C', 'E', '1'};
// 2: slot_checksum() for ring slots; 3: the file holds only backed chunks (FileHeader::extents).
inline constexpr uint32_t kVersion = 3;
inline constexpr uint32_t kOldestReadableVersion = 2;
inline constexpr uint32_t kHeaderSize = 4096;
inline constexpr uint32_t kSlotSize = 128;
inline constexpr uint32_t kNoId = 0xFFFFFFFFu;  // "none" for every id field
// EventSlot.seq while a writer owns the slot (never a valid seq: readers treat it as torn).
inline constexpr uint64_t kSlotBusy = ~uint64_t{0};

// ---- checksum ----
// Four independent multiply-xorshift lanes over 8-byte words, then a final avalanche. It must
// tell torn writes apart and cost ~10 ns for a 112-byte slot (byte-wise FNV-1a took ~120 ns).
// The writer also uses it as the hash of its intern tables.
namespace detail {
inline uint64_t load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint64_t mix64(uint64_t h, uint64_t w) {
  h = (h ^ w) * 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 31);
}
}  // namespace detail

inline uint32_t checksum(const void* data, size_t size, uint32_t seed = 0) {
  const auto* p = static_cast<const unsigned char*>(data);
  const uint64_t total = size;
  uint64_t a = 0x243F6A8885A308D3ull ^ seed, b = 0x13198A2E03707344ull;
  uint64_t c = 0xA4093822299F31D0ull, d = 0x082EFA98EC4E6C89ull ^ total;
  for (; size >= 32; p += 32, size -= 32) {
    a = detail::mix64(a, detail::load64(p));
    b = detail::mix64(b, detail::load64(p + 8));
    c = detail::mix64(c, detail::load64(p + 16));
    d = detail::mix64(d, detail::load64(p + 24));
  }
  // 0..31 bytes left: whole words into lanes a, b, c; the last 0..7 bytes into d, read with
  // fixed-size loads (a variable-length memcpy would be a libc call on the interning path).
  if (size >= 8) a = detail::mix64(a, detail::load64(p)), p += 8, size -= 8;
  if (size >= 8) b = detail::mix64(b, detail::load64(p)), p += 8, size -= 8;
  if (size >= 8) c = detail::mix64(c, detail::load64(p)), p += 8, size -= 8;
  uint64_t last = 0;
  if (size >= 4) {
    uint32_t lo, hi;  // two overlapping 4-byte loads cover 4..7 bytes
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + size - 4, 4);
    last = lo | (uint64_t{hi} << 32);
  } else if (size > 0) {
    last = p[0] | (uint64_t{p[size / 2]} << 8) | (uint64_t{p[size - 1]} << 16);
  }
  d = detail::mix64(d, last);
  uint64_t h = a ^ ((b << 16) | (b >> 48)) ^ ((c << 32) | (c >> 32)) ^ ((d << 48) | (d >> 16));
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return static_cast<uint32_t>(h ^ (h >> 32));
}

// The ring slot's checksum, made on every event: the 14 payload words, each multiplied by its own
// odd constant and summed, then avalanched. The products do not depend on each other (checksum()
// chains its multiplies), so this costs about a third of the time; it still tells a torn slot
// (words of two events) or garbage from a committed one.
inline uint32_t slot_checksum(const void* payload /* kSlotSize - 16 bytes */) {
  const auto* p = static_cast<const unsigned char*>(payload);
  // Written out: immediate multipliers, no loop (compilers keep a table and a loop otherwise).
  auto w = [p](int i) { return detail::load64(p + 8 * i); };
  const uint64_t a = 0x243F6A8885A308D3ull + w(0) * 0x7E9A3C51u + w(2) * 0x59300301u +
                     w(4) * 0x5259C2A7u + w(6) * 0x48C130EFu + w(8) * 0x70DB4005u +
                     w(10) * 0x5B7D7CEFu + w(12) * 0x4396A6CBu;
  const uint64_t b = w(1) * 0x5105B881u + w(3) * 0x7BA91663u + w(5) * 0x6399950Du +
                     w(7) * 0x42F1F36Du + w(9) * 0x573E917Fu + w(11) * 0x5CC4384Bu +
                     w(13) * 0x490CF717u;
  uint64_t h = a + b;
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 33;
  return static_cast<uint32_t>(h);
}

// ---- header ----
// kRunning: no end recorded (still running, SIGKILL, or a death nobody observed).
// kExec: the image was replaced by execve (FileHeader::exec_target); the next trace of the same
// pid, started after this one, is the new image.
enum class EndKind : uint32_t { kRunning = 0, kExit = 1, kSignal = 2, kExec = 3 };

// Who recorded the end (FileHeader::end_via).
enum EndVia : uint32_t {
  kEndViaNone = 0,
  kEndViaExit = 1,            // exit() or a return from main (the recorder's on_exit handler)
  kEndViaUnderscoreExit = 2,  // _exit() / _Exit() called by the program
  kEndViaFatalSignal = 3,     // the recorder's handler for a fatal signal at SIG_DFL
  kEndViaExec = 4,            // an exec* call (end_kind kExec)
  kEndViaObserved = 5,        // filled in by `dltrace run` from the wait status it reaped
};

// One backed chunk of the logical image (version 3): image bytes [logical_offset, +length) are
// file bytes [file_offset, +length). Both offsets are multiples of 4096.
struct FileExtent {
  uint64_t logical_offset;
  uint64_t file_offset;
  uint64_t length;
};
inline constexpr uint32_t kMaxExtents = 128;

struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_size;  // kHeaderSize
  uint64_t file_size;    // the size of the logical image (version 2: of the file, sparse)
  uint64_t catalog_offset;
  uint64_t catalog_size;
  uint64_t ring_offset;
  uint64_t slot_count;
  uint32_t slot_size;  // kSlotSize
  uint32_t stack_depth;
  // Process identity (written once at creation).
  int32_t pid;
  int32_t ppid;
  uint64_t start_realtime_ns;   // CLOCK_REALTIME at creation
  uint64_t start_monotonic_ns;  // CLOCK_MONOTONIC at creation; event times are on this clock
  uint32_t exe;                 // string id, or kNoId until the catalog entry is written
  uint32_t recorder_flags;      // RecorderFlags
  // Live counters, updated atomically in the mapping.
  uint64_t next_seq;         // next seq to hand out; the first event is seq 1
  uint64_t catalog_used;     // bytes reserved in the catalog
  uint64_t catalog_dropped;  // catalog entries that did not fit
  uint32_t next_string_id;
  uint32_t next_object_id;
  uint32_t next_stack_id;
  uint32_t next_pystack_id;
  // How the process ended; end_kind is written last (release).
  uint32_t end_kind;  // EndKind
  int32_t end_code;   // exit status or signal number
  uint64_t end_monotonic_ns;
  uint32_t config;      // string id of the override config path, or kNoId
  uint32_t clock_kind;  // ClockKind of EventSlot.time_ns / duration_ns as stored
  // TSC calibration (clock_kind == kClockTsc): two (tsc, CLOCK_MONOTONIC ns) points. The base
  // is taken at creation; the recorder refreshes the latest point on slow paths (dlopen,
  // dlclose, every few thousand events, process end). Readers convert ticks to ns with them.
  uint64_t tsc_base;
  uint64_t tsc_base_ns;
  uint64_t tsc_latest;
  uint64_t tsc_latest_ns;
  uint64_t tsc_hz_estimate;  // fallback when only the base point exists (0 = unknown)
  uint32_t end_via;          // EndVia: who recorded end_kind
  uint32_t exec_target;      // end_kind kExec: string id of the program exec'ed (else kNoId)
  // pid and ppid as /proc/self/status shows them (the outermost PID namespace visible to the
  // process; differs from pid/ppid inside a sandbox's PID namespace). 0 = unknown.
  int32_t outer_pid;
  int32_t outer_ppid;
  // DLTRACE_RUN_TOKEN of the `dltrace run` that launched the process tree (0: none): run adopts
  // only trace files that carry its own token.
  uint64_t run_token;
  // The recorder's version, "0.1.0+<git commit>" (common/version.h), NUL-padded. Taken from
  // `reserved`, so the format version stays: traces of older recorders have zeros here.
  char recorder_version[32];
  // Version 3: where the logical image's backed chunks lie in the file (see the top of this
  // file). An entry is written whole before extent_count is raised past it (release); the last
  // entry's length may grow (release) when a chunk continues it both in the image and in the file.
  uint32_t extent_count;
  uint32_t extent_reserved;
  FileExtent extents[kMaxExtents];
  char reserved[4096 - 264 - kMaxExtents * sizeof(FileExtent)];
};
static_assert(sizeof(FileHeader) == kHeaderSize, "FileHeader must be one page");
static_assert(offsetof(FileHeader, recorder_version) == 224, "fields keep their offsets");
static_assert(offsetof(FileHeader, extents) == 264, "fields keep their offsets");

enum ClockKind : uint32_t {
  kClockMonotonicNs = 0,  // EventSlot times are CLOCK_MONOTONIC nanoseconds
  kClockTsc = 1,          // EventSlot times are raw TSC ticks; see FileHeader tsc_* fields
};

enum RecorderFlags : uint32_t {
  kRecorderCallerEmulated = 1u << 0,  // no return-address trampoline (e.g. shadow stack)
  kRecorderPythonStacks = 1u << 1,
  kRecorderBackingFailed = 1u << 2,  // the disk filled up: later records were dropped
  // A fork child of a threaded parent: until the loader lock was seen free, the recorder made no
  // call that takes it (no object-table sync, no native stacks).
  kRecorderForkChildCautious = 1u << 3,
  // The trace's path stopped leading to it (moved, replaced, or not openable again, e.g. in a
  // sandbox), so it could not grow: later events whose ring slots were not backed, and catalog
  // entries past the backed catalog, were dropped (counted as dropped).
  kRecorderGrowthStopped = 1u << 4,
};

// ---- catalog ----
inline constexpr uint16_t kCatalogMagic = 0xD17A;

enum class CatalogType : uint16_t {
  kString = 1,         // payload: StringEntry + bytes (NUL-terminated)
  kProcess = 2,        // payload: ProcessEntry + uint32_t argv[argc]
  kObjectLoad = 3,     // payload: ObjectLoadEntry
  kObjectUnload = 4,   // payload: ObjectStateEntry
  kObjectPromote = 5,  // payload: ObjectStateEntry (became part of the global scope later)
  kStack = 6,          // payload: StackEntry + uint64_t ip[depth]
  kPyStack = 7,        // payload: StackEntry + PyFrame[depth]
  kOverride = 8,       // payload: OverrideEntry (one per applied rule per event)
};

// Tag word: (kCatalogMagic << 16) | type. Written last with release semantics: a zero or
// foreign tag means "not committed".
inline constexpr uint32_t catalog_tag(CatalogType t) {
  return (uint32_t{kCatalogMagic} << 16) | static_cast<uint16_t>(t);
}

struct CatalogEntryHeader {
  uint32_t tag;       // catalog_tag(type), committed last
  uint32_t size;      // whole entry including this header, multiple of 8
  uint32_t checksum;  // checksum() of the payload (size - sizeof(header) bytes)
  uint32_t id;        // string/object/stack id, or kNoId
};
static_assert(sizeof(CatalogEntryHeader) == 16);

struct StringEntry {
  uint32_t length;  // bytes, without the NUL
  uint32_t reserved;
  // char text[length + 1] follows
};

struct ProcessEntry {
  uint32_t exe;              // string id
  uint32_t cwd;              // string id
  uint32_t argc;             // followed by uint32_t argv[argc] string ids
  uint32_t ld_library_path;  // string id + 1 of LD_LIBRARY_PATH at start-up; 0 = unset
};

enum class ObjectCause : uint32_t {
  kStartup = 0,  // the executable, the vDSO, the dynamic loader
  kNeeded = 1,   // pulled in by a DT_NEEDED entry of `parent`
  kDlopen = 2,   // opened by a dlopen/dlmopen call (`opened_by`)
  kPreload = 3,  // LD_PRELOAD or /etc/ld.so.preload
};

enum ObjectFlags : uint32_t {
  kObjectGlobal = 1u << 0,      // in its namespace's global scope at load time
  kObjectDiscovered = 1u << 1,  // loaded without a traced call, found at the next event
  kObjectRecorder = 1u << 2,    // libdltrace.so itself
  kObjectVdso = 1u << 3,
};

struct ObjectLoadEntry {
  uint32_t path;    // string id (l_name; for the executable its real path)
  uint32_t soname;  // string id or kNoId
  uint32_t cause;   // ObjectCause
  uint32_t flags;   // ObjectFlags
  uint32_t parent;  // object id or kNoId
  uint32_t build_id_len;
  uint64_t opened_by;  // seq of the dlopen/dlmopen event, 0 = none (start-up)
  uint64_t load_seq;   // seq of the event that brought it in (0 at start-up)
  int64_t lmid;        // namespace
  uint64_t base;       // l_addr
  uint64_t map_start;  // lowest PT_LOAD address (absolute)
  uint64_t map_end;    // one past the highest PT_LOAD address (absolute)
  uint64_t link_map;   // struct link_map* (the dlopen handle value)
  uint8_t build_id[40];
};
static_assert(sizeof(ObjectLoadEntry) == 120);

struct ObjectStateEntry {
  uint64_t seq;  // event that unloaded / promoted the object
};

struct StackEntry {
  uint32_t depth;
  uint32_t hash;
  // uint64_t ip[depth] (kStack) or PyFrame[depth] (kPyStack) follows
};

struct PyFrame {
  uint32_t file;      // string id
  uint32_t function;  // string id
  int32_t line;
  uint32_t reserved;
};

struct OverrideEntry {
  uint64_t seq;   // event the rule applied to
  uint32_t line;  // line of the rule's [[override]] header
  int32_t flags_before;
  int32_t flags_after;
  uint32_t reserved;
};

// ---- ring ----
// EventSlot::call: one value per row of DLTRACE_CALL_KINDS (dltrace/calls.h).
enum class CallKind : uint16_t {
#define DLTRACE_CALL_KIND_ENUMERATOR(kind, name, value) kind = value,
  DLTRACE_CALL_KINDS(DLTRACE_CALL_KIND_ENUMERATOR)
#undef DLTRACE_CALL_KIND_ENUMERATOR
};

// The kinds are 1..kCallKindCount (0 is no call), so a table indexed by EventSlot::call has
// kCallKindCount + 1 entries.
inline constexpr uint16_t kCallKindCount = 0
#define DLTRACE_CALL_KIND_ONE(kind, name, value) +1
    DLTRACE_CALL_KINDS(DLTRACE_CALL_KIND_ONE);
#undef DLTRACE_CALL_KIND_ONE

namespace detail {
inline constexpr const char* kCallNames[kCallKindCount + 1] = {
    nullptr,
#define DLTRACE_CALL_KIND_NAME(kind, name, value) #name,
    DLTRACE_CALL_KINDS(DLTRACE_CALL_KIND_NAME)
#undef DLTRACE_CALL_KIND_NAME
};
// kCallNames is indexed by value: the rows must be 1, 2, ... in order.
constexpr bool call_kinds_numbered_in_order() {
  uint16_t expected = 0;
  bool ok = true;
#define DLTRACE_CALL_KIND_CHECK(kind, name, value) ok = ok && (value) == ++expected;
  DLTRACE_CALL_KINDS(DLTRACE_CALL_KIND_CHECK)
#undef DLTRACE_CALL_KIND_CHECK
  return ok;
}
static_assert(call_kinds_numbered_in_order(),
              "DLTRACE_CALL_KINDS: values must be 1, 2, ... in row order");
}  // namespace detail

// "dlopen", "dlmopen", ... for EventSlot::call; nullptr for a value this build does not know.
inline constexpr const char* call_name(uint16_t call) {
  return call <= kCallKindCount ? detail::kCallNames[call] : nullptr;
}

enum EventBits : uint16_t {
  kEventOk = 1u << 0,              // the call succeeded (non-NULL result / dlclose == 0)
  kEventOverridden = 1u << 1,      // effective_flags differ from flags because of the config
  kEventCallerEmulated = 1u << 2,  // the call was not made through the caller trampoline
  kEventNested = 1u << 3,          // made while another traced call ran on this thread
  kEventNoLoad = 1u << 4,          // dlopen returned an object that was already loaded
  kEventUnloaded = 1u << 5,        // dlclose really unloaded something
  // dlopen/dlmopen: a copy of the slot committed when the call started, so that a process that
  // dies inside the loader (SIGBUS on a truncated file, a crashing constructor, exit() from one)
  // leaves the call behind. The final commit replaces it; a slot that still has the bit is a call
  // that never returned. Only time_ns, tid, name, flags, caller and stacks are meaningful in it.
  kEventInFlight = 1u << 6,
};

struct EventSlot {
  uint64_t seq;       // commit marker: 0 (never written) or kSlotBusy while being written
  uint32_t checksum;  // slot_checksum() of bytes [16, 128)
  uint16_t call;      // CallKind
  uint16_t bits;      // EventBits
  uint64_t time_ns;   // call start, on the clock FileHeader::clock_kind names (TSC ticks or ns)
  uint64_t duration_ns;
  uint32_t tid;
  uint32_t name;           // string id: file for dlopen/dlmopen, symbol for dlsym/dlvsym
  uint32_t version;        // dlvsym version string id
  uint32_t error;          // exact dlerror() text, string id
  uint32_t stack;          // native stack id
  uint32_t py_stack;       // Python stack id
  uint32_t object;         // dlopen: object opened; dlsym: defining object; dlclose: closed object
  uint32_t handle_object;  // dlsym/dlvsym/dlclose: the object the handle argument names
  int64_t lmid;            // dlmopen: namespace argument; dlopen/dlmopen: namespace of the result
  uint64_t handle;         // dlopen/dlmopen: returned handle; dlsym/dlvsym/dlclose: handle argument
  uint64_t address;        // dlsym/dlvsym: returned address
  uint64_t caller_ip;      // return address in the original caller
  int32_t flags;           // requested flags
  int32_t effective_flags;  // flags passed to glibc
  int32_t result;           // dlclose return value
  uint32_t override_line;   // line of the last applied override rule, 0 = none
  uint32_t caller_object;   // object id of the caller
  uint32_t reserved;
  uint64_t parent_seq;  // seq of the enclosing traced call on this thread, 0 = none
};
static_assert(sizeof(EventSlot) == kSlotSize);
static_assert(offsetof(EventSlot, time_ns) == 16);

// Sizing (the writer's choice; readers take every offset from the header and the extents): the
// logical image is the buffer size rounded up to a page (at least kMinBufferSize). The ring is the
// largest power of two of slots that fits in what is left after the header and a quarter of the
// buffer (at least 64 KiB) for the catalog; the catalog gets everything else. A power-of-two
// slot_count lets the writer place seq s at (s - 1) & (slot_count - 1); readers use (s - 1) %
// slot_count, which is the same slot and also works for any slot_count. The file starts with the
// header, 28 KiB of catalog and 32 KiB of ring (64 KiB: what a process that makes no dl* call
// leaves); each region then grows by chunks of half what it has (at least 64 KiB, at most max(1
// MiB, region / 32)).
inline constexpr uint64_t kMinBufferSize = 256 * 1024;

}  // namespace dltrace::format

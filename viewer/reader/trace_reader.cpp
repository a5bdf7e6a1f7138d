// TraceReader over a read-only mapping or caller-owned bytes. The catalog is loaded once at open;
// events are streamed from the ring. Nothing in the file is trusted: every offset and size is
// checked against the bytes actually present, in 64-bit arithmetic.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dltrace/reader.h"
#include "trace_extents.h"

namespace dltrace {
namespace {

using format::CatalogEntryHeader;
using format::CatalogType;
using format::EventSlot;
using format::FileHeader;

// A read-only file mapping owned by the reader.
struct Mapping {
  void* data = nullptr;
  size_t size = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (data) munmap(data, size);
  }
};

std::string hex(const uint8_t* p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

struct Span {
  uint64_t offset = 0;
  uint32_t count = 0;
};

class TraceReaderImpl final : public TraceReader {
 public:
  TraceReaderImpl(const unsigned char* data, size_t size, std::unique_ptr<Mapping> mapping)
      : data_(data), size_(size), mapping_(std::move(mapping)) {}

  bool load(std::string* error);
  // open(): the file's descriptor while loading, to map a version 3 trace's chunks in place.
  void set_fd(int fd) { fd_ = fd; }
  // The file's data extents (SEEK_DATA/SEEK_HOLE). The recorder backs its file chunk by chunk,
  // and touching a hole can fault (SIGBUS on a full tmpfs), so readers stay inside the data.
  void set_data_ranges(std::vector<std::pair<uint64_t, uint64_t>> ranges) {
    data_ranges_ = std::move(ranges);
    have_data_ranges_ = true;
  }

  const FileHeader& header() const override { return header_; }
  const ProcessInfo& process() const override { return process_; }
  const Recovery& recovery() const override { return recovery_; }
  const std::vector<ObjectRecord>& objects() const override { return objects_; }
  const ObjectRecord* object(uint32_t id) const override;
  const ObjectRecord* object_at(uint64_t address, uint64_t seq) const override;
  std::string_view string(uint32_t id) const override;
  bool has_string(uint32_t id) const override { return strings_.count(id) != 0; }
  std::span<const uint64_t> stack(uint32_t id) const override;
  std::span<const format::PyFrame> py_stack(uint32_t id) const override;
  std::vector<OverrideRecord> overrides_for(uint64_t seq) const override;
  uint64_t last_seq() const override { return last_seq_; }
  void for_each_event(const std::function<bool(const EventSlot&)>& fn) const override;
  std::optional<EventSlot> event(uint64_t seq) const override;

 private:
  enum class SlotState { kEmpty, kValid, kTorn };
  // Copies slot `index` out (the file may still be written) and classifies it.
  SlotState read_slot(uint64_t index, EventSlot* out) const;
  bool slot_present(uint64_t index) const;
  // Where the catalog's and the ring's bytes are: in the file as it is (version 2) or assembled
  // from the extents (version 3).
  void locate_regions_v2();
  bool locate_regions_v3(std::string* error);
  void load_catalog();
  void parse_entry(CatalogType type, uint32_t id, const unsigned char* p, uint64_t n);
  void load_ring();
  // Drops ring slots [begin, end) from this process's memory once they are read (the reader's
  // own file mapping only; the pages stay in the page cache): every pass over the ring would
  // otherwise leave it all resident, 1.3 GB of RSS for 10M events. Called per kReleaseSlots.
  void release_slots(uint64_t begin, uint64_t end) const;
  static constexpr uint64_t kReleaseSlots = 8192;  // 1 MiB of slots
  void build_object_index();
  void note(std::string s) { recovery_.notes.push_back(std::move(s)); }

  const unsigned char* data_;
  size_t size_;
  std::unique_ptr<Mapping> mapping_;
  int fd_ = -1;

  // The catalog's first catalog_present_ bytes and the ring's first slots_present_ slots, in
  // memory. ring_releasable_: the ring's pages are the file's, so read ones may be dropped.
  const unsigned char* catalog_ = nullptr;
  uint64_t catalog_present_ = 0;
  const unsigned char* ring_ = nullptr;
  bool ring_releasable_ = false;
  reader_detail::RegionView catalog_view_, ring_view_;  // version 3

  FileHeader header_{};
  ProcessInfo process_;
  Recovery recovery_;
  uint64_t last_seq_ = 0;

  std::unordered_map<uint32_t, std::string_view> strings_;
  std::vector<ObjectRecord> objects_;  // sorted by id
  std::unordered_map<uint32_t, Span> stacks_;
  std::vector<uint64_t> stack_ips_;
  std::unordered_map<uint32_t, Span> py_stacks_;
  std::vector<format::PyFrame> py_frames_;
  std::vector<OverrideRecord> overrides_;  // sorted by seq

  // Process entry (string ids resolved after the catalog walk).
  bool have_process_entry_ = false;
  format::ProcessEntry process_entry_{};
  std::vector<uint32_t> argv_ids_;
  // Unload/promote entries, folded into objects after the walk.
  std::vector<std::pair<uint32_t, uint64_t>> unloads_, promotes_;
  struct PendingName {
    uint32_t object, path, soname;
  };
  std::vector<PendingName> pending_names_;

  // object_at index: objects by map_start with a running maximum of map_end.
  std::vector<uint32_t> by_start_;  // indexes into objects_
  std::vector<uint64_t> max_end_;   // max map_end over by_start_[0..i]

  // Slots [0, slots_present_) are in the file.
  uint64_t slots_present_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> data_ranges_;  // [begin, end), sorted
  bool have_data_ranges_ = false;
  // End of the data that runs contiguously from `offset` (offset itself when it is in a hole).
  uint64_t contiguous_data_end(uint64_t offset) const {
    if (!have_data_ranges_) return size_;
    for (const auto& [begin, end] : data_ranges_)
      if (offset >= begin && offset < end) return end;
    return offset;
  }
  // Valid slots whose seq is older than the last lap (their successor never committed), in seq
  // order; they come before the in-window events.
  std::vector<uint64_t> stale_slots_;
};

bool TraceReaderImpl::load(std::string* error) {
  auto fail = [&](const char* msg) {
    if (error) *error = msg;
    return false;
  };
  if (size_ == 0) return fail("empty file");
  if (size_ >= sizeof format::kMagic &&
      std::memcmp(data_, format::kMagic, sizeof format::kMagic) != 0)
    return fail("not a dltrace trace (bad magic)");
  if (size_ < sizeof format::kMagic) {
    // Too short to hold the magic: say "bad magic" unless it is a prefix of it.
    if (std::memcmp(data_, format::kMagic, size_) != 0)
      return fail("not a dltrace trace (bad magic)");
    return fail("truncated header");
  }
  if (size_ >= 12) {
    uint32_t version;
    std::memcpy(&version, data_ + 8, 4);
    if (version < format::kOldestReadableVersion || version > format::kVersion) {
      if (error)
        *error = "trace format version " + std::to_string(version) +
                 " is not supported (this dltrace reads versions " +
                 std::to_string(format::kOldestReadableVersion) + " to " +
                 std::to_string(format::kVersion) + ")";
      return false;
    }
  }
  if (size_ < sizeof(FileHeader)) return fail("truncated header");
  std::memcpy(&header_, data_, sizeof header_);
  const FileHeader& h = header_;
  if (h.header_size != format::kHeaderSize || h.slot_size != format::kSlotSize)
    return fail("corrupt trace header (unexpected header or slot size)");
  // Layout: header <= catalog, catalog + size <= ring, ring + slots * 128 <= file_size.
  if (h.catalog_offset < format::kHeaderSize || h.catalog_offset % 8 != 0 ||
      h.catalog_size > h.file_size || h.catalog_offset > h.file_size - h.catalog_size ||
      h.ring_offset < h.catalog_offset + h.catalog_size || h.ring_offset > h.file_size ||
      h.slot_count > (h.file_size - h.ring_offset) / format::kSlotSize)
    return fail("corrupt trace header (sections lie outside the file)");

  if (h.version >= 3) {
    if (!locate_regions_v3(error)) return false;
  } else {
    locate_regions_v2();
  }
  last_seq_ = h.next_seq == 0 ? 0 : h.next_seq - 1;
  recovery_.catalog_dropped = h.catalog_dropped;
  if (h.catalog_dropped)
    note(std::to_string(h.catalog_dropped) +
         " catalog entries did not fit in the catalog (strings, "
         "objects or stacks are missing); use a larger DLTRACE_BUFFER_SIZE");

  load_catalog();
  load_ring();
  build_object_index();

  process_.pid = h.pid;
  process_.ppid = h.ppid;
  process_.start_realtime_ns = h.start_realtime_ns;
  process_.start_monotonic_ns = h.start_monotonic_ns;
  process_.end_monotonic_ns = h.end_monotonic_ns;
  process_.stack_depth = h.stack_depth;
  process_.recorder_flags = h.recorder_flags;
  process_.outer_pid = h.outer_pid;
  process_.outer_ppid = h.outer_ppid;
  // Untrusted: up to the first NUL, printable ASCII only (it is printed in notes).
  for (char c : h.recorder_version) {
    if (c == '\0') break;
    process_.recorder_version += (c > ' ' && c < 127) ? c : '?';
  }
  if (h.end_kind <= uint32_t(format::EndKind::kExec)) {
    process_.end = format::EndKind(h.end_kind);
    process_.end_code = h.end_code;
    // end_via names who wrote the end; an unknown value (a newer recorder) reads as none.
    if (process_.end != format::EndKind::kRunning && h.end_via <= format::kEndViaObserved)
      process_.end_via = h.end_via;
  } else {
    note("unknown process end kind " + std::to_string(h.end_kind) + "; treated as no recorded end");
  }
  uint32_t exe_id = have_process_entry_ ? process_entry_.exe : h.exe;
  if (!has_string(exe_id)) exe_id = h.exe;
  process_.exe = std::string(string(exe_id));
  if (have_process_entry_) {
    process_.cwd = std::string(string(process_entry_.cwd));
    for (uint32_t id : argv_ids_) process_.argv.emplace_back(string(id));
    uint32_t llp = process_entry_.ld_library_path;
    if (llp != 0 && has_string(llp - 1)) process_.ld_library_path = std::string(string(llp - 1));
  }
  process_.config = std::string(string(h.config));
  if (process_.end == format::EndKind::kExec && has_string(h.exec_target))
    process_.exec_target = std::string(string(h.exec_target));
  return true;
}

// ---- where the regions are ----

void TraceReaderImpl::locate_regions_v2() {
  const FileHeader& h = header_;
  if (size_ < h.file_size) {
    recovery_.truncated = true;
    note("the file is truncated: " + std::to_string(size_) + " of " + std::to_string(h.file_size) +
         " bytes present; events and catalog entries past the end are lost");
  }
  const uint64_t used = std::min(h.catalog_used, h.catalog_size);
  // Bytes of the catalog actually present in a truncated file.
  catalog_present_ =
      size_ > h.catalog_offset ? std::min<uint64_t>(size_ - h.catalog_offset, used) : 0;
  catalog_present_ =
      std::min<uint64_t>(catalog_present_, contiguous_data_end(h.catalog_offset) -
                                               std::min<uint64_t>(h.catalog_offset, size_));
  if (catalog_present_) catalog_ = data_ + h.catalog_offset;
  const uint64_t n = h.slot_count;
  slots_present_ = size_ > h.ring_offset
                       ? std::min<uint64_t>(n, (size_ - h.ring_offset) / format::kSlotSize)
                       : 0;
  // The ring is backed contiguously from its start; what lies past that was never written.
  if (size_ > h.ring_offset)
    slots_present_ = std::min<uint64_t>(
        slots_present_, (contiguous_data_end(h.ring_offset) - h.ring_offset) / format::kSlotSize);
  if (slots_present_) ring_ = data_ + h.ring_offset;
  ring_releasable_ = mapping_ != nullptr;
}

bool TraceReaderImpl::locate_regions_v3(std::string* error) {
  const FileHeader& h = header_;
  reader_detail::ExtentPlan plan;
  if (!reader_detail::plan_extents(
          h, size_, [this](uint64_t offset) { return contiguous_data_end(offset); }, &plan, error))
    return false;
  if (plan.truncated) {
    recovery_.truncated = true;
    note("the file is truncated: " + std::to_string(size_) + " of " +
         std::to_string(plan.claimed_end) +
         " bytes present; events and catalog entries past the end are lost");
  }
  if (!catalog_view_.assemble(plan.catalog, fd_, data_) ||
      !ring_view_.assemble(plan.ring, fd_, data_)) {
    if (error) *error = "cannot map the trace's chunks: " + std::string(std::strerror(errno));
    return false;
  }
  catalog_ = catalog_view_.data();
  catalog_present_ = std::min({h.catalog_used, h.catalog_size, catalog_view_.length()});
  ring_ = ring_view_.data();
  slots_present_ = std::min<uint64_t>(h.slot_count, ring_view_.length() / format::kSlotSize);
  ring_releasable_ = ring_view_.file_backed();
  return true;
}

// ---- catalog ----

void TraceReaderImpl::load_catalog() {
  const uint64_t present = catalog_present_;
  const unsigned char* cat = catalog_;
  uint64_t pos = 0, corrupt_run = 0;
  bool run_is_zero = true;  // a run of zeros is space reserved but never written, not damage
  auto end_run = [&](bool at_end) {
    // Zeros at the very end are the unused tail of a reservation that did not fit.
    if (!(at_end && run_is_zero)) recovery_.corrupt_catalog += corrupt_run;
    corrupt_run = 0;
    run_is_zero = true;
  };
  while (pos + sizeof(CatalogEntryHeader) <= present) {
    CatalogEntryHeader e;
    std::memcpy(&e, cat + pos, sizeof e);
    uint16_t type = uint16_t(e.tag & 0xFFFF);
    bool ok = (e.tag >> 16) == format::kCatalogMagic && type >= 1 && type <= 8 &&
              e.size >= sizeof e && e.size % 8 == 0 && e.size <= present - pos &&
              format::checksum(cat + pos + sizeof e, e.size - sizeof e) == e.checksum;
    if (!ok) {
      // Resynchronise: entries start on 8-byte boundaries.
      uint64_t word;
      std::memcpy(&word, cat + pos, 8);
      run_is_zero = run_is_zero && word == 0;
      corrupt_run += 8;
      pos += 8;
      continue;
    }
    end_run(false);
    parse_entry(CatalogType(type), e.id, cat + pos + sizeof e, e.size - sizeof e);
    pos += e.size;
  }
  // A partial entry header at the end.
  for (; pos < present; ++pos) {
    run_is_zero = run_is_zero && cat[pos] == 0;
    ++corrupt_run;
  }
  end_run(true);
  if (recovery_.corrupt_catalog)
    note(std::to_string(recovery_.corrupt_catalog) +
         " catalog bytes were skipped because they were torn or corrupt");

  std::stable_sort(objects_.begin(), objects_.end(),
                   [](const ObjectRecord& a, const ObjectRecord& b) { return a.id < b.id; });
  // One record per id: a corrupt file may repeat ids; the first one written wins.
  objects_.erase(
      std::unique(objects_.begin(), objects_.end(),
                  [](const ObjectRecord& a, const ObjectRecord& b) { return a.id == b.id; }),
      objects_.end());
  for (const PendingName& n : pending_names_)
    if (auto* o = const_cast<ObjectRecord*>(object(n.object)); o && o->path.empty()) {
      o->path = std::string(string(n.path));
      o->soname = std::string(string(n.soname));
    }
  for (auto& [id, seq] : unloads_)
    if (auto* o = const_cast<ObjectRecord*>(object(id)); o && !o->unload_seq) o->unload_seq = seq;
  for (auto& [id, seq] : promotes_)
    if (auto* o = const_cast<ObjectRecord*>(object(id)); o && !o->promote_seq) o->promote_seq = seq;
  std::stable_sort(overrides_.begin(), overrides_.end(),
                   [](const OverrideRecord& a, const OverrideRecord& b) { return a.seq < b.seq; });
}

void TraceReaderImpl::parse_entry(CatalogType type, uint32_t id, const unsigned char* p,
                                  uint64_t n) {
  switch (type) {
    case CatalogType::kString: {
      format::StringEntry s;
      if (n < sizeof s) break;
      std::memcpy(&s, p, sizeof s);
      if (s.length > n - sizeof s) break;
      strings_.emplace(id, std::string_view(reinterpret_cast<const char*>(p + sizeof s), s.length));
      return;
    }
    case CatalogType::kProcess: {
      format::ProcessEntry pe;
      if (n < sizeof pe) break;
      std::memcpy(&pe, p, sizeof pe);
      if (pe.argc > (n - sizeof pe) / 4) break;
      if (have_process_entry_) return;  // the first one describes the process
      have_process_entry_ = true;
      process_entry_ = pe;
      argv_ids_.resize(pe.argc);
      if (pe.argc) std::memcpy(argv_ids_.data(), p + sizeof pe, size_t(pe.argc) * 4);
      return;
    }
    case CatalogType::kObjectLoad: {
      format::ObjectLoadEntry o;
      if (n < sizeof o || id == format::kNoId) break;
      std::memcpy(&o, p, sizeof o);
      ObjectRecord r;
      r.id = id;
      r.cause = o.cause <= uint32_t(format::ObjectCause::kPreload) ? format::ObjectCause(o.cause)
                                                                   : format::ObjectCause::kStartup;
      r.flags = o.flags;
      r.parent = o.parent;
      r.opened_by = o.opened_by;
      r.load_seq = o.load_seq;
      r.lmid = o.lmid;
      r.base = o.base;
      r.map_start = o.map_start;
      r.map_end = o.map_end;
      r.link_map = o.link_map;
      r.build_id = hex(o.build_id, std::min<uint32_t>(o.build_id_len, sizeof o.build_id));
      // Strings may come later in the catalog: names are resolved after the walk.
      pending_names_.push_back({id, o.path, o.soname});
      objects_.push_back(std::move(r));
      return;
    }
    case CatalogType::kObjectUnload:
    case CatalogType::kObjectPromote: {
      format::ObjectStateEntry s;
      if (n < sizeof s) break;
      std::memcpy(&s, p, sizeof s);
      (type == CatalogType::kObjectUnload ? unloads_ : promotes_).emplace_back(id, s.seq);
      return;
    }
    case CatalogType::kStack:
    case CatalogType::kPyStack: {
      format::StackEntry s;
      if (n < sizeof s) break;
      std::memcpy(&s, p, sizeof s);
      bool native = type == CatalogType::kStack;
      uint64_t elem = native ? sizeof(uint64_t) : sizeof(format::PyFrame);
      if (s.depth > (n - sizeof s) / elem) break;
      auto& index = native ? stacks_ : py_stacks_;
      if (index.count(id)) return;
      if (native) {
        Span span{stack_ips_.size(), s.depth};
        stack_ips_.resize(stack_ips_.size() + s.depth);
        if (s.depth) std::memcpy(stack_ips_.data() + span.offset, p + sizeof s, s.depth * elem);
        index.emplace(id, span);
      } else {
        Span span{py_frames_.size(), s.depth};
        py_frames_.resize(py_frames_.size() + s.depth);
        if (s.depth) std::memcpy(py_frames_.data() + span.offset, p + sizeof s, s.depth * elem);
        index.emplace(id, span);
      }
      return;
    }
    case CatalogType::kOverride: {
      format::OverrideEntry o;
      if (n < sizeof o) break;
      std::memcpy(&o, p, sizeof o);
      overrides_.push_back({o.seq, o.line, o.flags_before, o.flags_after});
      return;
    }
  }
  note("a catalog entry of type " + std::to_string(int(type)) +
       " had an impossible payload; ignored");
}

// ---- ring ----

bool TraceReaderImpl::slot_present(uint64_t index) const {
  return index < slots_present_;
}

TraceReaderImpl::SlotState TraceReaderImpl::read_slot(uint64_t index, EventSlot* out) const {
  std::memcpy(out, ring_ + index * format::kSlotSize, sizeof *out);
  const uint64_t seq = out->seq;
  if (seq == 0) {
    static const unsigned char zeros[format::kSlotSize] = {};
    return std::memcmp(out, zeros, sizeof zeros) == 0 ? SlotState::kEmpty : SlotState::kTorn;
  }
  if (seq > last_seq_ || (seq - 1) % header_.slot_count != index ||
      format::slot_checksum(reinterpret_cast<const unsigned char*>(out) + 16) != out->checksum)
    return SlotState::kTorn;
  return SlotState::kValid;
}

// Reads every present slot once at open, so for_each_event reads each slot a second time. Both
// passes are needed: the counts (Recovery) must be known before the first event, since readers
// print them ahead of the events (export's "recovery", show's header, the progress line's
// total), and stale slots come first in seq order yet may lie anywhere in the ring. The second
// pass checks each slot again rather than trusting the first: the file may still be written.
void TraceReaderImpl::load_ring() {
  const uint64_t n = header_.slot_count;
  if (n == 0) {
    recovery_.dropped_events = last_seq_;
    if (last_seq_)
      note("the trace has no ring: all " + std::to_string(last_seq_) + " events are lost");
    return;
  }
  uint64_t readable = 0;
  std::vector<std::pair<uint64_t, uint64_t>> stale;  // (seq, slot)
  const uint64_t window_start = last_seq_ >= n ? last_seq_ - n + 1 : 1;
  for (uint64_t i = 0; i < slots_present_; ++i) {
    if (i % kReleaseSlots == 0 && i != 0) release_slots(i - kReleaseSlots, i);
    EventSlot slot;
    switch (read_slot(i, &slot)) {
      case SlotState::kEmpty:
        break;
      case SlotState::kTorn:
        ++recovery_.torn_events;
        break;
      case SlotState::kValid:
        ++readable;
        if (slot.seq < window_start) stale.emplace_back(slot.seq, i);
        break;
    }
  }
  std::sort(stale.begin(), stale.end());
  for (auto& s : stale) stale_slots_.push_back(s.second);
  recovery_.dropped_events = last_seq_ - readable;
  if (header_.recorder_flags & format::kRecorderBackingFailed)
    note(
        "the disk filled up while recording: events and entries after that point were not written");
  if (header_.recorder_flags & format::kRecorderGrowthStopped)
    note(
        "the trace file could not grow (its path stopped leading to it: moved, replaced, or not "
        "openable again, e.g. from a sandbox): events and entries past what it held were not "
        "written");
  if (recovery_.torn_events)
    note(std::to_string(recovery_.torn_events) +
         " event slots were torn (written when the process stopped, or corrupt) and were skipped");
  if (recovery_.dropped_events)
    note(std::to_string(recovery_.dropped_events) + " of " + std::to_string(last_seq_) +
         " events are not readable (overwritten when the ring wrapped, torn, or never committed)");
}

void TraceReaderImpl::for_each_event(const std::function<bool(const EventSlot&)>& fn) const {
  const uint64_t n = header_.slot_count;
  if (n == 0 || last_seq_ == 0) return;
  EventSlot slot;
  for (uint64_t index : stale_slots_)
    if (read_slot(index, &slot) == SlotState::kValid && !fn(slot)) return;
  // The last lap, seqs [window_start, last_seq], occupies slots i0, i0 + 1, ... wrapping at n.
  // Only the first `present` slots are in the file (it may be truncated, and n may be a lie),
  // so walk slot ranges, never the seq range itself.
  const uint64_t window_start = last_seq_ >= n ? last_seq_ - n + 1 : 1;
  const uint64_t length = last_seq_ - window_start + 1;
  const uint64_t i0 = (window_start - 1) % n;
  const uint64_t first_end = std::min({n, i0 + length, slots_present_});
  for (uint64_t i = i0; i < first_end; ++i) {
    if (i % kReleaseSlots == 0 && i > i0) release_slots(i - kReleaseSlots, i);
    if (read_slot(i, &slot) == SlotState::kValid && slot.seq == window_start + (i - i0) &&
        !fn(slot))
      return;
  }
  if (i0 + length > n) {
    const uint64_t second_end = std::min(i0 + length - n, slots_present_);
    for (uint64_t i = 0; i < second_end; ++i) {
      if (i % kReleaseSlots == 0 && i != 0) release_slots(i - kReleaseSlots, i);
      if (read_slot(i, &slot) == SlotState::kValid && slot.seq == window_start + (n - i0) + i &&
          !fn(slot))
        return;
    }
  }
}

void TraceReaderImpl::release_slots(uint64_t begin, uint64_t end) const {
  // Bytes the caller owns (open_bytes) or a copy: not pages of the file, not ours to drop.
  if (!ring_releasable_ || !ring_) return;
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const auto from = reinterpret_cast<uintptr_t>(ring_ + begin * format::kSlotSize);
  const auto to =
      reinterpret_cast<uintptr_t>(ring_ + std::min(end, slots_present_) * format::kSlotSize);
  const uintptr_t lo = (from + page - 1) / page * page;
  const uintptr_t hi = to / page * page;
  if (lo < hi) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

std::optional<EventSlot> TraceReaderImpl::event(uint64_t seq) const {
  const uint64_t n = header_.slot_count;
  if (n == 0 || seq == 0 || seq > last_seq_) return std::nullopt;
  uint64_t index = (seq - 1) % n;
  if (!slot_present(index)) return std::nullopt;
  EventSlot slot;
  if (read_slot(index, &slot) != SlotState::kValid || slot.seq != seq) return std::nullopt;
  return slot;
}

// ---- lookups ----

const ObjectRecord* TraceReaderImpl::object(uint32_t id) const {
  if (id < objects_.size() && objects_[id].id == id) return &objects_[id];
  auto it = std::lower_bound(objects_.begin(), objects_.end(), id,
                             [](const ObjectRecord& o, uint32_t v) { return o.id < v; });
  return it != objects_.end() && it->id == id ? &*it : nullptr;
}

void TraceReaderImpl::build_object_index() {
  for (uint32_t i = 0; i < objects_.size(); ++i)
    if (objects_[i].map_start < objects_[i].map_end) by_start_.push_back(i);
  std::sort(by_start_.begin(), by_start_.end(),
            [&](uint32_t a, uint32_t b) { return objects_[a].map_start < objects_[b].map_start; });
  uint64_t max_end = 0;
  for (uint32_t i : by_start_) max_end_.push_back(max_end = std::max(max_end, objects_[i].map_end));
}

const ObjectRecord* TraceReaderImpl::object_at(uint64_t address, uint64_t seq) const {
  // Candidates start at or below `address`; walk down while some earlier range could still reach
  // it.
  auto it = std::upper_bound(by_start_.begin(), by_start_.end(), address,
                             [&](uint64_t a, uint32_t i) { return a < objects_[i].map_start; });
  const ObjectRecord* best = nullptr;
  for (size_t k = size_t(it - by_start_.begin()); k-- > 0 && max_end_[k] > address;) {
    const ObjectRecord& o = objects_[by_start_[k]];
    if (address < o.map_end && o.alive_at(seq) && (!best || o.load_seq > best->load_seq)) best = &o;
  }
  return best;
}

std::string_view TraceReaderImpl::string(uint32_t id) const {
  auto it = strings_.find(id);
  return it == strings_.end() ? std::string_view() : it->second;
}

std::span<const uint64_t> TraceReaderImpl::stack(uint32_t id) const {
  auto it = stacks_.find(id);
  if (it == stacks_.end()) return {};
  return {stack_ips_.data() + it->second.offset, it->second.count};
}

std::span<const format::PyFrame> TraceReaderImpl::py_stack(uint32_t id) const {
  auto it = py_stacks_.find(id);
  if (it == py_stacks_.end()) return {};
  return {py_frames_.data() + it->second.offset, it->second.count};
}

std::vector<OverrideRecord> TraceReaderImpl::overrides_for(uint64_t seq) const {
  auto [lo, hi] = std::equal_range(
      overrides_.begin(), overrides_.end(), OverrideRecord{seq, 0, 0, 0},
      [](const OverrideRecord& a, const OverrideRecord& b) { return a.seq < b.seq; });
  return {lo, hi};
}

}  // namespace

std::unique_ptr<TraceReader> TraceReader::open_bytes(const void* data, size_t size,
                                                     std::string* error) {
  auto reader =
      std::make_unique<TraceReaderImpl>(static_cast<const unsigned char*>(data), size, nullptr);
  if (!reader->load(error)) return nullptr;
  return reader;
}

std::unique_ptr<TraceReader> TraceReader::open(const std::string& path, std::string* error) {
  auto fail = [&](const std::string& msg) -> std::unique_ptr<TraceReader> {
    if (error) *error = msg;
    return nullptr;
  };
  // O_NONBLOCK: opening a FIFO (or a device) must not hang; fstat below then refuses anything
  // but a regular file. The descriptor is only mapped, so the flag changes nothing else.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return fail("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return fail("cannot open " + path + ": " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail("cannot read " + path + ": not a regular file");
  }
  auto mapping = std::make_unique<Mapping>();
  mapping->size = size_t(st.st_size);
  if (mapping->size) {
    void* p = mmap(nullptr, mapping->size, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return fail("cannot map " + path + ": " + std::strerror(err));
    }
    // A trace written through the recorder's mapping sits in the page cache as large folios;
    // mapped whole (2 MiB at a time) they would keep far more of the ring resident than the
    // windows the reader releases as it goes (release_slots). Small pages keep the reader's
    // footprint what it reads.
    madvise(p, mapping->size, MADV_NOHUGEPAGE);
    mapping->data = p;
  }
  std::vector<std::pair<uint64_t, uint64_t>> data;
  bool holes_known = true;
  for (off_t pos = 0; pos < st.st_size;) {
    off_t begin = lseek(fd, pos, SEEK_DATA);
    if (begin < 0) {
      holes_known = errno == ENXIO;  // ENXIO: only a hole remains; anything else: no hole support
      break;
    }
    off_t end = lseek(fd, begin, SEEK_HOLE);
    if (end < 0) {
      holes_known = false;
      break;
    }
    data.emplace_back(uint64_t(begin), uint64_t(end));
    pos = end;
  }
  const auto* bytes = static_cast<const unsigned char*>(mapping->data);
  size_t size = mapping->size;
  auto reader = std::make_unique<TraceReaderImpl>(bytes, size, std::move(mapping));
  if (holes_known) reader->set_data_ranges(std::move(data));
  reader->set_fd(fd);
  const bool loaded = reader->load(error);
  reader->set_fd(-1);
  ::close(fd);
  if (!loaded) return nullptr;
  return reader;
}

}  // namespace dltrace

// TraceWriter: the recorder's side of the trace file (see include/dltrace/format.h).
//
// Lock-free on the hot path: events reserve a seq with one fetch_add and are committed by a
// release-store; strings and stacks are interned through fixed-size open-addressing tables in
// anonymous memory, so a million dlsym calls on fifty names write fifty strings. Nothing here
// allocates with malloc after open(), calls a dl* function, or takes a lock, so it is safe to use
// from inside dlopen (constructors), from several threads, and (set_end) from a signal handler.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dltrace/format.h"

namespace dltrace::preload {

class TraceWriter {
 public:
  // Creates the trace file. `pattern` follows DLTRACE_OUTPUT: %p = pid, %e = executable basename,
  // a trailing '/' means "dltrace.%e.%p.trace in this directory", and so does an existing
  // directory without it. An existing target that is not a regular file (a device, a FIFO) is
  // refused. The file is created mode 0600 (whatever the umask) with O_EXCL and O_NOFOLLOW; if
  // the name exists (exec keeps the pid) a ".1", ".2", ... suffix is added before ".trace" or at
  // the end, and after ".16" a random number, so planted names cannot stop the recording. With
  // allow_fallback(true), a file that cannot be created where the pattern says is created in
  // /tmp/dltrace-<euid>/ (see create_fallback), and the move reported (run_report.h). The file's
  // header carries DLTRACE_RUN_TOKEN. The buffer size is reserved as address space (the logical
  // image); the file gets the header and first chunks, mapped MAP_SHARED into the image, and its
  // descriptor is closed at once: the recorder never writes through a descriptor it keeps (the
  // program may reuse its number). The file grows ahead of the writers (see ensure_backed).
  // On failure returns false with one sentence in `error`
  // (e.g. "cannot create /x/y.trace: Permission denied") and leaves nothing mapped.
  bool open(const char* pattern, uint64_t buffer_size, uint32_t stack_depth, char* error,
            size_t error_size);
  // Kept across close() and fork: the recorder allows it, unit tests of naming do not.
  void allow_fallback(bool allow) { fallback_ = allow; }
  bool is_open() const { return header_ != nullptr; }
  const char* path() const { return path_; }

  // Unmaps the file and the intern tables (tests; a process that stops recording). Everything
  // committed stays in the file. Not for use while other threads may still write.
  void close();

  // After fork, in the child: forget the parent's intern tables without touching the parent's
  // file, whose image stays mapped (never written) until release_inherited(): the caller open()s
  // a new file and copies the objects' entries over from the old catalog, where they were written
  // while the objects were live (another thread of the parent may have unloaded one since).
  void abandon_after_fork();
  void release_inherited();

  // Interning: returns the id (format::kNoId if the catalog is full).
  // `stored`, if given, receives the catalog's NUL-terminated copy (valid while epoch() is the
  // same).
  uint32_t intern_string(const char* text, size_t length, const char** stored = nullptr);
  uint32_t intern_string(const char* text);  // NUL-terminated; nullptr -> kNoId
  // Changes with every open(): catalog pointers from an earlier file (before fork) are stale.
  uint32_t epoch() const { return __atomic_load_n(&epoch_, __ATOMIC_RELAXED); }
  // A committed string as one word (this file's epoch and the entry's catalog position), for
  // memos outside the writer that may be read torn or stale: string_at() takes any word and
  // gives the text and id only if it names a committed string entry of the file open now.
  uint64_t string_ref(const char* stored) const;
  const char* string_at(uint64_t ref, uint32_t* id) const;
  uint32_t intern_stack(const uint64_t* ips, uint32_t depth);
  uint32_t intern_py_stack(const format::PyFrame* frames, uint32_t depth);

  // Catalog records that are never overwritten.
  // `ld_library_path`: the environment's LD_LIBRARY_PATH (null if unset), for explaining searches.
  void write_process(const char* exe, const char* cwd, int argc, const char* const* argv,
                     const char* ld_library_path = nullptr);
  // Returns the object id; `stored`, if given, receives the catalog's copy of the entry (valid
  // while epoch() is the same, and in a fork child until release_inherited()).
  uint32_t add_object(const format::ObjectLoadEntry& entry,
                      const format::ObjectLoadEntry** stored = nullptr);
  void object_unloaded(uint32_t object_id, uint64_t seq);
  void object_promoted(uint32_t object_id, uint64_t seq);
  void add_override(const format::OverrideEntry& entry);
  void set_config_path(const char* path);

  // Events: reserve a seq when the call starts (so nested calls and loaded objects can refer to
  // it), fill the slot, commit it when the call returns. commit() computes the checksum.
  uint64_t reserve_seq();
  // A seq may be committed twice (a dlopen's in-flight mark, then its event): the later copy
  // replaces the earlier one. A slot that holds a newer seq is never overwritten.
  void commit(format::EventSlot& slot);  // slot.seq must be a reserved seq

  // How the process ended (kRunning again: an exec failed). Async-signal-safe.
  void set_end(format::EndKind kind, int32_t code, format::EndVia via = format::kEndViaNone,
               uint32_t exec_target = format::kNoId);

  format::FileHeader* header() { return header_; }

 private:
  struct InternTable;
  static constexpr uint64_t kNoOffset = ~uint64_t{0};

  int create_fallback(const char* base);

  // Catalog entries: reserve `total` bytes (a multiple of 8), fill the payload in place, then
  // commit (size, id, checksum, and the tag last). reserve_catalog counts a miss in the header.
  uint64_t reserve_catalog(uint64_t total);
  void commit_catalog(uint64_t offset, format::CatalogType type, uint32_t id, uint64_t total);
  uint32_t append_catalog(format::CatalogType type, uint32_t id, const void* payload,
                          size_t payload_size, const void* tail, size_t tail_size,
                          uint64_t* offset_out);
  uint32_t intern(InternTable* table, format::CatalogType type, uint32_t* counter, const void* head,
                  size_t head_size, const void* body, size_t body_size, uint32_t hash);

  // The file grows by zero-written chunks ahead of the writers, each mapped at its place in the
  // reserved image and listed in the header's extents (format.h): the file holds what the trace
  // holds. Zeros, not posix_fallocate: its unwritten extents cost ~0.1 ms per first-touched page
  // on ext4. Nothing is written past the backed frontier (the image is PROT_NONE there).
  bool ensure_backed(uint64_t* backed, uint64_t needed_end, uint64_t region_offset,
                     uint64_t region_size);
  uint64_t grown_end(uint64_t have, uint64_t needed_end, uint64_t region_size) const;
  bool back_range(uint64_t logical, uint64_t length);
  bool add_chunk(int fd, uint64_t logical, uint64_t length);
  bool map_chunk(int fd, uint64_t file_offset, uint64_t logical, uint64_t length);
  int open_by_path() const;
  bool write_zeros(int fd, uint64_t file_offset, uint64_t length) const;
  void prefetch_slot(uint64_t index) const;
  void commit_unbacked(format::EventSlot& slot, uint64_t index);
  bool claim_contended(uint64_t* dst, uint64_t seq);
  inline void fill_claimed(uint64_t* dst, const format::EventSlot& slot);

  format::FileHeader* header_ = nullptr;
  unsigned char* base_ = nullptr;            // the reserved logical image (header_ once published)
  unsigned char* inherited_base_ = nullptr;  // a fork child: the parent's image, until released
  uint64_t inherited_size_ = 0;
  uint64_t granule_ = 4096;  // chunk boundaries: a multiple of the page size
  uint64_t file_dev_ = 0;    // the trace file's identity, checked before any write
  uint64_t file_ino_ = 0;
  char abs_path_[4096] = {};     // path_ made absolute at creation (the program may chdir)
  uint64_t backed_catalog_ = 0;  // catalog bytes backed, from the catalog's start
  uint64_t backed_ring_ = 0;     // ring bytes backed, from the ring's start
  int extending_ = 0;            // one thread backs at a time
  int backing_failed_ = 0;  // the file cannot grow: later events and entries past it are dropped
  unsigned char* catalog_ = nullptr;
  format::EventSlot* ring_ = nullptr;
  uint64_t slot_mask_ = 0;  // slot_count - 1 (slot_count is a power of two)
  uint64_t catalog_size_ = 0;
  uint64_t mapping_size_ = 0;
  char path_[4096] = {};
  char note_[2 * sizeof path_ + 256] = {};  // open(): why the file is not where the pattern says
  uint32_t epoch_ = 0;
  bool fallback_ = false;
  // Intern tables live in anonymous mappings made by open().
  InternTable* strings_ = nullptr;
  InternTable* stacks_ = nullptr;
  InternTable* py_stacks_ = nullptr;
};

}  // namespace dltrace::preload

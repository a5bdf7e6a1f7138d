// The recorder's side of the trace file. See trace_writer.h for the rules (no malloc after open,
// no locks, no dl* calls) and include/dltrace/format.h for the layout.
#include "trace_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cstddef>

#include "bench_ablation.h"
#include "bounded_text.h"
#include "common/version.h"
#include "run_report.h"
#include "self_exe.h"

namespace dltrace::preload {

namespace {

using format::CatalogEntryHeader;
using format::EventSlot;
using format::FileHeader;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMinCatalog = 64 * 1024;
constexpr uint64_t kTableCapacity = 1u << 16;  // entries per intern table (power of two)

// An intern table's word, read as by an acquire load but with a write access (a compare-exchange
// of 0 with 0 changes nothing): the tables are fresh anonymous memory and hashed, so most lookups
// at start-up touch a page for the first time, and a read first maps the zero page that the
// insert then copies: two faults (~7 us together on this project's virtual machine) where a
// write is one (~1.7 us).
inline uint64_t probe_word(uint64_t* word) {
  uint64_t seen = 0;
  __atomic_compare_exchange_n(word, &seen, 0, false, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE);
  return seen;
}
constexpr uint32_t kMaxProbes = 64;  // past this the table counts as full
// A key's slots, in the order they are probed: first kHotProbes slots in the table's first page
// (kHotSlots words), then kMaxProbes from the hash's own slot. A process's first keys (the start-up
// object table's names: a dozen) all land in that one page, one page fault instead of one per
// key; once a key's hot slots are taken they stay taken (nothing is removed), so lookups and
// inserts agree on where a key is.
constexpr uint32_t kHotProbes = 4;
constexpr uint64_t kHotSlots = kPage / sizeof(uint64_t);
constexpr uint32_t kProbes = kHotProbes + kMaxProbes;
inline uint64_t probe_slot(uint32_t hash, uint32_t probe) {
  return probe < kHotProbes ? (hash + probe) & (kHotSlots - 1)
                            : (hash + (probe - kHotProbes)) & (kTableCapacity - 1);
}
constexpr uint32_t kMaxStackDepth = 4096;
// Backed at creation: enough for the process record and the object table of a small program, and
// 256 events. With the 4 KiB header a process that makes no dl* call leaves 64 KiB on disk.
constexpr uint64_t kFirstCatalog = 28 * 1024;
constexpr uint64_t kFirstRing = 32 * 1024;
// Later chunks: half of what the region has (the file stays within 1.5x of what it holds), at
// least kMinChunk, at most max(kChunkCap, region / kChunksPerRegion) (few extents, few syscalls).
constexpr uint64_t kMinChunk = 64 * 1024;
constexpr uint64_t kChunkCap = 1024 * 1024;
constexpr uint64_t kChunksPerRegion = 32;
// How long a record waits for another thread to back the chunk it falls in before it is dropped.
constexpr uint64_t kMaxBackingWaitNs = 200'000'000;

// ---- atomics on mapped memory (the mapping is shared with other threads and processes) ----
template <typename T>
T fetch_add(T* p, T v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
template <typename T>
void store_release(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
template <typename T>
void store_relaxed(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

uint64_t now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

uint64_t round_up(uint64_t v, uint64_t to) {
  return (v + to - 1) / to * to;
}

// strerrordesc_np: the untranslated text, no locale machinery, no allocation.
const char* error_text(int err) {
  const char* s = strerrordesc_np(err);
  return s ? s : "Unknown error";
}

void set_error(char* error, size_t error_size, const char* what, const char* path, int err) {
  if (!error || !error_size) return;
  Text t(error, error_size);
  t.add(what).add(" ").add(path).add(": ").add(error_text(err));
}

void add_size(Text& t, uint64_t bytes) {
  if (bytes % (1u << 30) == 0)
    t.add(bytes >> 30).add(" GiB");
  else if (bytes % (1u << 20) == 0)
    t.add(bytes >> 20).add(" MiB");
  else if (bytes % (1u << 10) == 0)
    t.add(bytes >> 10).add(" KiB");
  else
    t.add(bytes).add(" bytes");
}

// Expands %p (`pid`), %e and %% of DLTRACE_OUTPUT; a trailing '/' names a directory.
bool expand_pattern(const char* pattern, uint64_t pid, char* out, size_t out_size) {
  Text t(out, out_size);
  char exe[4096] = {};  // a whole path: exe_basename reads the link into it
  auto expand = [&](const char* p) {
    for (; *p; ++p) {
      if (p[0] == '%' && p[1] == 'p') {
        t.add(pid);
        ++p;
      } else if (p[0] == '%' && p[1] == 'e') {
        if (!exe[0]) exe_basename(exe, sizeof exe, /*keep=*/true);
        t.add(exe);
        ++p;
      } else if (p[0] == '%' && p[1] == '%') {
        t.add("%", 1);
        ++p;
      } else {
        t.add(p, 1);
      }
    }
  };
  expand(pattern);
  size_t n = strlen(pattern);
  if (n && pattern[n - 1] == '/') expand("dltrace.%e.%p.trace");
  return !t.overflow;
}

// `path` made absolute against the working directory at creation: the program may chdir later.
bool absolute_path(const char* path, char* out, size_t out_size) {
  Text t(out, out_size);
  if (path[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == nullptr) return false;
    t.add(cwd).add("/");
  }
  t.add(path);
  return !t.overflow;
}

// `base` with ".N" inserted before a ".trace" extension, or appended.
bool with_suffix(const char* base, uint64_t n, char* out, size_t out_size) {
  Text t(out, out_size);
  size_t len = strlen(base);
  const char* ext = ".trace";
  size_t ext_len = 6;
  bool has_ext =
      len > ext_len && strcmp(base + len - ext_len, ext) == 0 && base[len - ext_len - 1] != '/';
  size_t stem = has_ext ? len - ext_len : len;
  t.add(base, stem).add(".").add(uint64_t(n));
  if (has_ext) t.add(ext);
  return !t.overflow;
}

constexpr unsigned kNumberedSuffixes = 16;  // .1 ... .16 (an exec keeps the pid), then:
constexpr unsigned kRandomSuffixes = 16;    // random ones, so that planted names cannot block us

uint64_t random_suffix() {
  uint64_t v = 0;
  if (getrandom(&v, sizeof v, GRND_NONBLOCK) != ssize_t(sizeof v))
    v = now_ns(CLOCK_MONOTONIC) ^ (uint64_t(getpid()) << 40) ^
        uint64_t(reinterpret_cast<uintptr_t>(&v));
  return v;
}

constexpr int kCreateFlags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;

// Creates a new file named `base` (relative to `dirfd`) with O_EXCL and O_NOFOLLOW, mode 0600
// less the umask (open() takes the umask's bits back with one fchmod where it took any); if the
// name exists, the first free suffixed name (see kNumberedSuffixes). The name used goes to `out`.
// Returns the descriptor, or -1 with errno.
int create_new(int dirfd, const char* base, char* out, size_t out_size) {
  for (unsigned attempt = 0; attempt <= kNumberedSuffixes + kRandomSuffixes; ++attempt) {
    const bool fits =
        attempt == 0 ? !Text(out, out_size).add(base).overflow
                     : with_suffix(base, attempt <= kNumberedSuffixes ? attempt : random_suffix(),
                                   out, out_size);
    if (!fits) {
      errno = ENAMETOOLONG;
      return -1;
    }
    const int fd = ::openat(dirfd, out, kCreateFlags, 0600);
    if (fd >= 0) return fd;
    if (errno != EEXIST) return -1;
  }
  return -1;  // errno is EEXIST
}

// What an existing path is, for the sentence that refuses it.
const char* file_kind(mode_t mode) {
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// What DLTRACE_OUTPUT names, if it exists. A symlink is followed only if it is ours or root's:
// one planted by another user (in a shared directory) only takes the name. A device, FIFO or
// socket is refused if it is ours or root's (only root makes devices); another user's FIFO only
// takes the name, so that nobody else can turn our recording off.
enum class Target { kFree, kDirectory, kRefused, kTaken };

Target classify(const char* path, mode_t* mode) {
  struct stat st;
  if (lstat(path, &st) != 0) return Target::kFree;
  const uid_t me = geteuid();
  if (S_ISLNK(st.st_mode) && ((st.st_uid != me && st.st_uid != 0) || stat(path, &st) != 0))
    return Target::kTaken;  // another user's, or dangling
  *mode = st.st_mode;
  if (S_ISDIR(st.st_mode)) return Target::kDirectory;
  if (S_ISREG(st.st_mode) || (st.st_uid != me && st.st_uid != 0)) return Target::kTaken;
  return Target::kRefused;
}

// The fallback directory /tmp/dltrace-<euid>, made 0700 if missing. Used only if it is a real
// directory (not a symlink) owned by us with mode 0700: another user cannot plant it, nor read
// what goes in. Returns an O_DIRECTORY descriptor (the files are created relative to it), or -1.
int open_fallback_dir(char* dir, size_t dir_size) {
  if (Text(dir, dir_size).add("/tmp/dltrace-").add(uint64_t(geteuid())).overflow) return -1;
  const bool created = mkdir(dir, 0700) == 0;
  const int fd = ::open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  bool ok = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid();
  if (ok && created && (st.st_mode & 07777) != 0700)  // the umask took bits from our own mkdir
    ok = fchmod(fd, 0700) == 0 && fstat(fd, &st) == 0;
  if (!ok || (st.st_mode & 07777) != 0700) {
    ::close(fd);
    errno = EPERM;
    return -1;
  }
  return fd;
}

}  // namespace

// An open-addressing table of catalog entries, in anonymous memory. A word is
// (hash << 32) | (catalog offset / 8 + 1); 0 is empty. Published with CAS after the catalog entry
// is committed, so a reader that sees a word may read the entry it points to.
struct TraceWriter::InternTable {
  uint64_t words[kTableCapacity];
};

namespace {

// The three intern tables in one mapping (one mmap at start-up, not three); each is unmapped on
// its own (unmap_table), a part of the mapping at a time.
constexpr size_t kTableBytes = sizeof(uint64_t) * kTableCapacity;
constexpr int kTables = 3;

unsigned char* map_tables() {
  void* p = mmap(nullptr, kTableBytes * kTables, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<unsigned char*>(p);
}

template <typename Table>
void unmap_table(Table*& t) {
  if (t) munmap(t, kTableBytes);
  t = nullptr;
}

}  // namespace

// Where the configured place cannot take the trace: /tmp/dltrace-<euid>/<the same name>. `reason`
// (in note_) says why; returns the descriptor (path_ names the file, and the move is reported), or
// -1 with the reason extended. No big buffers on the stack: a fork child may run on a small one.
int TraceWriter::create_fallback(const char* base) {
  const int dirfd = open_fallback_dir(path_, sizeof path_);
  const size_t dir_len = strlen(path_);
  const char* slash = strrchr(base, '/');
  const char* name = slash ? slash + 1 : base;
  int fd = -1;
  if (dirfd >= 0 && dir_len + 1 < sizeof path_) {
    path_[dir_len] = '/';
    fd = create_new(dirfd, name, path_ + dir_len + 1, sizeof path_ - dir_len - 1);
  }
  const int err = errno;
  if (dirfd >= 0) ::close(dirfd);
  const size_t len = strlen(note_);
  if (fd < 0) {
    path_[dir_len] = '\0';
    Text(note_ + len, sizeof note_ - len)
        .add(" (nor in ")
        .add(path_)
        .add(": ")
        .add(error_text(err))
        .add(")");
    path_[0] = '\0';
    return -1;
  }
  Text(note_ + len, sizeof note_ - len).add("; recording to ").add(path_).add(" instead");
  report_problem("fallback", note_);
  note_[len] = '\0';
  return fd;
}

bool TraceWriter::open(const char* pattern, uint64_t buffer_size, uint32_t stack_depth, char* error,
                       size_t error_size) {
  if (error && error_size) error[0] = '\0';
  if (header_) {
    Text(error, error_size).add("trace file already open: ").add(path_);
    return false;
  }
  if (!pattern || !*pattern) {
    Text(error, error_size).add("empty trace file name");
    return false;
  }
  const uint64_t pid = uint64_t(getpid());
  char base[sizeof path_];
  if (!expand_pattern(pattern, pid, base, sizeof base)) {
    Text(error, error_size).add("trace file name too long: ").add(pattern);
    return false;
  }

  // O_EXCL: an exec'ed image keeps the pid, and must not clobber its predecessor's trace. The
  // name itself first: where it is free (the common case) that is the only syscall here.
  int fd = -1;
  if (!Text(path_, sizeof path_).add(base).overflow) {
    fd = ::openat(AT_FDCWD, path_, kCreateFlags, 0600);
  } else {
    errno = ENAMETOOLONG;
  }
  if (fd < 0 && errno == EEXIST) {
    // An existing directory is a directory, as if the pattern ended in '/'. Any other existing
    // target that is not a regular file (a device, a FIFO) is refused: never /dev/full.1.
    mode_t mode = 0;
    Target target = classify(base, &mode);
    if (target == Target::kDirectory) {
      char name[256];
      const size_t len = strlen(base);
      if (!expand_pattern("dltrace.%e.%p.trace", pid, name, sizeof name) ||
          Text(base + len, sizeof base - len).add("/").add(name).overflow) {
        Text(error, error_size).add("trace file name too long: ").add(pattern);
        path_[0] = '\0';
        return false;
      }
      target = classify(base, &mode);
    }
    if (target == Target::kRefused) {
      Text(error, error_size)
          .add("refusing to write the trace to ")
          .add(base)
          .add(": it is ")
          .add(file_kind(mode));
      path_[0] = '\0';
      return false;
    }
    fd = create_new(AT_FDCWD, base, path_, sizeof path_);
  }
  if (fd < 0 && errno == ENAMETOOLONG) {
    Text(error, error_size).add("trace file name too long: ").add(base);
    path_[0] = '\0';
    return false;
  }
  if (fd < 0) {
    set_error(note_, sizeof note_, "cannot create", base, errno);
    path_[0] = '\0';
    if (fallback_) fd = create_fallback(base);
    if (fd < 0) {
      Text(error, error_size).add(note_);
      return false;
    }
  }

  // Layout: see "Sizing" in format.h. Chunks are mapped at their place in the image, so every
  // chunk boundary is a multiple of the page size (4 KiB here; larger pages get larger chunks).
  const uint64_t system_page = getauxval(AT_PAGESZ);  // already imported: no new symbol to bind
  const uint64_t granule = system_page > kPage ? system_page : kPage;
  granule_ = granule;
  uint64_t file_size = round_up(
      buffer_size < format::kMinBufferSize ? format::kMinBufferSize : buffer_size, granule);
  uint64_t catalog_min = file_size / 4 > kMinCatalog ? round_up(file_size / 4, kPage) : kMinCatalog;
  uint64_t ring_room = (file_size - format::kHeaderSize - catalog_min) / format::kSlotSize;
  uint64_t slot_count = 1;
  while (slot_count * 2 <= ring_room) slot_count *= 2;
  uint64_t ring_size = slot_count * format::kSlotSize;
  uint64_t catalog_size = file_size - format::kHeaderSize - ring_size;
  const uint64_t first_catalog =
      catalog_size < kFirstCatalog
          ? catalog_size
          : round_up(format::kHeaderSize + kFirstCatalog, granule) - format::kHeaderSize;
  const uint64_t first_ring = ring_size < kFirstRing ? ring_size : round_up(kFirstRing, granule);

  auto fail = [&](const char* what, int err) {
    mapping_size_ = 0;
    if (error && error_size) {
      Text t(error, error_size);
      t.add(what).add(" ");
      if (err == ENOSPC || err == EFBIG || err == EDQUOT) {
        add_size(t, format::kHeaderSize + first_catalog + first_ring);
        t.add(" for ");
      }
      t.add(path_).add(": ").add(error_text(err));
    }
    ::close(fd);
    unlink(path_);
    path_[0] = '\0';
    return false;
  };

  // The logical image is reserved (no access, no memory), and the file is grown chunk by chunk
  // into it: the header with the first catalog chunk, then the first ring chunk.
  void* map =
      mmap(nullptr, file_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED) return fail("cannot map", errno);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    munmap(map, file_size);
    return fail("cannot stat", err);
  }
  // Mode 0600 whatever the umask: where it took bits away (it never adds any), they go back.
  if ((st.st_mode & 07777) != 0600) fchmod(fd, 0600);
  // From here on the file is reached through the mapping only: a descriptor kept open could be
  // closed by the program (closefrom, dup2) and its number reused for one of the program's files.
  file_dev_ = uint64_t(st.st_dev);
  file_ino_ = uint64_t(st.st_ino);
  if (!absolute_path(path_, abs_path_, sizeof abs_path_)) abs_path_[0] = '\0';
  mapping_size_ = file_size;
  base_ = static_cast<unsigned char*>(map);
  // The first two chunks (the header with the first catalog chunk, then the first ring chunk),
  // as add_chunk places them in the new, empty file, backed by one write of zeros.
  const uint64_t first_chunk = format::kHeaderSize + first_catalog;
  const uint64_t ring_file_offset = round_up(first_chunk, granule);
  if (!write_zeros(fd, 0, ring_file_offset + first_ring) || !map_chunk(fd, 0, 0, first_chunk) ||
      !map_chunk(fd, ring_file_offset, format::kHeaderSize + catalog_size, first_ring)) {
    const int err = errno;
    munmap(map, file_size);
    base_ = nullptr;
    return fail("cannot reserve", err);
  }
  unsigned char* tables = map_tables();
  if (tables == nullptr) {
    int err = errno;
    munmap(map, file_size);
    base_ = nullptr;
    return fail("cannot allocate intern tables for", err);
  }
  strings_ = reinterpret_cast<InternTable*>(tables);
  stacks_ = reinterpret_cast<InternTable*>(tables + kTableBytes);
  py_stacks_ = reinterpret_cast<InternTable*>(tables + 2 * kTableBytes);
  ::close(fd);
  backed_catalog_ = first_catalog;
  backed_ring_ = first_ring;
  extending_ = 0;
  backing_failed_ = 0;

  auto* h = static_cast<FileHeader*>(map);
  memcpy(h->magic, format::kMagic, sizeof h->magic);
  h->version = format::kVersion;
  h->header_size = format::kHeaderSize;
  h->file_size = file_size;
  h->catalog_offset = format::kHeaderSize;
  h->catalog_size = catalog_size;
  h->ring_offset = format::kHeaderSize + catalog_size;
  h->slot_count = slot_count;
  h->slot_size = format::kSlotSize;
  h->stack_depth = stack_depth;
  h->pid = int32_t(pid);
  h->ppid = getppid();
  h->start_realtime_ns = now_ns(CLOCK_REALTIME);
  h->start_monotonic_ns = now_ns(CLOCK_MONOTONIC);
  h->exe = format::kNoId;
  h->config = format::kNoId;
  h->next_seq = 1;
  h->end_kind = uint32_t(format::EndKind::kRunning);
  h->exec_target = format::kNoId;
  h->run_token = run_token();
  memcpy(h->recorder_version, kBuildVersionTag,
         strnlen(kBuildVersionTag, sizeof h->recorder_version - 1));  // the file is zeros

  catalog_ = static_cast<unsigned char*>(map) + h->catalog_offset;
  ring_ = reinterpret_cast<EventSlot*>(static_cast<unsigned char*>(map) + h->ring_offset);
  slot_mask_ = slot_count - 1;
  catalog_size_ = catalog_size;
  mapping_size_ = file_size;
  __atomic_store_n(&epoch_, epoch_ + 1, __ATOMIC_RELAXED);
  // Publish the header last so that is_open() implies a complete layout.
  store_release(&header_, h);
  return true;
}

void TraceWriter::close() {
  if (base_) munmap(base_, mapping_size_);
  header_ = nullptr;
  base_ = nullptr;
  backed_catalog_ = backed_ring_ = 0;
  extending_ = backing_failed_ = 0;
  unmap_table(strings_);
  unmap_table(stacks_);
  unmap_table(py_stacks_);
  catalog_ = nullptr;
  ring_ = nullptr;
  mapping_size_ = 0;
  path_[0] = '\0';
}

// The child's mapping is its own after fork (munmap does not touch the file), and the tables are
// private copies: dropping both leaves the parent's trace untouched.
void TraceWriter::abandon_after_fork() {
  release_inherited();
  inherited_base_ = base_;
  inherited_size_ = mapping_size_;
  base_ = nullptr;  // close() leaves the image mapped
  close();
}

void TraceWriter::release_inherited() {
  if (inherited_base_) munmap(inherited_base_, inherited_size_);
  inherited_base_ = nullptr;
  inherited_size_ = 0;
}

// ---- backing the file ahead of the writers ----

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000  // Linux 4.17
#endif

namespace {
// Zeros to write from: read-only data, a page of the library's file that is mapped already (or
// comes with its neighbours), never a fresh page of memory.
const char kZeros[4096] = {};

bool disk_full(int err) {
  return err == ENOSPC || err == EDQUOT || err == EFBIG;
}

}  // namespace

// Grows the file by `length` bytes of zeros at its end and maps them at `logical` in the image,
// then publishes the extent: a write through the mapping only ever lands on blocks allocated first
// (a page the file system cannot allocate, on a full disk, would kill the program with SIGBUS when
// touched), and a reader finds every chunk that may hold a record. `fd` must be the trace: it is
// checked by device and inode first, so a file planted at the trace's path is never written.
bool TraceWriter::add_chunk(int fd, uint64_t logical, uint64_t length) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || uint64_t(st.st_dev) != file_dev_ ||
      uint64_t(st.st_ino) != file_ino_) {
    errno = ESTALE;  // not the trace: never write into a file that is not ours
    return false;
  }
  const uint64_t file_offset = round_up(uint64_t(st.st_size), granule_);
  if (!write_zeros(fd, file_offset, length) || !map_chunk(fd, file_offset, logical, length)) {
    const int err = errno;
    if (ftruncate(fd, st.st_size) != 0) {
      // The partial chunk stays: it is no extent, so readers never look at it.
    }
    errno = err;
    return false;
  }
  return true;
}

// Maps [file_offset, +length) of the trace, already written, at `logical` in the image and
// publishes the extent.
bool TraceWriter::map_chunk(int fd, uint64_t file_offset, uint64_t logical, uint64_t length) {
  auto* h = reinterpret_cast<FileHeader*>(base_);
  const uint32_t count = logical == 0 ? 0 : __atomic_load_n(&h->extent_count, __ATOMIC_RELAXED);
  const format::FileExtent* last = count ? &h->extents[count - 1] : nullptr;
  const bool continues = last && last->logical_offset + last->length == logical &&
                         last->file_offset + last->length == file_offset;
  if (!continues && count >= format::kMaxExtents) {
    errno = EFBIG;  // not reached: ensure_backed takes the rest of the region before that
    return false;
  }
  void* chunk = mmap(base_ + logical, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
                     off_t(file_offset));
  if (chunk == MAP_FAILED) {
    const int err = errno;
    // A failed MAP_FIXED may have unmapped the reservation there: take the range back, so that
    // nothing else is mapped inside the image (close() unmaps all of it).
    mmap(base_ + logical, length, PROT_NONE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    errno = err;
    return false;
  }
  // Small pages: the traced process's resident size grows by what the trace holds, 4 KiB at a
  // time, not by whole 2 MiB folios of the page cache.
  madvise(chunk, length, MADV_NOHUGEPAGE);
  if (continues) {
    store_release(&h->extents[count - 1].length, last->length + length);
  } else {
    h->extents[count] = format::FileExtent{logical, file_offset, length};
    store_release(&h->extent_count, count + 1);
  }
  return true;
}

// Backs [logical, +length) of the image through the trace opened by its absolute path for the
// moment (never a descriptor kept open: the program may close it and reuse the number). Where
// the path no longer leads to the trace (moved, deleted, opening forbidden by a sandbox), the file
// cannot grow: false with errno ESTALE (or open's error).
bool TraceWriter::back_range(uint64_t logical, uint64_t length) {
  const int fd = open_by_path();
  if (fd < 0) return false;
  const bool ok = add_chunk(fd, logical, length);
  const int err = errno;
  ::close(fd);
  errno = err;
  return ok;
}

// The trace, opened by its absolute path for one write, or -1.
int TraceWriter::open_by_path() const {
  if (!abs_path_[0]) {
    errno = ENOENT;
    return -1;
  }
  // Read-write: a shared writable mapping needs both.
  return ::open(abs_path_, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
}

// Zeros into [file_offset, +length) through `fd`: one page of zeros repeated in an iovec, so
// that the kernel reads (and faults in) one page of ours, not one per page written.
bool TraceWriter::write_zeros(int fd, uint64_t file_offset, uint64_t length) const {
  // 64 KiB per write, as before the zero page: a larger write makes larger page-cache folios,
  // which a reader of the trace then maps whole (the viewer's RSS: scale_bounded_memory).
  constexpr int kIovecs = 16;
  iovec iov[kIovecs];
  while (length > 0) {
    int n = 0;
    uint64_t batch = 0;
    for (; n < kIovecs && batch < length; ++n) {
      const uint64_t part = length - batch < sizeof kZeros ? length - batch : sizeof kZeros;
      iov[n] = iovec{const_cast<char*>(kZeros), size_t(part)};
      batch += part;
    }
    const ssize_t w = pwritev(fd, iov, n, off_t(file_offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = ENOSPC;
      return false;
    }
    file_offset += uint64_t(w);
    length -= uint64_t(w);
  }
  return true;
}

// How far a region grows past `have` bytes when `needed_end` must be backed (see kMinChunk).
uint64_t TraceWriter::grown_end(uint64_t have, uint64_t needed_end, uint64_t region_size) const {
  uint64_t cap = region_size / kChunksPerRegion;
  if (cap < kChunkCap) cap = kChunkCap;
  uint64_t step = have / 2;
  if (step < kMinChunk) step = kMinChunk;
  if (step > cap) step = cap;
  uint64_t want = round_up(needed_end > have + step ? needed_end : have + step, granule_);
  // Near the end of the extent table, one last chunk takes the rest of the region.
  const uint32_t count = __atomic_load_n(&header_->extent_count, __ATOMIC_RELAXED);
  if (count + 2 >= format::kMaxExtents) want = region_size;
  return want < region_size ? want : region_size;
}

// Makes [0, needed_end) of a region backed, growing it by a chunk (grown_end). Returns false
// when the file cannot grow (a full disk, or the path no longer leads to the trace): the caller
// drops its record (events then count as dropped, entries as catalog_dropped) instead of faulting
// on an unbacked page.
bool TraceWriter::ensure_backed(uint64_t* backed, uint64_t needed_end, uint64_t region_offset,
                                uint64_t region_size) {
  uint64_t waiting_since = 0;
  for (unsigned spins = 0;; ++spins) {
    if (__atomic_load_n(backed, __ATOMIC_ACQUIRE) >= needed_end) return true;
    if (__atomic_load_n(&backing_failed_, __ATOMIC_ACQUIRE)) return false;
    int idle = 0;
    if (__atomic_compare_exchange_n(&extending_, &idle, 1, false, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED)) {
      const uint64_t have = __atomic_load_n(backed, __ATOMIC_ACQUIRE);
      uint64_t grown = 0;  // bytes backed from `have` on by this thread
      if (have < needed_end) {
        const uint64_t want = grown_end(have, needed_end, region_size);
        if (back_range(region_offset + have, want - have)) {
          __atomic_store_n(backed, want, __ATOMIC_RELEASE);
          grown = want - have;
        } else {
          // The one line the user gets (none with DLTRACE_QUIET=1; `dltrace run` says it then):
          // the process runs on, the trace keeps what it has.
          const int err = errno;
          const bool full = disk_full(err);
          const bool gone = err == ESTALE || err == ENOENT;
          char line[sizeof path_ + 160];
          Text t(line, sizeof line);
          t.add("cannot extend ").add(path_).add(": ");
          if (gone) t.add("the path no longer leads to the trace (");
          t.add(error_text(err));
          if (gone) t.add(")");
          t.add("; later events are not recorded");
          report_problem("stopped", line);
          __atomic_store_n(&backing_failed_, 1, __ATOMIC_RELEASE);
          __atomic_fetch_or(
              &header_->recorder_flags,
              uint32_t{full ? format::kRecorderBackingFailed : format::kRecorderGrowthStopped},
              __ATOMIC_RELAXED);
        }
      }
      __atomic_store_n(&extending_, 0, __ATOMIC_RELEASE);
      // A region grows when the process records a lot: the new pages (in the page cache already,
      // written by back_range) are mapped writable in one call instead of one write fault each
      // on the recording path. After the chunk is published and the next growth is free: other
      // threads write into it meanwhile (their faults and this are safe together), and none
      // waits for it. The first chunks are left to fault in: an idle process touches few of
      // them. Kernels before 5.14 refuse the advice, and the pages fault in one at a time.
      if (grown != 0) madvise(base_ + region_offset + have, grown, MADV_POPULATE_WRITE);
      continue;
    }
    if (spins > 64) sched_yield();  // another thread is writing the next chunk (~100 us)
    // Bounded: the one extending may be this very thread, interrupted by a signal whose handler
    // records (an exec or _exit from a handler). Then this record is dropped, not waited for.
    // Bounded in time, not in spins: with more recording threads than CPUs a yield returns at
    // once, and 100k of them passed while the extending thread waited for a CPU (one event of
    // 160k dropped by 8 threads on 2 busy cores).
    if ((spins & 1023) == 1023) {
      const uint64_t now = now_ns(CLOCK_MONOTONIC);
      if (waiting_since == 0)
        waiting_since = now;
      else if (now - waiting_since > kMaxBackingWaitNs)
        return false;
    }
  }
}

// ---- catalog ----

uint64_t TraceWriter::reserve_catalog(uint64_t total) {
  if (!header_ || total > catalog_size_) {
    if (header_) fetch_add(&header_->catalog_dropped, uint64_t{1});
    return kNoOffset;
  }
  uint64_t off = fetch_add(&header_->catalog_used, total);
  if (off > catalog_size_ - total ||
      !ensure_backed(&backed_catalog_, off + total, header_->catalog_offset, catalog_size_)) {
    fetch_add(&header_->catalog_dropped, uint64_t{1});
    return kNoOffset;
  }
  return off;
}

void TraceWriter::commit_catalog(uint64_t off, format::CatalogType type, uint32_t id,
                                 uint64_t total) {
  auto* e = reinterpret_cast<CatalogEntryHeader*>(catalog_ + off);
  e->size = uint32_t(total);
  e->id = id;
  // Padding bytes are still the zeros the backing wrote: the catalog is never reused.
  e->checksum = format::checksum(catalog_ + off + sizeof *e, total - sizeof *e);
  store_release(&e->tag, format::catalog_tag(type));
}

uint32_t TraceWriter::append_catalog(format::CatalogType type, uint32_t id, const void* payload,
                                     size_t payload_size, const void* tail, size_t tail_size,
                                     uint64_t* offset_out) {
  uint64_t total = round_up(sizeof(CatalogEntryHeader) + uint64_t(payload_size) + tail_size, 8);
  uint64_t off = reserve_catalog(total);
  if (offset_out) *offset_out = off;
  if (off == kNoOffset) return format::kNoId;
  unsigned char* body = catalog_ + off + sizeof(CatalogEntryHeader);
  if (payload_size) memcpy(body, payload, payload_size);
  if (tail_size) memcpy(body + payload_size, tail, tail_size);
  commit_catalog(off, type, id, total);
  return id;
}

// ---- interning ----

// Looks `key` (type, head, body) up in `table`; on a miss appends it with a fresh id from
// `*counter` and publishes it. Duplicate ids for one key are possible when two threads race.
uint32_t TraceWriter::intern(InternTable* table, format::CatalogType type, uint32_t* counter,
                             const void* head, size_t head_size, const void* body, size_t body_size,
                             uint32_t hash) {
  if (!header_) return format::kNoId;
  const uint32_t tag = format::catalog_tag(type);
  const uint64_t entry_size = round_up(sizeof(CatalogEntryHeader) + head_size + body_size, 8);
  auto entry_at = [&](uint64_t word) {
    return reinterpret_cast<const CatalogEntryHeader*>(catalog_ + ((word & 0xFFFFFFFFu) - 1) * 8);
  };
  auto matches = [&](const CatalogEntryHeader* e) {
    const auto* p = reinterpret_cast<const unsigned char*>(e + 1);
    return e->tag == tag && e->size == entry_size && memcmp(p, head, head_size) == 0 &&
           memcmp(p + head_size, body, body_size) == 0;
  };

  uint32_t probes = 0;
  for (; probes < kProbes; ++probes) {
    uint64_t word = probe_word(&table->words[probe_slot(hash, probes)]);
    if (word == 0) break;
    if (uint32_t(word >> 32) == hash && matches(entry_at(word))) return entry_at(word)->id;
  }

  uint32_t id = fetch_add(counter, uint32_t{1});
  uint64_t off;
  if (append_catalog(type, id, head, head_size, body, body_size, &off) == format::kNoId)
    return format::kNoId;
  if (off / 8 + 1 > 0xFFFFFFFFu) return id;  // beyond what a table word can name: no dedup

  const uint64_t mine = (uint64_t(hash) << 32) | (off / 8 + 1);
  for (; probes < kProbes; ++probes) {
    uint64_t expected = 0;
    if (__atomic_compare_exchange_n(&table->words[probe_slot(hash, probes)], &expected, mine, false,
                                    __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
      return id;
    // Someone else took the slot; if it is the same key we keep our (duplicate) id anyway.
  }
  return id;  // table region full: written, not deduplicated
}

uint32_t TraceWriter::intern_string(const char* text, size_t length, const char** stored) {
  if (!text || !header_ || length > 0xFFFFFFF0u) return format::kNoId;
  format::StringEntry head{uint32_t(length), 0};
  uint32_t hash = format::checksum(text, length, 0x5354u);
  // `text` need not be NUL-terminated at `length`: the catalog copy gets its own NUL.
  const uint32_t tag = format::catalog_tag(format::CatalogType::kString);
  const uint64_t entry_size = round_up(sizeof(CatalogEntryHeader) + sizeof head + length + 1, 8);
  uint32_t probes = 0;
  for (; probes < kProbes; ++probes) {
    uint64_t word = probe_word(&strings_->words[probe_slot(hash, probes)]);
    if (word == 0) break;
    if (uint32_t(word >> 32) != hash) continue;
    uint64_t off = ((word & 0xFFFFFFFFu) - 1) * 8;
    const auto* e = reinterpret_cast<const CatalogEntryHeader*>(catalog_ + off);
    const auto* s = reinterpret_cast<const format::StringEntry*>(e + 1);
    if (e->tag == tag && e->size == entry_size && s->length == length &&
        memcmp(s + 1, text, length) == 0) {
      if (stored) *stored = reinterpret_cast<const char*>(s + 1);
      return e->id;
    }
  }

  uint32_t id = fetch_add(&header_->next_string_id, uint32_t{1});
  uint64_t off = reserve_catalog(entry_size);
  if (off == kNoOffset) return format::kNoId;
  unsigned char* body = catalog_ + off + sizeof(CatalogEntryHeader);
  memcpy(body, &head, sizeof head);
  memcpy(body + sizeof head, text, length);
  body[sizeof head + length] = '\0';
  commit_catalog(off, format::CatalogType::kString, id, entry_size);
  if (stored) *stored = reinterpret_cast<const char*>(body + sizeof head);
  if (off / 8 + 1 > 0xFFFFFFFFu) return id;

  const uint64_t mine = (uint64_t(hash) << 32) | (off / 8 + 1);
  for (; probes < kProbes; ++probes) {
    uint64_t expected = 0;
    if (__atomic_compare_exchange_n(&strings_->words[probe_slot(hash, probes)], &expected, mine,
                                    false, __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
      break;
  }
  return id;
}

uint64_t TraceWriter::string_ref(const char* stored) const {
  const auto off = uint64_t(reinterpret_cast<const unsigned char*>(stored) - catalog_) -
                   sizeof(CatalogEntryHeader) - sizeof(format::StringEntry);
  return (uint64_t(epoch()) << 32) | (off / 8);
}

const char* TraceWriter::string_at(uint64_t ref, uint32_t* id) const {
  const FileHeader* h = __atomic_load_n(&header_, __ATOMIC_ACQUIRE);
  if (h == nullptr || uint32_t(ref >> 32) != epoch()) return nullptr;
  const uint64_t off = (ref & 0xFFFFFFFFu) * 8;
  // Within the backed catalog: past it the image is not mapped (a reference from a memo that was
  // read torn may point anywhere).
  if (off + sizeof(CatalogEntryHeader) + sizeof(format::StringEntry) >
          __atomic_load_n(&h->catalog_used, __ATOMIC_RELAXED) ||
      off + sizeof(CatalogEntryHeader) + sizeof(format::StringEntry) >
          __atomic_load_n(&backed_catalog_, __ATOMIC_ACQUIRE))
    return nullptr;
  const auto* e = reinterpret_cast<const CatalogEntryHeader*>(catalog_ + off);
  if (__atomic_load_n(&e->tag, __ATOMIC_ACQUIRE) !=
      format::catalog_tag(format::CatalogType::kString))
    return nullptr;
  *id = e->id;
  return reinterpret_cast<const char*>(e + 1) + sizeof(format::StringEntry);
}

uint32_t TraceWriter::intern_string(const char* text) {
  return text ? intern_string(text, strlen(text)) : format::kNoId;
}

uint32_t TraceWriter::intern_stack(const uint64_t* ips, uint32_t depth) {
  if (!ips || depth == 0 || depth > kMaxStackDepth || !header_) return format::kNoId;
  size_t body = size_t(depth) * sizeof *ips;
  uint32_t hash = format::checksum(ips, body, 0x5354414Bu);
  format::StackEntry head{depth, hash};
  return intern(stacks_, format::CatalogType::kStack, &header_->next_stack_id, &head, sizeof head,
                ips, body, hash);
}

uint32_t TraceWriter::intern_py_stack(const format::PyFrame* frames, uint32_t depth) {
  if (!frames || depth == 0 || depth > kMaxStackDepth || !header_) return format::kNoId;
  size_t body = size_t(depth) * sizeof *frames;
  uint32_t hash = format::checksum(frames, body, 0x50595354u);
  format::StackEntry head{depth, hash};
  return intern(py_stacks_, format::CatalogType::kPyStack, &header_->next_pystack_id, &head,
                sizeof head, frames, body, hash);
}

// ---- catalog records ----

void TraceWriter::write_process(const char* exe, const char* cwd, int argc, const char* const* argv,
                                const char* ld_library_path) {
  if (!header_) return;
  if (argc < 0 || !argv) argc = 0;
  uint32_t llp = ld_library_path ? intern_string(ld_library_path) : format::kNoId;
  format::ProcessEntry entry{intern_string(exe), intern_string(cwd), uint32_t(argc),
                             llp == format::kNoId ? 0 : llp + 1};
  if (entry.exe != format::kNoId) store_release(&header_->exe, entry.exe);
  // argv ids are written straight into the reserved entry: no buffer of unknown size needed.
  uint64_t total = round_up(sizeof(CatalogEntryHeader) + sizeof entry + uint64_t(argc) * 4, 8);
  uint64_t off = reserve_catalog(total);
  if (off == kNoOffset) return;
  unsigned char* body = catalog_ + off + sizeof(CatalogEntryHeader);
  memcpy(body, &entry, sizeof entry);
  for (int i = 0; i < argc; ++i) {
    uint32_t id = intern_string(argv[i]);
    memcpy(body + sizeof entry + size_t(i) * 4, &id, 4);
  }
  commit_catalog(off, format::CatalogType::kProcess, format::kNoId, total);
}

uint32_t TraceWriter::add_object(const format::ObjectLoadEntry& entry,
                                 const format::ObjectLoadEntry** stored) {
  if (stored) *stored = nullptr;
  if (!header_) return format::kNoId;
  uint32_t id = fetch_add(&header_->next_object_id, uint32_t{1});
  uint64_t offset = kNoOffset;
  id = append_catalog(format::CatalogType::kObjectLoad, id, &entry, sizeof entry, nullptr, 0,
                      &offset);
  if (stored && id != format::kNoId)
    *stored = reinterpret_cast<const format::ObjectLoadEntry*>(catalog_ + offset +
                                                               sizeof(CatalogEntryHeader));
  return id;
}

void TraceWriter::object_unloaded(uint32_t object_id, uint64_t seq) {
  format::ObjectStateEntry e{seq};
  append_catalog(format::CatalogType::kObjectUnload, object_id, &e, sizeof e, nullptr, 0, nullptr);
}

void TraceWriter::object_promoted(uint32_t object_id, uint64_t seq) {
  format::ObjectStateEntry e{seq};
  append_catalog(format::CatalogType::kObjectPromote, object_id, &e, sizeof e, nullptr, 0, nullptr);
}

void TraceWriter::add_override(const format::OverrideEntry& entry) {
  append_catalog(format::CatalogType::kOverride, format::kNoId, &entry, sizeof entry, nullptr, 0,
                 nullptr);
}

void TraceWriter::set_config_path(const char* path) {
  if (!header_) return;
  uint32_t id = intern_string(path);
  if (id != format::kNoId) store_release(&header_->config, id);
}

// ---- events ----

uint64_t TraceWriter::reserve_seq() {
  return header_ ? fetch_add(&header_->next_seq, uint64_t{1}) : 0;
}

void TraceWriter::commit(format::EventSlot& slot) {
  if (!header_ || slot.seq == 0 || ablation::left_out(ablation::kEventCommit)) return;
  // Checksum and copy straight from the caller's slot: a staging copy costs more (~8 ns) in
  // store-forwarding stalls than it saves.
  slot.checksum = format::slot_checksum(reinterpret_cast<const unsigned char*>(&slot) + 16);
  const uint64_t seq = slot.seq;
  const uint64_t index = (seq - 1) & slot_mask_;
  // Acquire: the chunk another thread mapped before publishing the frontier is this thread's to
  // touch only through that release (a plain load on x86-64; TSan sees the edge).
  if (__builtin_expect(
          index * format::kSlotSize >= __atomic_load_n(&backed_ring_, __ATOMIC_ACQUIRE), 0))
    return commit_unbacked(slot, index);
  auto* dst = reinterpret_cast<uint64_t*>(ring_ + index);
  // Claim the slot by swapping its seq for kSlotBusy: a reader (or a crash) between here and the
  // final store sees "not committed".
  uint64_t current = __atomic_load_n(&dst[0], __ATOMIC_ACQUIRE);
  if (__builtin_expect(current >= seq, 0) ||
      !__atomic_compare_exchange_n(&dst[0], &current, format::kSlotBusy, false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    if (!claim_contended(dst, seq)) return;
  }
  fill_claimed(dst, slot);
  prefetch_slot((index + 1) & slot_mask_);
}

// Past the backed frontier: back the ring up to this slot first (or drop the event on a full
// disk: it is counted as dropped), then commit as usual.
__attribute__((noinline)) void TraceWriter::commit_unbacked(format::EventSlot& slot,
                                                            uint64_t index) {
  if (!ensure_backed(&backed_ring_, (index + 1) * format::kSlotSize, header_->ring_offset,
                     (slot_mask_ + 1) * format::kSlotSize))
    return;
  auto* dst = reinterpret_cast<uint64_t*>(ring_ + index);
  if (!claim_contended(dst, slot.seq)) return;
  fill_claimed(dst, slot);
}

// The slot is being written by another thread (kSlotBusy), or holds a seq at least ours. A late
// commit of an old seq (reserved long ago, e.g. around a long dlopen) must not overwrite a newer
// event that already lapped it: the ring keeps the newest events, and the old one counts as
// dropped. True once the slot is ours.
__attribute__((noinline)) bool TraceWriter::claim_contended(uint64_t* dst, uint64_t seq) {
  uint64_t current = __atomic_load_n(&dst[0], __ATOMIC_ACQUIRE);
  for (unsigned spins = 0;;) {
    if (current == format::kSlotBusy) {  // another writer is mid-commit in this slot
      if (++spins > 10000) return false;
      if (spins > 64) sched_yield();
      current = __atomic_load_n(&dst[0], __ATOMIC_ACQUIRE);
      continue;
    }
    if (current > seq) return false;
    if (__atomic_compare_exchange_n(&dst[0], &current, format::kSlotBusy, true, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
      return true;
  }
}

void TraceWriter::fill_claimed(uint64_t* dst, const format::EventSlot& slot) {
  // may_alias: these loads must see the checksum just stored through EventSlot's own type.
  using AliasingWord = uint64_t __attribute__((may_alias));
  const auto* words = reinterpret_cast<const AliasingWord*>(&slot);
#if defined(__SANITIZE_THREAD__)
  for (size_t w = 1; w < format::kSlotSize / 8; ++w) store_relaxed(&dst[w], words[w]);
#else
  // The slot is ours until the release store below publishes it, and no reader in this process
  // looks at it before that: a plain (vectorised) copy is enough.
  memcpy(dst + 1, words + 1, format::kSlotSize - 8);
#endif
  store_release(&dst[0], slot.seq);
}

// The next slot is one ring lap cold: fetch it for writing now, off the next commit's path.
void TraceWriter::prefetch_slot(uint64_t index) const {
  if (index * format::kSlotSize < __atomic_load_n(&backed_ring_, __ATOMIC_RELAXED)) {
    __builtin_prefetch(ring_ + index, 1, 3);
    __builtin_prefetch(reinterpret_cast<const char*>(ring_ + index) + 64, 1, 3);
  }
}

void TraceWriter::set_end(format::EndKind kind, int32_t code, format::EndVia via,
                          uint32_t exec_target) {
  FileHeader* h = __atomic_load_n(&header_, __ATOMIC_ACQUIRE);
  if (!h) return;
  store_relaxed(&h->end_code, code);
  store_relaxed(&h->end_via, uint32_t(via));
  store_relaxed(&h->exec_target, exec_target);
  store_relaxed(&h->end_monotonic_ns, now_ns(CLOCK_MONOTONIC));
  store_release(&h->end_kind, uint32_t(kind));
}

}  // namespace dltrace::preload

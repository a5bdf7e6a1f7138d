// TraceWriter: file naming, creation failures, layout, interning.
#include <sys/mount.h>
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "trace_test_support.h"

using namespace dltrace;
using dltrace::test::file_exists;
using dltrace::test::make_event;
using dltrace::test::open_writer;
using dltrace::test::ScratchDir;

namespace {

std::string open_pattern(preload::TraceWriter& w, const std::string& pattern,
                         uint64_t size = format::kMinBufferSize) {
  char error[512] = {};
  if (!w.open(pattern.c_str(), size, 8, error, sizeof error)) return std::string("error: ") + error;
  std::string path = w.path();
  w.close();
  return path;
}

// A tmpfs of `size` mounted at `path` for the test's lifetime (we run as root in CI). Where
// mounting is not allowed, the full-disk tests are skipped with a warning.
struct SmallTmpfs {
  std::string path;
  bool mounted = false;
  SmallTmpfs(std::string where, const char* size) : path(std::move(where)) {
    REQUIRE(mkdir(path.c_str(), 0755) == 0);
    mounted = mount("tmpfs", path.c_str(), "tmpfs", 0, (std::string("size=") + size).c_str()) == 0;
    if (!mounted)
      WARN("cannot mount a small tmpfs (" << std::strerror(errno) << "); full-disk test skipped");
  }
  ~SmallTmpfs() {
    if (mounted) umount2(path.c_str(), MNT_DETACH);
  }
};

}  // namespace

TEST_CASE("DLTRACE_OUTPUT patterns expand %p, %e and a trailing '/'", "[trace][writer]") {
  ScratchDir dir;
  preload::TraceWriter w;
  std::string pid = std::to_string(getpid());
  // The test binary is unit_tests (or ring_tsan_test under TSan): %e is its basename.
  std::string exe = program_invocation_short_name;

  CHECK(open_pattern(w, dir.file("t.%p.trace")) == dir.file("t." + pid + ".trace"));
  CHECK(open_pattern(w, dir.file("%e-%p-100%%.trace")) ==
        dir.file(exe + "-" + pid + "-100%.trace"));
  CHECK(open_pattern(w, dir.path() + "/") == dir.file("dltrace." + exe + "." + pid + ".trace"));
  CHECK(file_exists(dir.file("dltrace." + exe + "." + pid + ".trace")));
}

TEST_CASE("an existing file is never overwritten: .1, .2, ... are tried", "[trace][writer]") {
  ScratchDir dir;
  preload::TraceWriter w;
  CHECK(open_pattern(w, dir.file("x.trace")) == dir.file("x.trace"));
  CHECK(open_pattern(w, dir.file("x.trace")) == dir.file("x.1.trace"));
  CHECK(open_pattern(w, dir.file("x.trace")) == dir.file("x.2.trace"));
  CHECK(open_pattern(w, dir.file("out")) == dir.file("out"));
  CHECK(open_pattern(w, dir.file("out")) == dir.file("out.1"));
  // The first file still holds its own header.
  std::string error;
  CHECK(TraceReader::open(dir.file("x.trace"), &error));
}

TEST_CASE("a file that cannot be created gives one sentence and leaves nothing",
          "[trace][writer]") {
  ScratchDir dir;
  preload::TraceWriter w;
  std::string missing = dir.file("no/such/dir/x.trace");
  CHECK(open_pattern(w, missing) ==
        "error: cannot create " + missing + ": No such file or directory");
  CHECK_FALSE(w.is_open());
  CHECK(dir.entries().empty());

  // An unwritable directory. Root ignores permissions, so try as 'nobody' in a child process.
  std::string ro = dir.file("ro");
  REQUIRE(mkdir(ro.c_str(), 0555) == 0);
  int pipefd[2];
  REQUIRE(pipe(pipefd) == 0);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(2);
    preload::TraceWriter cw;
    char error[512] = {};
    bool ok = cw.open((ro + "/x.trace").c_str(), format::kMinBufferSize, 8, error, sizeof error);
    ssize_t n = write(pipefd[1], error, strlen(error));
    _exit(ok ? 1 : n >= 0 ? 0 : 3);
  }
  close(pipefd[1]);
  char buf[512] = {};
  ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
  close(pipefd[0]);
  int status = 0;
  waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 2) {
    WARN("cannot drop privileges to test an unwritable directory");
  } else {
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(std::string(buf, n > 0 ? size_t(n) : 0) ==
          "cannot create " + ro + "/x.trace: Permission denied");
    CHECK_FALSE(file_exists(ro + "/x.trace"));
  }
}

TEST_CASE("a full disk fails cleanly with ENOSPC and removes the file", "[trace][writer]") {
  ScratchDir dir;
  SmallTmpfs small(dir.file("small"), "128k");
  if (!small.mounted) return;
  const std::string& mnt = small.path;
  // Leave less than the 64 KiB a new trace backs at creation (header and first chunks).
  const std::string filler = mnt + "/filler";
  std::ofstream(filler, std::ios::binary) << std::string(96 * 1024, 'f');
  preload::TraceWriter w;
  std::string path = mnt + "/x.trace";
  CHECK(open_pattern(w, path, 1 << 20) ==
        "error: cannot reserve 64 KiB for " + path + ": No space left on device");
  CHECK_FALSE(w.is_open());
  CHECK_FALSE(file_exists(path));
  // Once there is room again, the same directory takes the trace.
  std::remove(filler.c_str());
  CHECK(open_pattern(w, path, 1 << 20) == path);
}

TEST_CASE("the header describes the layout", "[trace][writer]") {
  ScratchDir dir;
  preload::TraceWriter w;
  REQUIRE(open_writer(w, dir.file("h.trace"), 64ull << 20, 32) == "");
  const format::FileHeader& h = *w.header();
  CHECK(std::memcmp(h.magic, format::kMagic, 8) == 0);
  CHECK(h.version == format::kVersion);
  CHECK(h.file_size == 64ull << 20);
  CHECK(h.catalog_offset == format::kHeaderSize);
  CHECK(h.catalog_size >= (64ull << 20) / 4);
  CHECK(h.ring_offset == h.catalog_offset + h.catalog_size);
  CHECK(h.ring_offset + h.slot_count * format::kSlotSize == h.file_size);
  CHECK((h.slot_count & (h.slot_count - 1)) == 0);
  CHECK(h.stack_depth == 32);
  CHECK(h.next_seq == 1);
  CHECK(h.pid == getpid());
  CHECK(h.end_kind == uint32_t(format::EndKind::kRunning));
  struct stat st {};
  REQUIRE(stat(w.path(), &st) == 0);
  // file_size is the image the trace may grow to; the file holds the header and the first chunks
  // (64 KiB in all, what a process that makes no dl* call leaves), in ls -l as on disk.
  CHECK(uint64_t(st.st_size) == 64 * 1024);
  CHECK(uint64_t(st.st_blocks) * 512 >= 64 * 1024);
  CHECK(uint64_t(st.st_blocks) * 512 <= 80 * 1024);
  // Two extents: the header with the first 28 KiB of catalog, then the first 32 KiB of ring.
  REQUIRE(h.extent_count == 2);
  CHECK(h.extents[0].logical_offset == 0);
  CHECK(h.extents[0].file_offset == 0);
  CHECK(h.extents[0].length == 32 * 1024);
  CHECK(h.extents[1].logical_offset == h.ring_offset);
  CHECK(h.extents[1].file_offset == 32 * 1024);
  CHECK(h.extents[1].length == 32 * 1024);
  CHECK((st.st_mode & 0777) == 0600);
  w.close();

  // Tiny requests get the minimum.
  REQUIRE(open_writer(w, dir.file("tiny.trace"), 1000) == "");
  CHECK(w.header()->file_size == format::kMinBufferSize);
  CHECK(w.header()->catalog_size >= 64 * 1024);
  w.close();
}

TEST_CASE("interning deduplicates strings and stacks", "[trace][writer]") {
  ScratchDir dir;
  preload::TraceWriter w;
  REQUIRE(open_writer(w, dir.file("i.trace"), 4 << 20) == "");
  std::vector<std::string> names;
  for (int i = 0; i < 50; ++i) names.push_back("symbol_" + std::to_string(i * 7919));
  std::vector<uint32_t> first(50);
  for (int i = 0; i < 50; ++i) first[i] = w.intern_string(names[i].c_str());
  for (int round = 0; round < 1000000 / 50; ++round)
    for (int i = 0; i < 50; ++i) REQUIRE(w.intern_string(names[i].c_str()) == first[i]);
  CHECK(w.header()->next_string_id == 50);
  // A length-bounded intern of a prefix is a different string; the empty string is a string.
  uint32_t prefix = w.intern_string(names[0].c_str(), 6);
  CHECK(prefix != first[0]);
  CHECK(w.intern_string("symbol") == prefix);
  uint32_t empty = w.intern_string("");
  CHECK(w.intern_string("", 0) == empty);
  CHECK(w.intern_string(nullptr) == format::kNoId);

  uint64_t a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 5};
  uint32_t sa = w.intern_stack(a, 4);
  CHECK(w.intern_stack(a, 4) == sa);
  CHECK(w.intern_stack(b, 4) != sa);
  CHECK(w.intern_stack(a, 3) != sa);
  CHECK(w.intern_stack(a, 0) == format::kNoId);
  format::PyFrame f[1] = {{first[0], first[1], 10, 0}};
  uint32_t pa = w.intern_py_stack(f, 1);
  CHECK(w.intern_py_stack(f, 1) == pa);
  f[0].line = 11;
  CHECK(w.intern_py_stack(f, 1) != pa);
  w.close();

  std::string error;
  auto r = TraceReader::open(dir.file("i.trace"), &error);
  REQUIRE(r);
  for (int i = 0; i < 50; ++i) CHECK(r->string(first[i]) == names[i]);
  CHECK(r->string(prefix) == "symbol");
  CHECK(r->has_string(empty));
  CHECK(r->string(empty) == "");
  CHECK(r->recovery().clean());
}

TEST_CASE("more distinct strings than the intern table holds are still written",
          "[trace][writer]") {
  ScratchDir dir;
  preload::TraceWriter w;
  REQUIRE(open_writer(w, dir.file("many.trace"), 64 << 20) == "");
  const int n = 100000;  // more than the table's 65536 entries
  std::vector<uint32_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = w.intern_string(("s" + std::to_string(i)).c_str());
  w.close();
  std::string error;
  auto r = TraceReader::open(dir.file("many.trace"), &error);
  REQUIRE(r);
  for (int i = 0; i < n; i += 997) {
    REQUIRE(ids[i] != format::kNoId);
    CHECK(r->string(ids[i]) == "s" + std::to_string(i));
  }
}

TEST_CASE("abandon_after_fork leaves the parent's file alone", "[trace][writer]") {
  ScratchDir dir;
  preload::TraceWriter w;
  REQUIRE(open_writer(w, dir.file("parent.trace"), format::kMinBufferSize) == "");
  format::EventSlot e = make_event(w.reserve_seq());
  w.commit(e);
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    w.abandon_after_fork();
    bool ok = !w.is_open() && w.reserve_seq() == 0;
    char error[512];
    ok = ok &&
         w.open(dir.file("child.trace").c_str(), format::kMinBufferSize, 8, error, sizeof error);
    format::EventSlot c = make_event(w.reserve_seq());
    w.commit(c);
    _exit(ok && c.seq == 1 ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  e = make_event(w.reserve_seq());
  CHECK(e.seq == 2);
  w.commit(e);
  w.close();
  std::string error;
  auto parent = TraceReader::open(dir.file("parent.trace"), &error);
  REQUIRE(parent);
  CHECK(parent->last_seq() == 2);
  auto kid = TraceReader::open(dir.file("child.trace"), &error);
  REQUIRE(kid);
  CHECK(kid->last_seq() == 1);
  CHECK(kid->process().pid == child);
}

TEST_CASE("set_end records how the process ended", "[trace][writer]") {
  ScratchDir dir;
  preload::TraceWriter w;
  REQUIRE(open_writer(w, dir.file("end.trace"), format::kMinBufferSize) == "");
  w.set_end(format::EndKind::kSignal, 11);
  w.close();
  std::string error;
  auto r = TraceReader::open(dir.file("end.trace"), &error);
  REQUIRE(r);
  CHECK(r->process().end == format::EndKind::kSignal);
  CHECK(r->process().end_code == 11);
}

// A measurement, not run by ctest: unit_tests "[.bench]". The minimum over many short windows
// keeps preemption on a loaded machine out of the number.
TEST_CASE("cost of interning a seen string and committing one event", "[.bench]") {
  ScratchDir dir;
  preload::TraceWriter w;
  REQUIRE(open_writer(w, dir.file("bench.trace"), 64 << 20) == "");
  const char* names[4] = {"PyInit__ctypes", "sqlite3_open_v2", "EVP_CIPHER_CTX_new", "zlibVersion"};
  for (auto* n : names) w.intern_string(n);
  auto best_ns = [](auto&& body) {
    double best = 1e9;
    for (int window = 0; window < 2000; ++window) {
      auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < 1000; ++i) body(i);
      std::chrono::duration<double, std::nano> d = std::chrono::steady_clock::now() - start;
      best = std::min(best, d.count() / 1000);
    }
    return best;
  };
  format::EventSlot proto = make_event(0);
  volatile uint32_t sink = 0;
  double intern = best_ns([&](int i) { sink = sink + w.intern_string(names[i & 3]); });
  double commit = best_ns([&](int i) {
    format::EventSlot e = proto;
    e.seq = w.reserve_seq();
    e.result = i;
    w.commit(e);
  });
  double both = best_ns([&](int i) {
    format::EventSlot e = proto;
    e.seq = w.reserve_seq();
    e.name = w.intern_string(names[i & 3]);
    w.commit(e);
  });
  WARN("intern_string (seen): " << intern << " ns; reserve_seq + commit: " << commit
                                << " ns; reserve + intern + commit: " << both << " ns");
  CHECK(both < 1000);  // an order of magnitude off means something is badly wrong
  w.close();
}

TEST_CASE("a disk that fills up while recording drops later events, never faults",
          "[trace][writer]") {
  ScratchDir dir;
  SmallTmpfs small(dir.file("filling"), "1m");
  if (!small.mounted) return;
  const std::string& mnt = small.path;
  preload::TraceWriter w;
  const std::string path = mnt + "/x.trace";
  // 64 MiB does not fit in 1 MiB, but the first chunks do: recording starts.
  REQUIRE(open_writer(w, path, 64ull << 20) == "");
  const uint64_t total = 20000;  // ~2.5 MiB of slots: the backing must run out on the way
  for (uint64_t i = 0; i < total; ++i) {
    format::EventSlot e = make_event(w.reserve_seq());
    w.commit(e);  // would SIGBUS here if it wrote to an unbacked page
  }
  CHECK((w.header()->recorder_flags & format::kRecorderBackingFailed) != 0);
  w.close();
  std::string error;
  auto r = TraceReader::open(path, &error);
  REQUIRE(r);
  uint64_t readable = 0, expected_seq = 1;
  bool in_order = true;
  r->for_each_event([&](const format::EventSlot& e) {
    in_order = in_order && e.seq == expected_seq++;
    ++readable;
    return true;
  });
  CHECK(in_order);  // the events that fit are the first ones, contiguous
  CHECK(readable > 0);
  CHECK(readable < total);
  CHECK(r->recovery().dropped_events == total - readable);
  bool noted = false;
  for (const auto& n : r->recovery().notes)
    noted = noted || n.find("disk filled up") != std::string::npos;
  CHECK(noted);
}

namespace {
// Commits `count` events (enough to make the writer back further chunks of the ring).
void commit_events(preload::TraceWriter& w, uint64_t count) {
  for (uint64_t i = 0; i < count; ++i) {
    format::EventSlot e = make_event(w.reserve_seq());
    w.commit(e);
  }
}

uint64_t readable_events(const std::string& path) {
  std::string error;
  auto r = TraceReader::open(path, &error);
  REQUIRE(r);
  uint64_t n = 0;
  r->for_each_event([&](const format::EventSlot&) {
    ++n;
    return true;
  });
  return n;
}
}  // namespace

TEST_CASE("the trace grows without a kept descriptor, also when its path is gone",
          "[trace][writer]") {
  ScratchDir dir;
  const std::string path = dir.file("moved.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, 64ull << 20) == "");
  const uint64_t total = 20000;  // ~2.5 MiB of slots: several chunks past the first
  SECTION("the path still leads to the trace: zeros written by path") {
    commit_events(w, total);
    CHECK((w.header()->recorder_flags & format::kRecorderBackingFailed) == 0);
    w.close();
    CHECK(readable_events(path) == total);
  }
  SECTION("moved away, and another file put in its place: that file is never written") {
    const std::string moved = dir.file("elsewhere.trace");
    REQUIRE(std::rename(path.c_str(), moved.c_str()) == 0);
    const std::string theirs(3 << 20, 'A');  // as large as the trace grows
    std::ofstream(path, std::ios::binary) << theirs;
    const uint64_t backed_slots = w.header()->extents[1].length / format::kSlotSize;
    commit_events(w, total);  // the file cannot grow: what does not fit is dropped
    CHECK((w.header()->recorder_flags & format::kRecorderGrowthStopped) != 0);
    CHECK((w.header()->recorder_flags & format::kRecorderBackingFailed) == 0);
    w.close();
    std::ifstream in(path, std::ios::binary);
    const std::string now((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(now == theirs);
    // The events whose slots were backed are there; the reader says why the rest is not.
    CHECK(readable_events(moved) == backed_slots);
    std::string error;
    auto r = TraceReader::open(moved, &error);
    REQUIRE(r);
    CHECK(r->recovery().dropped_events == total - backed_slots);
    bool noted = false;
    for (const auto& n : r->recovery().notes)
      noted = noted || n.find("could not grow") != std::string::npos;
    CHECK(noted);
  }
}

TEST_CASE("the file grows with what the trace holds, and never past the buffer size",
          "[trace][writer][trace_size]") {
  ScratchDir dir;
  auto file_size = [](const std::string& path) {
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    return uint64_t(st.st_size);
  };
  SECTION("N events: about the size they use") {
    const std::string path = dir.file("n.trace");
    preload::TraceWriter w;
    REQUIRE(open_writer(w, path, 64ull << 20) == "");
    for (uint64_t n : {100u, 1000u, 10000u, 100000u}) {
      commit_events(w, n - (w.header()->next_seq - 1));
      const uint64_t used = format::kHeaderSize + w.header()->catalog_used + n * format::kSlotSize;
      const uint64_t size = file_size(path);
      INFO(n << " events: " << size << " bytes for " << used << " used");
      CHECK(size >= used);
      // A chunk is half of what the region has (at least 64 KiB): within 1.5x, and 128 KiB.
      CHECK(size <= used + used / 2 + 128 * 1024);
      CHECK(w.header()->extent_count < 16);
    }
    w.close();
    CHECK(readable_events(path) == 100000);
  }
  SECTION("a ring that wraps many times at a small buffer") {
    const std::string path = dir.file("wrap.trace");
    preload::TraceWriter w;
    REQUIRE(open_writer(w, path, format::kMinBufferSize) == "");
    const uint64_t slots = w.header()->slot_count;
    commit_events(w, 10 * slots + 7);
    // Strings until the catalog is full.
    std::string big(900, 'x');
    for (int i = 0; i < 400; ++i) {
      big[0] = char('a' + i % 26);
      big[1] = char('a' + i / 26 % 26);
      w.intern_string(big.c_str());
    }
    CHECK(w.header()->catalog_dropped > 0);
    w.close();
    CHECK(file_size(path) == format::kMinBufferSize);
    CHECK(readable_events(path) == slots);
  }
  SECTION("a large buffer: the extent table stays small") {
    const std::string path = dir.file("big.trace");
    preload::TraceWriter w;
    REQUIRE(open_writer(w, path, 1ull << 30) == "");
    // Alternate catalog and ring growth, the worst case for merging extents: 4 MiB of each.
    std::string text(4000, 's');
    for (uint64_t i = 0; i < 1000; ++i) {
      std::memcpy(text.data(), &i, sizeof i);
      w.intern_string(text.c_str(), text.size());
      commit_events(w, 32);
    }
    const format::FileHeader& h = *w.header();
    INFO(h.extent_count << " extents");
    CHECK(h.extent_count <= 40);
    CHECK(h.catalog_dropped == 0);
    const uint64_t used = format::kHeaderSize + h.catalog_used + (h.next_seq - 1) * 128;
    CHECK(file_size(path) <= used + used / 2 + 2 * 1024 * 1024);
    w.close();
    CHECK(readable_events(path) == 32000);
  }
}

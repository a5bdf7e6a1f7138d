// TraceReader: round trips of every record the writer produces, and recovery from wrapped,
// torn, truncated and corrupt files.
#include <catch2/catch.hpp>
#include <cstring>

#include "trace_test_support.h"

using namespace dltrace;
using dltrace::test::make_event;
using dltrace::test::open_writer;
using dltrace::test::read_file;
using dltrace::test::ScratchDir;
using dltrace::test::write_file;

namespace {

std::unique_ptr<TraceReader> open_ok(const std::string& path) {
  std::string error;
  auto r = TraceReader::open(path, &error);
  INFO(error);
  REQUIRE(r);
  return r;
}

std::vector<format::EventSlot> all_events(const TraceReader& r) {
  std::vector<format::EventSlot> out;
  r.for_each_event([&](const format::EventSlot& e) {
    out.push_back(e);
    return true;
  });
  return out;
}

std::string open_error(const void* data, size_t size) {
  std::string error;
  auto r = TraceReader::open_bytes(data, size, &error);
  CHECK_FALSE(r);
  return error;
}

// Offset of slot `index` in a trace file.
size_t slot_offset(const format::FileHeader& h, uint64_t index) {
  return test::file_offset_of(h, h.ring_offset + index * format::kSlotSize);
}

}  // namespace

TEST_CASE("every record type survives a write/read round trip", "[trace][reader]") {
  ScratchDir dir;
  std::string path = dir.file("all.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, 1 << 20, 16) == "");

  const char* argv[] = {"prog", "--flag", "arg with spaces"};
  w.write_process("/usr/bin/prog", "/home/u", 3, argv, "/opt/lib:$ORIGIN");
  w.set_config_path("/etc/dltrace.toml");

  format::ObjectLoadEntry exe{};
  exe.path = w.intern_string("/usr/bin/prog");
  exe.soname = format::kNoId;
  exe.cause = uint32_t(format::ObjectCause::kStartup);
  exe.parent = format::kNoId;
  exe.map_start = 0x400000;
  exe.map_end = 0x500000;
  exe.build_id_len = 3;
  exe.build_id[0] = 0xab;
  exe.build_id[1] = 0x01;
  exe.build_id[2] = 0xff;
  uint32_t exe_id = w.add_object(exe);

  uint64_t open_seq = w.reserve_seq();
  format::ObjectLoadEntry lib{};
  lib.path = w.intern_string("/opt/lib/libfoo.so.1");
  lib.soname = w.intern_string("libfoo.so.1");
  lib.cause = uint32_t(format::ObjectCause::kDlopen);
  lib.flags = format::kObjectGlobal;
  lib.parent = exe_id;
  lib.opened_by = open_seq;
  lib.load_seq = open_seq;
  lib.lmid = 0;
  lib.base = 0x7f0000000000;
  lib.map_start = 0x7f0000000000;
  lib.map_end = 0x7f0000010000;
  lib.link_map = 0x5555aaaa;
  uint32_t lib_id = w.add_object(lib);
  CHECK(exe_id == 0);
  CHECK(lib_id == 1);

  uint64_t ips[3] = {0x401000, 0x7f0000000100, 0x401234};
  uint32_t stack_id = w.intern_stack(ips, 3);
  format::PyFrame frames[2] = {{w.intern_string("app.py"), w.intern_string("<module>"), 3, 0},
                               {w.intern_string("lib.py"), w.intern_string("load"), 17, 0}};
  uint32_t py_id = w.intern_py_stack(frames, 2);
  w.add_override({open_seq, 4, 1, 0x101, 0});
  w.add_override({open_seq, 9, 0x101, 0x102, 0});

  format::EventSlot open_ev = make_event(open_seq, lib.path);
  open_ev.call = uint16_t(format::CallKind::kDlopen);
  open_ev.bits = format::kEventOk | format::kEventOverridden;
  open_ev.stack = stack_id;
  open_ev.py_stack = py_id;
  open_ev.object = lib_id;
  open_ev.flags = 1;
  open_ev.effective_flags = 0x102;
  open_ev.override_line = 9;
  open_ev.handle = lib.link_map;
  w.commit(open_ev);

  uint64_t sym_seq = w.reserve_seq();
  format::EventSlot sym_ev = make_event(sym_seq, w.intern_string("foo_init"));
  sym_ev.error = w.intern_string("undefined symbol: foo_init");
  sym_ev.bits = 0;
  sym_ev.parent_seq = open_seq;
  w.commit(sym_ev);

  uint64_t close_seq = w.reserve_seq();
  w.object_promoted(lib_id, sym_seq);
  w.object_unloaded(lib_id, close_seq);
  format::EventSlot close_ev = make_event(close_seq);
  close_ev.call = uint16_t(format::CallKind::kDlclose);
  close_ev.result = 0;
  w.commit(close_ev);
  w.set_end(format::EndKind::kExit, 3);
  w.close();

  auto r = open_ok(path);
  CHECK(r->recovery().clean());
  CHECK(r->recovery().dropped_events == 0);
  CHECK(r->last_seq() == 3);

  const ProcessInfo& p = r->process();
  CHECK(p.pid == getpid());
  CHECK(p.ppid == getppid());
  CHECK(p.exe == "/usr/bin/prog");
  CHECK(p.cwd == "/home/u");
  CHECK(p.argv == std::vector<std::string>{"prog", "--flag", "arg with spaces"});
  CHECK(p.ld_library_path == std::optional<std::string>("/opt/lib:$ORIGIN"));
  CHECK(p.end == format::EndKind::kExit);
  CHECK(p.end_code == 3);
  CHECK(p.end_monotonic_ns >= p.start_monotonic_ns);
  CHECK(p.stack_depth == 16);
  CHECK(p.config == "/etc/dltrace.toml");

  REQUIRE(r->objects().size() == 2);
  const ObjectRecord* o = r->object(lib_id);
  REQUIRE(o);
  CHECK(o->path == "/opt/lib/libfoo.so.1");
  CHECK(o->soname == "libfoo.so.1");
  CHECK(o->cause == format::ObjectCause::kDlopen);
  CHECK(o->global_at_load());
  CHECK(o->parent == exe_id);
  CHECK(o->opened_by == open_seq);
  CHECK(o->load_seq == open_seq);
  CHECK(o->link_map == 0x5555aaaa);
  CHECK(o->unload_seq == close_seq);
  CHECK(o->promote_seq == sym_seq);
  CHECK(r->object(exe_id)->build_id == "ab01ff");
  CHECK(r->object(exe_id)->soname.empty());
  CHECK(r->object(77) == nullptr);

  CHECK(r->object_at(0x7f0000000100, sym_seq) == o);
  CHECK(r->object_at(0x7f0000000100, close_seq) == nullptr);  // unloaded by then
  CHECK(r->object_at(0x7f0000010000, sym_seq) == nullptr);    // one past the end
  CHECK(r->object_at(0x400000, 0)->id == exe_id);
  CHECK(r->object_at(0x3fffff, 0) == nullptr);

  auto stack = r->stack(stack_id);
  CHECK(std::vector<uint64_t>(stack.begin(), stack.end()) == std::vector<uint64_t>(ips, ips + 3));
  auto py = r->py_stack(py_id);
  REQUIRE(py.size() == 2);
  CHECK(r->string(py[0].file) == "app.py");
  CHECK(r->string(py[1].function) == "load");
  CHECK(py[1].line == 17);
  CHECK(r->stack(12345).empty());

  auto ov = r->overrides_for(open_seq);
  REQUIRE(ov.size() == 2);
  CHECK(ov[0].line == 4);
  CHECK(ov[1].flags_after == 0x102);
  CHECK(r->overrides_for(sym_seq).empty());

  auto events = all_events(*r);
  REQUIRE(events.size() == 3);
  CHECK(std::memcmp(&events[0], &open_ev, sizeof open_ev) == 0);
  CHECK(std::memcmp(&events[1], &sym_ev, sizeof sym_ev) == 0);
  CHECK(std::memcmp(&events[2], &close_ev, sizeof close_ev) == 0);
  CHECK(r->string(events[1].name) == "foo_init");
  CHECK(r->string(events[1].error) == "undefined symbol: foo_init");
  CHECK(r->event(sym_seq)->parent_seq == open_seq);
  CHECK_FALSE(r->event(4));
  CHECK_FALSE(r->event(0));
  CHECK(r->string(format::kNoId) == "");
  CHECK_FALSE(r->has_string(format::kNoId));
}

TEST_CASE("a wrapped ring keeps the newest events and counts the dropped ones exactly",
          "[trace][reader]") {
  ScratchDir dir;
  std::string path = dir.file("wrap.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, format::kMinBufferSize) == "");
  const uint64_t slots = w.header()->slot_count;
  REQUIRE(slots >= 1024);
  const uint64_t total = slots * 3 + 123;
  for (uint64_t i = 0; i < total; ++i) {
    format::EventSlot e = make_event(w.reserve_seq());
    w.commit(e);
  }
  w.close();

  auto r = open_ok(path);
  CHECK(r->last_seq() == total);
  CHECK(r->recovery().dropped_events == total - slots);
  CHECK(r->recovery().torn_events == 0);
  auto events = all_events(*r);
  REQUIRE(events.size() == slots);
  for (uint64_t i = 0; i < slots; ++i) REQUIRE(events[i].seq == total - slots + 1 + i);
  CHECK(r->event(total - slots + 1));
  CHECK_FALSE(r->event(total - slots));
}

TEST_CASE("an event reserved but never committed leaves the older one in its slot, read first",
          "[trace][reader]") {
  ScratchDir dir;
  std::string path = dir.file("stale.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, format::kMinBufferSize) == "");
  const uint64_t slots = w.header()->slot_count;
  // Seqs 1..slots fill the ring; seq slots+1 (would overwrite seq 1) is reserved and never
  // committed, like a dlopen whose constructor crashed; seq slots+2 overwrites seq 2.
  for (uint64_t i = 0; i < slots; ++i) {
    format::EventSlot e = make_event(w.reserve_seq());
    w.commit(e);
  }
  uint64_t lost = w.reserve_seq();
  format::EventSlot e = make_event(w.reserve_seq());
  w.commit(e);
  w.close();

  auto r = open_ok(path);
  CHECK(r->last_seq() == slots + 2);
  CHECK(r->recovery().torn_events == 0);
  CHECK(r->recovery().dropped_events == 2);  // seq 2 (overwritten) and `lost`
  auto events = all_events(*r);
  REQUIRE(events.size() == slots);
  CHECK(events[0].seq == 1);
  CHECK(events[1].seq == 3);
  CHECK(events.back().seq == slots + 2);
  CHECK_FALSE(r->event(lost));
  CHECK(r->event(1));
}

TEST_CASE("torn slots are skipped and counted", "[trace][reader]") {
  ScratchDir dir;
  std::string path = dir.file("torn.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, format::kMinBufferSize) == "");
  for (int i = 0; i < 10; ++i) {
    format::EventSlot e = make_event(w.reserve_seq());
    w.commit(e);
  }
  format::FileHeader h = *w.header();
  w.close();

  auto bytes = read_file(path);
  // Seq 3: being written (seq zeroed, payload present). Seq 6: payload changed after the checksum.
  std::memset(&bytes[slot_offset(h, 2)], 0, 8);
  bytes[slot_offset(h, 5) + 40] ^= 0x10;
  // Seq 8: claims to be seq 9 (wrong slot for its seq).
  uint64_t wrong = 9;
  std::memcpy(&bytes[slot_offset(h, 7)], &wrong, 8);
  write_file(path, bytes.data(), bytes.size());

  auto r = open_ok(path);
  CHECK(r->recovery().torn_events == 3);
  CHECK(r->recovery().dropped_events == 3);
  CHECK_FALSE(r->recovery().clean());
  CHECK_FALSE(r->recovery().notes.empty());
  std::vector<uint64_t> seqs;
  for (auto& e : all_events(*r)) seqs.push_back(e.seq);
  CHECK(seqs == std::vector<uint64_t>{1, 2, 4, 5, 7, 9, 10});
  CHECK_FALSE(r->event(6));
}

// slot_checksum() is what tells a committed slot from a torn one or from garbage.
TEST_CASE("the slot checksum changes with every single-bit change and with a splice of two events",
          "[trace][reader]") {
  format::EventSlot a = test::make_event(41, 7);
  a.address = 0x7f0000123450;
  a.caller_ip = 0x555500001234;
  a.duration_ns = 812;
  format::EventSlot b = a;  // another event: every payload word differs from a's
  b.seq = 42;
  for (size_t at = 16; at < format::kSlotSize; at += 8) {
    uint64_t word;
    std::memcpy(&word, reinterpret_cast<unsigned char*>(&b) + at, 8);
    word += 0x0000000100000001ull;
    std::memcpy(reinterpret_cast<unsigned char*>(&b) + at, &word, 8);
  }
  auto payload = [](const format::EventSlot& e) {
    return reinterpret_cast<const unsigned char*>(&e) + 16;
  };
  const uint32_t sum_a = format::slot_checksum(payload(a));
  CHECK(format::slot_checksum(payload(b)) != sum_a);
  unsigned changed = 0, bits = 0;
  for (size_t byte = 16; byte < format::kSlotSize; ++byte) {
    for (int bit = 0; bit < 8; ++bit, ++bits) {
      format::EventSlot x = a;
      reinterpret_cast<unsigned char*>(&x)[byte] ^= static_cast<unsigned char>(1u << bit);
      changed += format::slot_checksum(payload(x)) != sum_a;
    }
  }
  CHECK(changed == bits);
  // Every split of a's payload followed by b's, at each 8-byte boundary (how a torn copy looks).
  for (size_t cut = 24; cut < format::kSlotSize; cut += 8) {
    format::EventSlot spliced = a;
    std::memcpy(reinterpret_cast<unsigned char*>(&spliced) + cut,
                reinterpret_cast<const unsigned char*>(&b) + cut, format::kSlotSize - cut);
    const uint32_t sum = format::slot_checksum(payload(spliced));
    CHECK(sum != sum_a);
    CHECK(sum != format::slot_checksum(payload(b)));
  }
}

TEST_CASE("a truncated file reads what is there", "[trace][reader]") {
  ScratchDir dir;
  std::string path = dir.file("full.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, format::kMinBufferSize) == "");
  uint32_t name = w.intern_string("dlsym_target");
  for (int i = 0; i < 100; ++i) {
    format::EventSlot e = make_event(w.reserve_seq(), name);
    w.commit(e);
  }
  format::FileHeader h = *w.header();
  w.close();

  auto bytes = read_file(path);
  // Keep the first 40 slots and half of the 41st.
  size_t cut = slot_offset(h, 40) + 64;
  write_file(path, bytes.data(), cut);
  auto r = open_ok(path);
  CHECK(r->recovery().truncated);
  CHECK_FALSE(r->recovery().notes.empty());
  CHECK(r->recovery().dropped_events == 60);
  auto events = all_events(*r);
  REQUIRE(events.size() == 40);
  CHECK(events.back().seq == 40);
  CHECK(r->string(events[0].name) == "dlsym_target");
  CHECK_FALSE(r->event(41));

  // Cut inside the catalog: the header is all that is left of the events.
  write_file(path, bytes.data(), format::kHeaderSize + 8);
  r = open_ok(path);
  CHECK(r->recovery().truncated);
  CHECK(all_events(*r).empty());
  CHECK(r->recovery().dropped_events == 100);
  CHECK(r->string(name) == "");
}

TEST_CASE("files that are not traces give one clear sentence", "[trace][reader]") {
  ScratchDir dir;
  std::string error;

  CHECK(open_error("", 0) == "empty file");
  write_file(dir.file("empty"), "", 0);
  CHECK_FALSE(TraceReader::open(dir.file("empty"), &error));
  CHECK(error == "empty file");

  CHECK_FALSE(TraceReader::open(dir.file("missing"), &error));
  CHECK(error == "cannot open " + dir.file("missing") + ": No such file or directory");

  std::vector<unsigned char> garbage(10000);
  for (size_t i = 0; i < garbage.size(); ++i)
    garbage[i] = static_cast<unsigned char>(i * 7919 + 13);
  CHECK(open_error(garbage.data(), garbage.size()) == "not a dltrace trace (bad magic)");
  CHECK(open_error("#!/bin/sh", 9) == "not a dltrace trace (bad magic)");
  CHECK(open_error("DLT", 3) == "truncated header");

  // A real header, then damaged.
  preload::TraceWriter w;
  REQUIRE(open_writer(w, dir.file("t.trace"), format::kMinBufferSize) == "");
  w.close();
  auto bytes = read_file(dir.file("t.trace"));
  CHECK(open_error(bytes.data(), 100) == "truncated header");
  auto wrong_version = bytes;
  uint32_t v = 7;
  std::memcpy(&wrong_version[8], &v, 4);
  CHECK(open_error(wrong_version.data(), wrong_version.size()) ==
        "trace format version 7 is not supported (this dltrace reads versions 2 to " +
            std::to_string(format::kVersion) + ")");
  auto wrong_magic = bytes;
  wrong_magic[0] = 'X';
  CHECK(open_error(wrong_magic.data(), wrong_magic.size()) == "not a dltrace trace (bad magic)");
  auto bad_layout = bytes;
  uint64_t huge = ~uint64_t{0} / 2;
  std::memcpy(&bad_layout[offsetof(format::FileHeader, slot_count)], &huge, 8);
  CHECK(open_error(bad_layout.data(), bad_layout.size()).find("corrupt trace header") == 0);
  std::vector<unsigned char> zeros(bytes.size());
  CHECK(open_error(zeros.data(), zeros.size()) == "not a dltrace trace (bad magic)");
}

TEST_CASE("a corrupt catalog entry is skipped and the reader resynchronises", "[trace][reader]") {
  ScratchDir dir;
  std::string path = dir.file("cat.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, format::kMinBufferSize) == "");
  uint32_t a = w.intern_string("first-string");
  uint32_t b = w.intern_string("second-string-that-is-damaged");
  uint32_t c = w.intern_string("third-string");
  format::FileHeader h = *w.header();
  w.close();

  auto bytes = read_file(path);
  // The second entry starts right after the first (16 header + 8 + "first-string\0" padded = 40).
  size_t second = test::file_offset_of(h, h.catalog_offset + 40);
  REQUIRE(std::memcmp(&bytes[second + 24], "second", 6) == 0);
  bytes[second + 26] ^= 1;
  write_file(path, bytes.data(), bytes.size());

  auto r = open_ok(path);
  CHECK(r->string(a) == "first-string");
  CHECK_FALSE(r->has_string(b));
  CHECK(r->string(c) == "third-string");
  CHECK(r->recovery().corrupt_catalog == 56);  // the whole damaged entry, 8 bytes at a time
  CHECK_FALSE(r->recovery().clean());
}

TEST_CASE("a full catalog drops entries and says so", "[trace][reader]") {
  ScratchDir dir;
  std::string path = dir.file("catfull.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, format::kMinBufferSize) == "");
  const uint64_t catalog = w.header()->catalog_size;
  std::string big(1000, 'x');
  uint32_t kept = 0, dropped = 0;
  for (uint64_t i = 0; i * 1000 < catalog + 10000; ++i) {
    big[0] = char('a' + i % 26);
    big[1] = char('a' + i / 26 % 26);
    big[2] = char('a' + i / 676 % 26);
    (w.intern_string(big.c_str()) == format::kNoId ? dropped : kept)++;
  }
  CHECK(dropped > 0);
  CHECK(w.header()->catalog_dropped == dropped);
  w.close();
  auto r = open_ok(path);
  CHECK(r->recovery().catalog_dropped == dropped);
  CHECK(r->recovery().corrupt_catalog == 0);
  CHECK_FALSE(r->recovery().clean());
}

TEST_CASE("object_at picks the object mapped at that address at that time", "[trace][reader]") {
  ScratchDir dir;
  std::string path = dir.file("objs.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, format::kMinBufferSize) == "");
  // Three generations reuse one address range; a big object spans under all of them.
  format::ObjectLoadEntry big{};
  big.map_start = 0x1000;
  big.map_end = 0x100000;
  big.parent = format::kNoId;
  uint32_t big_id = w.add_object(big);
  w.object_unloaded(big_id, 5);
  uint32_t gen[3];
  for (uint64_t g = 0; g < 3; ++g) {
    format::ObjectLoadEntry o{};
    o.map_start = 0x200000;
    o.map_end = 0x210000;
    o.load_seq = 10 * (g + 1);
    gen[g] = w.add_object(o);
    w.object_unloaded(gen[g], 10 * (g + 1) + 5);
  }
  w.close();
  auto r = open_ok(path);
  CHECK(r->object_at(0x2000, 4)->id == big_id);
  CHECK(r->object_at(0x2000, 5) == nullptr);
  CHECK(r->object_at(0x200000, 9) == nullptr);
  CHECK(r->object_at(0x200000, 10)->id == gen[0]);
  CHECK(r->object_at(0x20ffff, 24)->id == gen[1]);
  CHECK(r->object_at(0x200100, 30)->id == gen[2]);
  CHECK(r->object_at(0x200100, 35) == nullptr);
  CHECK(r->object_at(0x210000, 30) == nullptr);
}

TEST_CASE("a header that claims a huge ring over a short file is read in bounded time",
          "[trace][reader]") {
  ScratchDir dir;
  std::string path = dir.file("liar.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, format::kMinBufferSize) == "");
  for (int i = 0; i < 20; ++i) {
    format::EventSlot e = make_event(w.reserve_seq());
    w.commit(e);
  }
  format::FileHeader h = *w.header();
  w.close();
  auto bytes = read_file(path);
  h.file_size = 1ull << 50;
  h.slot_count = (h.file_size - h.ring_offset) / format::kSlotSize;
  h.next_seq = (1ull << 60) + 1;
  std::memcpy(bytes.data(), &h, sizeof h);

  std::string error;
  auto r = TraceReader::open_bytes(bytes.data(), bytes.size(), &error);
  INFO(error);
  REQUIRE(r);
  // The extents are all in the file: a huge image that was never backed is not a truncation.
  CHECK_FALSE(r->recovery().truncated);
  CHECK(r->last_seq() == 1ull << 60);
  CHECK(r->recovery().dropped_events == (1ull << 60) - 20);
  auto events = all_events(*r);
  REQUIRE(events.size() == 20);
  CHECK(events.front().seq == 1);
  CHECK(events.back().seq == 20);
  CHECK(r->event(20));
  CHECK_FALSE(r->event(1ull << 60));
}

namespace {

// The trace at `path` (version 3) as version 2 wrote it: the logical image itself, catalog and
// ring at their offsets, sparse where nothing was backed.
void rewrite_as_version_2(const std::string& path) {
  const auto bytes = read_file(path);
  format::FileHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  REQUIRE(h.version == 3);
  std::vector<unsigned char> image(h.file_size);
  for (uint32_t i = 0; i < h.extent_count; ++i) {
    const format::FileExtent& e = h.extents[i];
    REQUIRE(e.file_offset + e.length <= bytes.size());
    std::memcpy(&image[e.logical_offset], &bytes[e.file_offset], e.length);
  }
  format::FileHeader old = h;
  old.version = 2;
  old.extent_count = 0;
  std::memset(old.extents, 0, sizeof old.extents);
  std::memcpy(image.data(), &old, sizeof old);
  write_file(path, image.data(), image.size());
}

}  // namespace

TEST_CASE("version 2 traces (the whole image in the file) still read", "[trace][reader]") {
  ScratchDir dir;
  const std::string path = dir.file("v2.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, 1 << 20) == "");
  const char* argv[] = {"prog", "x"};
  w.write_process("/usr/bin/prog", "/", 2, argv);
  uint32_t name = w.intern_string("sym");
  // Enough to grow both regions past their first chunks.
  std::string text(2000, 't');
  for (int i = 0; i < 40; ++i) {
    text[0] = char('A' + i);
    w.intern_string(text.c_str());
  }
  for (int i = 0; i < 3000; ++i) {
    format::EventSlot e = make_event(w.reserve_seq(), name);
    w.commit(e);
  }
  REQUIRE(w.header()->extent_count > 2);
  w.close();
  std::vector<uint64_t> v3_seqs;
  {
    auto r = open_ok(path);
    for (auto& e : all_events(*r)) v3_seqs.push_back(e.seq);
    CHECK(r->recovery().clean());
  }
  REQUIRE(v3_seqs.size() == 3000);
  rewrite_as_version_2(path);
  auto r = open_ok(path);
  CHECK(r->header().version == 2);
  CHECK(r->recovery().clean());
  CHECK(r->process().argv == std::vector<std::string>{"prog", "x"});
  std::vector<uint64_t> seqs;
  for (auto& e : all_events(*r)) {
    seqs.push_back(e.seq);
    CHECK(r->string(e.name) == "sym");
  }
  CHECK(seqs == v3_seqs);
  // And from bytes in memory.
  const auto bytes = read_file(path);
  std::string error;
  auto rb = TraceReader::open_bytes(bytes.data(), bytes.size(), &error);
  REQUIRE(rb);
  CHECK(all_events(*rb).size() == 3000);
}

TEST_CASE("a version 3 trace whose chunks interleave reads the same from a file and from bytes",
          "[trace][reader]") {
  ScratchDir dir;
  const std::string path = dir.file("v3.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, 8 << 20) == "");
  std::string text(3000, 'c');
  std::vector<uint32_t> ids;
  for (int i = 0; i < 200; ++i) {
    std::memcpy(text.data(), &i, sizeof i);
    ids.push_back(w.intern_string(text.c_str(), text.size()));
    for (int k = 0; k < 50; ++k) {
      format::EventSlot e = make_event(w.reserve_seq(), ids.back());
      w.commit(e);
    }
  }
  const format::FileHeader h = *w.header();
  w.close();
  // The regions grew in turn: their chunks alternate in the file.
  REQUIRE(h.extent_count >= 6);
  const auto bytes = read_file(path);
  std::string error;
  auto from_bytes = TraceReader::open_bytes(bytes.data(), bytes.size(), &error);
  REQUIRE(from_bytes);
  auto from_file = open_ok(path);
  for (const TraceReader* r : {from_file.get(), from_bytes.get()}) {
    CHECK(r->recovery().clean());
    auto events = all_events(*r);
    REQUIRE(events.size() == 10000);
    for (size_t i = 0; i < events.size(); i += 997) {
      std::string expected = text;
      const int k = int(i / 50);
      std::memcpy(expected.data(), &k, sizeof k);
      CHECK(r->string(events[i].name) == expected);
    }
  }
}

TEST_CASE("a hostile extent table is refused with one sentence", "[trace][reader]") {
  ScratchDir dir;
  const std::string path = dir.file("ext.trace");
  preload::TraceWriter w;
  REQUIRE(open_writer(w, path, format::kMinBufferSize) == "");
  for (int i = 0; i < 10; ++i) {
    format::EventSlot e = make_event(w.reserve_seq());
    w.commit(e);
  }
  w.close();
  const auto original = read_file(path);
  auto with = [&](auto&& change) {
    auto bytes = original;
    format::FileHeader h;
    std::memcpy(&h, bytes.data(), sizeof h);
    change(h);
    std::memcpy(bytes.data(), &h, sizeof h);
    return open_error(bytes.data(), bytes.size());
  };
  CHECK(with([](format::FileHeader& h) { h.extent_count = format::kMaxExtents + 1; }) ==
        "corrupt trace header (129 extents, at most 128)");
  CHECK(with([](format::FileHeader& h) { h.extents[1].file_offset += 8; }) ==
        "corrupt trace header (extent 1 is empty or not page-aligned)");
  CHECK(with([](format::FileHeader& h) { h.extents[1].length = 0; }) ==
        "corrupt trace header (extent 1 is empty or not page-aligned)");
  CHECK(with([](format::FileHeader& h) { h.extents[1].logical_offset = h.file_size; }) ==
        "corrupt trace header (extent 1 lies outside the image)");
  CHECK(with([](format::FileHeader& h) { h.extents[1].file_offset = ~uint64_t{0} & ~4095ull; }) ==
        "corrupt trace header (extent 1 lies outside the image)");
  CHECK(with([](format::FileHeader& h) { h.extents[1].file_offset = 4096; }) ==
        "corrupt trace header (extents overlap in the file)");
  CHECK(with([](format::FileHeader& h) {
          h.extents[1].logical_offset = 8192;
          h.extents[1].file_offset = 1 << 20;
        }) == "corrupt trace header (extents overlap in the image)");

  // Extents past the file's end: truncated, what is there is read.
  auto bytes = original;
  format::FileHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  h.extents[1].length += 64 * 1024;
  h.extent_count = 2;
  std::memcpy(bytes.data(), &h, sizeof h);
  std::string error;
  auto r = TraceReader::open_bytes(bytes.data(), bytes.size(), &error);
  REQUIRE(r);
  CHECK(r->recovery().truncated);
  CHECK(all_events(*r).size() == 10);
  // No extent for the ring: no events, the catalog is still read.
  h.extent_count = 1;
  std::memcpy(bytes.data(), &h, sizeof h);
  r = TraceReader::open_bytes(bytes.data(), bytes.size(), &error);
  REQUIRE(r);
  CHECK(all_events(*r).empty());
  CHECK(r->recovery().dropped_events == 10);
}

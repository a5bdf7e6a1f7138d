// Writes a few small but complete traces with TraceWriter: seeds for the reader fuzzer.
// Usage: make_seed_traces DIR
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "trace_writer.h"

using namespace dltrace;

namespace {

bool write_trace(const std::string& path, int events, bool wrap) {
  preload::TraceWriter w;
  char error[512];
  if (!w.open(path.c_str(), format::kMinBufferSize, 4, error, sizeof error)) {
    std::fprintf(stderr, "make_seed_traces: %s\n", error);
    return false;
  }
  const char* argv[] = {"prog", "-x"};
  w.write_process("/usr/bin/prog", "/tmp", 2, argv);
  w.set_config_path("dltrace.toml");
  format::ObjectLoadEntry exe{};
  exe.path = w.intern_string("/usr/bin/prog");
  exe.soname = format::kNoId;
  exe.parent = format::kNoId;
  exe.map_start = 0x400000;
  exe.map_end = 0x480000;
  exe.build_id_len = 20;
  std::memset(exe.build_id, 0xab, 20);
  uint32_t exe_id = w.add_object(exe);
  uint64_t total = wrap ? w.header()->slot_count + 50 : uint64_t(events);
  for (uint64_t i = 0; i < total; ++i) {
    uint64_t seq = w.reserve_seq();
    format::EventSlot e{};
    e.seq = seq;
    e.call = uint16_t(1 + i % 5);
    e.bits = format::kEventOk;
    e.tid = 100;
    e.time_ns = 1000 * i;
    std::string lib = "libplugin" + std::to_string(i % 3) + ".so";
    e.name = w.intern_string(lib.c_str());
    e.version = format::kNoId;
    e.error = i % 4 == 3 ? w.intern_string("libplugin3.so: cannot open shared object file")
                         : format::kNoId;
    uint64_t ips[3] = {0x400100 + i % 2, 0x7f0000000100, 0x400200};
    e.stack = w.intern_stack(ips, 3);
    format::PyFrame frame{w.intern_string("app.py"), w.intern_string("<module>"), int32_t(i % 7),
                          0};
    e.py_stack = w.intern_py_stack(&frame, 1);
    e.caller_object = exe_id;
    e.caller_ip = 0x400100;
    if (i % 5 == 0) {
      format::ObjectLoadEntry o{};
      o.path = e.name;
      o.soname = e.name;
      o.cause = uint32_t(format::ObjectCause::kDlopen);
      o.parent = exe_id;
      o.opened_by = seq;
      o.load_seq = seq;
      o.map_start = 0x7f0000000000 + 0x100000 * (i % 3);
      o.map_end = o.map_start + 0x10000;
      e.object = w.add_object(o);
      w.add_override({seq, 3, 1, 0x101, 0});
      if (i % 10 == 0)
        w.object_unloaded(e.object, seq + 2);
      else
        w.object_promoted(e.object, seq + 1);
    }
    e.address = 0x7f0000000100;
    w.commit(e);
  }
  w.reserve_seq();  // one event that never commits
  w.set_end(format::EndKind::kExit, 0);
  w.close();
  return true;
}

// A copy of the version 3 trace `from` as version 2 wrote it (the logical image, no extents), so
// the fuzzer keeps reaching the reader's version 2 path.
bool write_version_2(const std::string& from, const std::string& to) {
  std::FILE* in = std::fopen(from.c_str(), "rb");
  if (!in) return false;
  std::vector<unsigned char> bytes;
  unsigned char buf[65536];
  while (size_t n = std::fread(buf, 1, sizeof buf, in)) bytes.insert(bytes.end(), buf, buf + n);
  std::fclose(in);
  format::FileHeader h;
  if (bytes.size() < sizeof h) return false;
  std::memcpy(&h, bytes.data(), sizeof h);
  std::vector<unsigned char> image(h.file_size);
  for (uint32_t i = 0; i < h.extent_count; ++i) {
    const format::FileExtent& e = h.extents[i];
    if (e.file_offset + e.length > bytes.size() || e.logical_offset + e.length > image.size())
      return false;
    std::memcpy(&image[e.logical_offset], &bytes[e.file_offset], e.length);
  }
  h.version = 2;
  h.extent_count = 0;
  std::memset(h.extents, 0, sizeof h.extents);
  std::memcpy(image.data(), &h, sizeof h);
  std::FILE* out = std::fopen(to.c_str(), "wb");
  if (!out) return false;
  const bool ok = std::fwrite(image.data(), 1, image.size(), out) == image.size();
  return std::fclose(out) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seed_traces DIR\n");
    return 2;
  }
  std::string dir = argv[1];
  bool ok = write_trace(dir + "/small.trace", 12, false) &&
            write_trace(dir + "/wrapped.trace", 0, true) &&
            write_version_2(dir + "/small.trace", dir + "/small.v2.trace");
  return ok ? 0 : 1;
}

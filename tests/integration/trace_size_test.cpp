// Trace files sized to what they hold (issue 16, format version 3): the file grows chunk by chunk
// as the recorder backs the catalog and the ring, so `ls -l` shows what a trace holds, and never
// more than DLTRACE_BUFFER_SIZE.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <string>

#include "dltrace/format.h"
#include "harness.h"

using nlohmann::json;
using namespace dltrace;
using namespace dltrace::test;

namespace {

struct Sizes {
  uint64_t apparent = 0;  // st_size: what `ls -l` shows
  uint64_t on_disk = 0;   // st_blocks: what `du` shows
};

Sizes sizes_of(const std::string& path) {
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  return {uint64_t(st.st_size), uint64_t(st.st_blocks) * 512};
}

format::FileHeader header_of(const std::string& path) {
  format::FileHeader h{};
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(&h), sizeof h);
  REQUIRE(in.gcount() == sizeof h);
  return h;
}

}  // namespace

TEST_CASE("a process that makes no dl* call leaves a trace of at most 64 KiB, also in ls -l",
          "[trace_size]") {
  settle_fixtures();
  const std::string dir = temp_dir("size-idle");
  const std::string path = dir + "/idle.trace";
  // rt_dlopen_loop 0 makes no call; the buffer is the default 64 MiB.
  ProcessResult r = run_traced({fixture("rt_dlopen_loop"), "0"}, path);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  const Sizes s = sizes_of(path);
  INFO("st_size " << s.apparent << ", on disk " << s.on_disk);
  CHECK(s.apparent <= 64 * 1024);
  CHECK(s.on_disk <= 80 * 1024);
  CHECK(header_of(path).file_size == 64ull << 20);  // the image it may grow to
  const json t = export_json(path);
  CHECK(t["events"].empty());
  CHECK(!t["objects"].empty());
  CHECK(t["recovery"]["truncated"] == false);
}

TEST_CASE("a trace's file size follows the events it holds", "[trace_size]") {
  settle_fixtures();
  const std::string dir = temp_dir("size-used");
  // 3 events per iteration (dlopen, dlsym, dlclose) and an object loaded and unloaded.
  const int iterations = 3000;
  const std::string path = dir + "/used.trace";
  ProcessResult r = run_traced({fixture("rt_dlopen_loop"), std::to_string(iterations)}, path);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  const format::FileHeader h = header_of(path);
  REQUIRE(h.next_seq - 1 >= uint64_t(3 * iterations));
  const uint64_t used = format::kHeaderSize + h.catalog_used + (h.next_seq - 1) * format::kSlotSize;
  const Sizes s = sizes_of(path);
  INFO("st_size " << s.apparent << ", on disk " << s.on_disk << ", used " << used);
  CHECK(s.apparent >= used);
  // Each region grows by half of what it has (at least 64 KiB), so the file stays within 1.5x.
  CHECK(s.apparent <= used + used / 2 + 128 * 1024);
  CHECK(s.apparent < (64ull << 20) / 4);
  CHECK(s.on_disk <= s.apparent + 16 * 1024);
  const json t = export_json(path);
  CHECK(count_events(t, "dlsym", "symbol", "rt_plugin_fn") == iterations);
  CHECK(t["dropped_events"] == 0);
}

TEST_CASE("a ring that wraps keeps the file within DLTRACE_BUFFER_SIZE", "[trace_size]") {
  settle_fixtures();
  const std::string dir = temp_dir("size-wrap");
  const std::string path = dir + "/wrap.trace";
  RunOptions opts;
  opts.env["DLTRACE_BUFFER_SIZE"] = "262144";  // the minimum: 1024 slots
  const int iterations = 2000;                 // 6000 events: the ring wraps five times
  ProcessResult r = run_traced({fixture("rt_dlopen_loop"), std::to_string(iterations)}, path, opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  const format::FileHeader h = header_of(path);
  REQUIRE(h.file_size == 262144);
  REQUIRE(h.next_seq - 1 > 3 * h.slot_count);
  const Sizes s = sizes_of(path);
  INFO("st_size " << s.apparent << ", on disk " << s.on_disk);
  CHECK(s.apparent <= 262144);
  const json t = export_json(path);
  // The newest lap is all there.
  CHECK(t["events"].size() == h.slot_count);
}

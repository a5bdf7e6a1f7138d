// Symbolizer: a function of this test binary (built with -g) resolves to its name and file:line;
// a build-id mismatch disables symbolization of that object.
#include <link.h>

#include <catch2/catch.hpp>
#include <climits>
#include <cstdlib>
#include <string>

#include "analysis/symbolizer.h"

namespace symbolizer_probe {
__attribute__((noinline)) int probe(int x) {  // kProbeLine
  asm volatile("");
  return x * 3 + 1;
}
constexpr int kProbeLine = 14;
}  // namespace symbolizer_probe

namespace {

struct Found {
  uint64_t l_addr = 0;
  std::string path;
  uintptr_t address = 0;
};

int find_object(dl_phdr_info* info, size_t, void* data) {
  auto* f = static_cast<Found*>(data);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (f->address >= start && f->address < start + ph.p_memsz) {
      f->l_addr = info->dlpi_addr;
      f->path = info->dlpi_name;
      return 1;
    }
  }
  return 0;
}

dltrace::ObjectRecord this_binary(uintptr_t address) {
  Found f;
  f.address = address;
  REQUIRE(dl_iterate_phdr(find_object, &f) == 1);
  if (f.path.empty()) {  // the main program
    char buf[PATH_MAX];
    REQUIRE(realpath("/proc/self/exe", buf));
    f.path = buf;
  }
  dltrace::ObjectRecord o;
  o.id = 0;
  o.path = f.path;
  o.base = f.l_addr;
  return o;
}

}  // namespace

TEST_CASE("symbolizer resolves a function to its name and file:line", "[viewer][symbolizer]") {
  volatile int keep = symbolizer_probe::probe(2);
  (void)keep;
  const auto address = reinterpret_cast<uintptr_t>(&symbolizer_probe::probe);
  const dltrace::ObjectRecord o = this_binary(address);

  dltrace::viewer::Symbolizer s;
  // As a return address pointing 4 bytes into the function (the lookup uses ip - 1).
  const auto& info = s.lookup(o, address + 4);
  INFO(s.problem(0));
  CHECK(info.function == "symbolizer_probe::probe(int)");
  CHECK(info.function_offset == 4);
  CHECK(info.file.ends_with("viewer_symbolizer_test.cpp"));
  CHECK(info.line >= symbolizer_probe::kProbeLine);
  CHECK(info.line <= symbolizer_probe::kProbeLine + 3);

  // Cached: the same reference comes back.
  CHECK(&s.lookup(o, address + 4) == &info);
}

TEST_CASE("symbolizer refuses a file whose build-id changed", "[viewer][symbolizer]") {
  const auto address = reinterpret_cast<uintptr_t>(&symbolizer_probe::probe);
  dltrace::ObjectRecord o = this_binary(address);
  o.build_id = "00112233445566778899";
  dltrace::viewer::Symbolizer s;
  CHECK(s.lookup(o, address + 4).function.empty());
  CHECK(s.problem(0).find("changed since the trace was recorded") != std::string::npos);

  dltrace::ObjectRecord missing;
  missing.id = 7;
  missing.path = "/nonexistent/libgone.so";
  CHECK(s.lookup(missing, 0x1234).function.empty());
  CHECK(!s.problem(7).empty());
}

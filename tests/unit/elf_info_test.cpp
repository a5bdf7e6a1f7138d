// elf_info: the Bloom-filter test the object table runs before looking for CPython's marker.
#include "elf_info.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/auxv.h>

#include <catch2/catch.hpp>
#include <string>

using namespace dltrace::preload;

namespace {

// The elf::Image of the loaded object whose path ends with `suffix` (the vDSO for "").
bool image_of(const std::string& suffix, elf::Image* out) {
  struct Ctx {
    const std::string* suffix;
    elf::Image* out;
    bool found;
  } ctx{&suffix, out, false};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto& c = *static_cast<Ctx*>(data);
        const std::string name = info->dlpi_name ? info->dlpi_name : "";
        if (c.suffix->empty()) {
          if (info->dlpi_addr == 0 ||
              reinterpret_cast<uintptr_t>(info->dlpi_phdr) - getauxval(AT_SYSINFO_EHDR) >= 4096)
            return 0;
        } else if (name.size() < c.suffix->size() ||
                   name.compare(name.size() - c.suffix->size(), c.suffix->size(), *c.suffix) != 0) {
          return 0;
        }
        *c.out = elf::from_phdrs(info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum);
        c.found = true;
        return 1;
      },
      &ctx);
  return ctx.found;
}

}  // namespace

TEST_CASE("gnu_hash is DT_GNU_HASH's hash", "[elf_info]") {
  STATIC_REQUIRE(elf::gnu_hash("") == 5381);
  STATIC_REQUIRE(elf::gnu_hash("printf") == 0x156b2bb8u);  // the ELF GNU hash write-ups' example
}

TEST_CASE("may_define admits every symbol an object defines and rules most others out",
          "[elf_info]") {
  elf::Image libc{};
  REQUIRE(image_of("/libc.so.6", &libc));
  for (const char* name : {"malloc", "printf", "dlopen", "dlsym", "memcpy", "strlen", "iconv_open",
                           "dl_iterate_phdr", "pthread_create", "__libc_start_main", "environ"}) {
    INFO(name);
    REQUIRE(dlsym(RTLD_DEFAULT, name) != nullptr);
    CHECK(elf::may_define(libc, elf::gnu_hash(name)));
  }
  // Names libc does not define: the filter (two bits per symbol) must turn most of them away, or
  // it is no filter at all.
  int ruled_out = 0;
  for (int i = 0; i < 2000; ++i) {
    const std::string name = "dltrace_absent_symbol_" + std::to_string(i);
    if (!elf::may_define(libc, elf::gnu_hash(name.c_str()))) ++ruled_out;
  }
  CHECK(ruled_out > 1000);
}

TEST_CASE("may_define cannot rule anything out without DT_GNU_HASH", "[elf_info]") {
  const std::string path = std::string(DLTRACE_TEST_FIXTURES_DIR) + "/libcaller_fx_ver_sysv.so";
  void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE(h != nullptr);
  elf::Image sysv{};
  REQUIRE(image_of("/libcaller_fx_ver_sysv.so", &sysv));
  for (int i = 0; i < 100; ++i) {
    const std::string name = "dltrace_absent_symbol_" + std::to_string(i);
    CHECK(elf::may_define(sysv, elf::gnu_hash(name.c_str())));
  }
  dlclose(h);
}

TEST_CASE("may_define reads the vDSO's unrelocated dynamic section", "[elf_info]") {
  if (getauxval(AT_SYSINFO_EHDR) == 0) return;  // no vDSO here
  elf::Image vdso{};
  REQUIRE(image_of("", &vdso));
  for (const char* name : {"__vdso_clock_gettime", "__vdso_gettimeofday"}) {
    INFO(name);
    CHECK(elf::may_define(vdso, elf::gnu_hash(name)));
  }
}

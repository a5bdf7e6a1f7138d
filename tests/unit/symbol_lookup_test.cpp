// lookup_in_object / lookup_global / real_functions against what the real loader answers.
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <sys/auxv.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "elf_symbols.h"
#include "real_functions.h"

using namespace dltrace::preload;

namespace {

// Runs `fn(info)` on the loaded object whose soname-ish path ends with `suffix`.
template <typename Fn>
bool with_object(const std::string& suffix, Fn fn) {
  struct Ctx {
    const std::string* suffix;
    Fn* fn;
    bool found;
  } ctx{&suffix, &fn, false};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto& c = *static_cast<Ctx*>(data);
        std::string name = info->dlpi_name ? info->dlpi_name : "";
        if (name.size() < c.suffix->size() ||
            name.compare(name.size() - c.suffix->size(), c.suffix->size(), *c.suffix) != 0)
          return 0;
        (*c.fn)(*info);
        c.found = true;
        return 1;
      },
      &ctx);
  return ctx.found;
}

bool has_dynamic_tag(const dl_phdr_info& info, ElfW(Sxword) tag) {
  for (int i = 0; i < info.dlpi_phnum; ++i) {
    if (info.dlpi_phdr[i].p_type != PT_DYNAMIC) continue;
    for (auto d = reinterpret_cast<const ElfW(Dyn)*>(info.dlpi_addr + info.dlpi_phdr[i].p_vaddr);
         d->d_tag != DT_NULL; ++d)
      if (d->d_tag == tag) return true;
  }
  return false;
}

std::string fixture(const char* name) {
  return std::string(DLTRACE_TEST_FIXTURES_DIR) + "/" + name;
}

}  // namespace

TEST_CASE("lookup_in_object agrees with dlsym/dlvsym on libc", "[symbol_lookup]") {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  REQUIRE(libc != nullptr);
  bool found = with_object("/libc.so.6", [&](const dl_phdr_info& info) {
    CHECK(has_dynamic_tag(info, DT_GNU_HASH));
    // Plain and IFUNC (memcpy, strlen are IFUNCs on x86-64: the resolver must run).
    for (const char* name : {"malloc", "dlopen", "dlsym", "memcpy", "strlen", "dl_iterate_phdr"}) {
      INFO(name);
      void* expected = dlsym(libc, name);
      REQUIRE(expected != nullptr);
      CHECK(lookup_in_object(info, name, nullptr) == expected);
    }
    struct {
      const char* name;
      const char* version;
    } versioned[] = {{"dlsym", "GLIBC_2.2.5"},  {"dlsym", "GLIBC_2.34"},   {"dlopen", "GLIBC_2.34"},
                     {"dlopen", "GLIBC_2.2.5"}, {"malloc", "GLIBC_2.2.5"}, {"memcpy", "GLIBC_2.14"},
                     {"memcpy", "GLIBC_2.2.5"}};
    for (auto& v : versioned) {
      INFO(v.name << "@" << v.version);
      void* expected = dlvsym(libc, v.name, v.version);
      REQUIRE(expected != nullptr);
      CHECK(lookup_in_object(info, v.name, v.version) == expected);
    }
    // memcpy@GLIBC_2.2.5 (memmove semantics) is hidden: the default is memcpy@@GLIBC_2.14.
    CHECK(lookup_in_object(info, "memcpy", nullptr) == dlvsym(libc, "memcpy", "GLIBC_2.14"));
    CHECK(lookup_in_object(info, "malloc", "GLIBC_9.99") == nullptr);
    CHECK(lookup_in_object(info, "no_such_symbol_dltrace", nullptr) == nullptr);
    CHECK(lookup_in_object(info, "no_such_symbol_dltrace", "GLIBC_2.2.5") == nullptr);
  });
  CHECK(found);
  dlclose(libc);
}

TEST_CASE("find_symbols reads one object's tables for many names, as find_symbol each",
          "[symbol_lookup]") {
  bool found = with_object("/libc.so.6", [&](const dl_phdr_info& info) {
    const char* names[] = {"malloc", "memcpy", "no_such_symbol_dltrace", "dlsym", "memcpy"};
    const char* versions[] = {nullptr, "GLIBC_2.2.5", nullptr, "GLIBC_9.99", nullptr};
    constexpr int n = 5;
    elf::Symbol each[n];
    for (int i = 0; i < n; ++i) each[i] = elf::find_symbol(info, names[i], versions[i]);
    REQUIRE(each[0]);
    REQUIRE(each[1]);
    CHECK_FALSE(each[2]);
    CHECK_FALSE(each[3]);
    REQUIRE(each[4]);
    CHECK(each[1].address != each[4].address);  // memcpy@GLIBC_2.2.5 is not the default

    elf::Symbol all[n];
    CHECK(elf::find_symbols(info, names, versions, n, all) == 3);
    for (int i = 0; i < n; ++i) {
      INFO(names[i] << " " << (versions[i] ? versions[i] : "(default)"));
      CHECK(all[i].address == each[i].address);
      CHECK(all[i].ifunc == each[i].ifunc);
    }
    // Entries already found are kept, not looked up again; unversioned without `versions`.
    elf::Symbol kept[n];
    kept[0].address = 1;
    CHECK(elf::find_symbols(info, names, nullptr, n, kept) == 3);  // memcpy twice, dlsym
    CHECK(kept[0].address == 1);
    CHECK(kept[1].address == each[4].address);
    CHECK_FALSE(kept[2]);
    CHECK(kept[3].address == elf::find_symbol(info, "dlsym", nullptr).address);
  });
  CHECK(found);
}

TEST_CASE("lookup_in_object handles hidden versions with GNU and SysV hash tables",
          "[symbol_lookup]") {
  for (const char* file : {"libcaller_fx_ver_gnu.so", "libcaller_fx_ver_sysv.so"}) {
    INFO(file);
    void* h = dlopen(fixture(file).c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(h != nullptr);
    bool sysv = std::strstr(file, "sysv") != nullptr;
    bool found = with_object(std::string("/") + file, [&](const dl_phdr_info& info) {
      CHECK(has_dynamic_tag(info, DT_GNU_HASH) == !sysv);
      CHECK(has_dynamic_tag(info, DT_HASH) == sysv);
      // Each version of fx_versioned is a different function: 1 (hidden) and 2 (default).
      void* v1 = lookup_in_object(info, "fx_versioned", "FXV_1");
      void* v2 = lookup_in_object(info, "fx_versioned", "FXV_2");
      REQUIRE(v1 != nullptr);
      REQUIRE(v2 != nullptr);
      CHECK(reinterpret_cast<int (*)()>(v1)() == 1);
      CHECK(reinterpret_cast<int (*)()>(v2)() == 2);
      CHECK(v1 == dlvsym(h, "fx_versioned", "FXV_1"));
      CHECK(v2 == dlvsym(h, "fx_versioned", "FXV_2"));
      // Unversioned: the default version, never the hidden one.
      CHECK(lookup_in_object(info, "fx_versioned", nullptr) == v2);
      CHECK(dlsym(h, "fx_versioned") == v2);
      // Only a hidden version exists: invisible without a version, like dlsym.
      CHECK(lookup_in_object(info, "fx_only_old", nullptr) == nullptr);
      CHECK(dlsym(h, "fx_only_old") == nullptr);
      void* old = lookup_in_object(info, "fx_only_old", "FXV_1");
      REQUIRE(old != nullptr);
      CHECK(old == dlvsym(h, "fx_only_old", "FXV_1"));
      CHECK(lookup_in_object(info, "fx_only_old", "FXV_2") == nullptr);
      CHECK(lookup_in_object(info, "fx_plain", nullptr) == dlsym(h, "fx_plain"));
      CHECK(lookup_in_object(info, "fx_plain", "FXV_1") == nullptr);
      // Local (version-script hidden) implementation names are not exported.
      CHECK(lookup_in_object(info, "fx_versioned_v1", nullptr) == nullptr);
    });
    CHECK(found);
    dlclose(h);
  }
}

TEST_CASE("lookup_in_object reads the vDSO's unrelocated dynamic section", "[symbol_lookup]") {
  uintptr_t vdso = getauxval(AT_SYSINFO_EHDR);
  if (vdso == 0) return;  // no vDSO in this environment: nothing to check
  struct Ctx {
    uintptr_t base;
    void* sym = nullptr;
    bool seen = false;
  } ctx{vdso};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto& c = *static_cast<Ctx*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i)
          if (info->dlpi_phdr[i].p_type == PT_LOAD &&
              info->dlpi_addr + info->dlpi_phdr[i].p_vaddr == c.base) {
            c.seen = true;
            c.sym = lookup_in_object(*info, "__vdso_clock_gettime", "LINUX_2.6");
            return 1;
          }
        return 0;
      },
      &ctx);
  REQUIRE(ctx.seen);
  REQUIRE(ctx.sym != nullptr);
  CHECK(reinterpret_cast<uintptr_t>(ctx.sym) > vdso);
  CHECK(reinterpret_cast<uintptr_t>(ctx.sym) < vdso + 0x10000);
}

TEST_CASE("real_functions finds the next definitions, never ours", "[symbol_lookup]") {
  const RealFunctions& real = real_functions();
  CHECK(&real == &real_functions());  // idempotent
  // In this executable "after ourselves" is exactly RTLD_NEXT from here.
  CHECK(reinterpret_cast<void*>(real.dlopen) == dlsym(RTLD_NEXT, "dlopen"));
  CHECK(reinterpret_cast<void*>(real.dlmopen) == dlsym(RTLD_NEXT, "dlmopen"));
  CHECK(reinterpret_cast<void*>(real.dlsym) == dlsym(RTLD_NEXT, "dlsym"));
  CHECK(reinterpret_cast<void*>(real.dlvsym) == dlsym(RTLD_NEXT, "dlvsym"));
  CHECK(reinterpret_cast<void*>(real.dlclose) == dlsym(RTLD_NEXT, "dlclose"));
  CHECK(reinterpret_cast<void*>(real.dlerror) == dlsym(RTLD_NEXT, "dlerror"));
  CHECK(reinterpret_cast<void*>(real.dlinfo) == dlsym(RTLD_NEXT, "dlinfo"));
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  REQUIRE(libc != nullptr);
  Dl_info where{};
  REQUIRE(dladdr(reinterpret_cast<void*>(real.dlsym), &where) != 0);
  // libc (glibc >= 2.34) or a sanitizer runtime that interposes dlsym; never this executable.
  CHECK(where.dli_fbase != dlsym(RTLD_DEFAULT, "main"));
  dlclose(libc);
}

TEST_CASE("lookup_global finds the first definition and leaves dlerror alone", "[symbol_lookup]") {
  // Arm an error, then check that lookups neither clear nor replace it.
  REQUIRE(dlsym(RTLD_DEFAULT, "no_such_symbol_dltrace_armed") == nullptr);
  CHECK(lookup_global("malloc") == dlsym(RTLD_DEFAULT, "malloc"));
  REQUIRE(dlsym(RTLD_DEFAULT, "no_such_symbol_dltrace_armed") == nullptr);
  CHECK(lookup_global("no_such_symbol_dltrace") == nullptr);
  CHECK(lookup_global("_dl_find_object", "GLIBC_2.35") != nullptr);
  CHECK(lookup_global("dlsym", "GLIBC_2.2.5") == dlvsym(RTLD_DEFAULT, "dlsym", "GLIBC_2.2.5"));
  REQUIRE(dlsym(RTLD_DEFAULT, "no_such_symbol_dltrace_armed") == nullptr);
  (void)real_functions();
  const char* err = dlerror();
  REQUIRE(err != nullptr);
  CHECK(std::strstr(err, "no_such_symbol_dltrace_armed") != nullptr);
}

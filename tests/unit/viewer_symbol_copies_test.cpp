// The quiet rules of the two-copies finding (analysis/symbol_copies.h), on real symbol tables: a
// C++ library and a C library with symbol versions, built here with the system compilers, whose
// definitions that every object may carry by design (_init/_fini, vague linkage, STB_GNU_UNIQUE,
// compat aliases) are harmless, while their plain functions and data are not.
#include <elf.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <string>

#include "analysis/elf_file.h"
#include "analysis/symbol_copies.h"

using namespace dltrace::viewer;

namespace {

struct BuiltLibraries {
  std::string dir;
  BuiltLibraries() {
    char tmpl[] = "/tmp/dltrace-copies-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    std::ofstream(dir + "/cxx.cpp")
        << "struct Shape { virtual ~Shape(); virtual int area() const { return 0; } };\n"
           "Shape::~Shape() {}\n"
           "inline int inline_helper(int x) { static int calls; return x + ++calls; }\n"
           "template <typename T> T twice(T v) { return v + v; }\n"
           "int api_function(int x) { Shape s; return inline_helper(x) + twice(x) + s.area(); }\n"
           "int api_data = 7;\n";
    std::ofstream(dir + "/c.c") << "int compat_old(void) { return 1; }\n"
                                   "int compat_new(void) { return 2; }\n"
                                   "__asm__(\".symver compat_old, compat@VER_1\");\n"
                                   "__asm__(\".symver compat_new, compat@@VER_2\");\n"
                                   "int plain(void) { return 3; }\n";
    std::ofstream(dir + "/c.map") << "VER_1 { global: compat; plain; local: *; };\n"
                                     "VER_2 { global: compat; } VER_1;\n";
    // Today's crti.o keeps _init/_fini hidden; older toolchains exported them, as this does.
    std::ofstream(dir + "/init.c") << "void _init(void) {}\nvoid _fini(void) {}\n";
    run("c++ -shared -fPIC -o " + dir + "/libcxx.so " + dir + "/cxx.cpp");
    run("cc -shared -fPIC -nostartfiles -o " + dir + "/libinit.so " + dir + "/init.c");
    run("cc -shared -fPIC -o " + dir + "/libc_versions.so " + dir +
        "/c.c -Wl,--version-script=" + dir + "/c.map");
  }
  ~BuiltLibraries() { std::system(("rm -rf " + dir).c_str()); }
  static void run(const std::string& command) {
    INFO(command);
    REQUIRE(std::system(command.c_str()) == 0);
  }
};

const ElfSymbol* find(const ElfFile& f, std::string_view name, std::string_view version = {},
                      bool default_version = true) {
  for (const ElfSymbol& s : f.dynamic_symbols)
    if (s.defined && s.name == name && (version.empty() || s.version == version) &&
        s.default_version == default_version)
      return &s;
  return nullptr;
}

}  // namespace

TEST_CASE("two copies: what every object may define by design is harmless, API is not",
          "[copies]") {
  BuiltLibraries built;
  auto cxx = read_elf_file(built.dir + "/libcxx.so");
  REQUIRE(cxx.ok());
  const ElfFile& f = **cxx;

  // _init/_fini: DT_INIT/DT_FINI code, never looked up by name.
  auto init = read_elf_file(built.dir + "/libinit.so");
  REQUIRE(init.ok());
  for (const char* name : {"_init", "_fini"}) {
    INFO(name);
    const ElfSymbol* s = find(**init, name);
    REQUIRE(s);
    CHECK(s->exported());
    CHECK(harmless_duplicate(*s));
  }
  // Vague linkage: vtable, typeinfo, typeinfo name of Shape.
  for (const char* name : {"_ZTV5Shape", "_ZTI5Shape", "_ZTS5Shape"}) {
    INFO(name);
    const ElfSymbol* s = find(f, name);
    REQUIRE(s);
    CHECK(harmless_duplicate(*s));
  }
  // Inline functions and template instances are weak; an inline function's static is unique.
  const ElfSymbol* inline_fn = find(f, "_Z13inline_helperi");
  REQUIRE(inline_fn);
  CHECK(inline_fn->bind == STB_WEAK);
  CHECK(harmless_duplicate(*inline_fn));
  const ElfSymbol* instance = find(f, "_Z5twiceIiET_S0_");
  REQUIRE(instance);
  CHECK(harmless_duplicate(*instance));
  const ElfSymbol* unique = find(f, "_ZZ13inline_helperiE5calls");
  REQUIRE(unique);
  CHECK(unique->bind == STB_GNU_UNIQUE);
  CHECK(harmless_duplicate(*unique));
  // The key function's out-of-line destructor and plain API: a second copy of them is not.
  for (const char* name : {"_ZN5ShapeD2Ev", "_Z12api_functioni", "api_data"}) {
    INFO(name);
    const ElfSymbol* s = find(f, name);
    REQUIRE(s);
    CHECK_FALSE(harmless_duplicate(*s));
  }
  // Symbols that are neither code nor data (_end, _edata, __bss_start where present).
  for (const ElfSymbol& s : f.dynamic_symbols)
    if (s.defined && s.type == STT_NOTYPE) CHECK(harmless_duplicate(s));

  auto versions = read_elf_file(built.dir + "/libc_versions.so");
  REQUIRE(versions.ok());
  const ElfFile& v = **versions;
  // compat@VER_1 is a compatibility alias for old binaries; compat@@VER_2 the default.
  const ElfSymbol* alias = find(v, "compat", "VER_1", /*default_version=*/false);
  REQUIRE(alias);
  CHECK(harmless_duplicate(*alias));
  const ElfSymbol* current = find(v, "compat", "VER_2");
  REQUIRE(current);
  CHECK_FALSE(harmless_duplicate(*current));
  const ElfSymbol* plain = find(v, "plain", "VER_1");
  REQUIRE(plain);
  CHECK_FALSE(harmless_duplicate(*plain));
  // The version names themselves (SHN_ABS).
  for (const ElfSymbol& s : v.dynamic_symbols)
    if (s.defined && s.section == SHN_ABS) CHECK(harmless_duplicate(s));
}

TEST_CASE("two copies: the runtimes a module can carry a static copy of", "[copies]") {
  CHECK(runtime_name("libstdc++.so.6") == "libstdc++");
  CHECK(runtime_name("libc.so.6") == "the C library");
  CHECK(runtime_name("libgcc_s.so.1") == "libgcc");
  CHECK(runtime_name("libpython3.11.so.1.0").empty());
  CHECK(runtime_name("").empty());
}

// ElfFile/ElfCache on real files of this system, the dlerror parser on glibc's real message
// shapes, and search-path expansion.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "analysis/dlerror_text.h"
#include "analysis/elf_file.h"
#include "analysis/library_search.h"

using namespace dltrace;
using namespace dltrace::viewer;

namespace {
const char* const kLibc = "/lib/x86_64-linux-gnu/libc.so.6";
const char* const kLibm = "/lib/x86_64-linux-gnu/libm.so.6";
}  // namespace

TEST_CASE("ElfFile reads the dynamic section, versions and symbols of libc", "[elf]") {
  auto file = read_elf_file(kLibc);
  REQUIRE(file.ok());
  const ElfFile& libc = **file;
  CHECK(libc.soname == "libc.so.6");
  CHECK(std::find(libc.needed.begin(), libc.needed.end(), "ld-linux-x86-64.so.2") !=
        libc.needed.end());
  CHECK(libc.defines_version("GLIBC_2.34"));
  CHECK(libc.defines_version("GLIBC_2.2.5"));
  CHECK_FALSE(libc.defines_version("GLIBC_99.0"));
  CHECK(libc.build_id.size() == 40);
  // dlopen@@GLIBC_2.34 is the default; dlopen@GLIBC_2.2.5 the compatibility one.
  const ElfSymbol* def = libc.exported("dlopen");
  REQUIRE(def);
  CHECK(def->version == "GLIBC_2.34");
  CHECK(def->default_version);
  const ElfSymbol* compat = libc.exported("dlopen", "GLIBC_2.2.5");
  REQUIRE(compat);
  CHECK_FALSE(compat->default_version);
  CHECK(libc.exported("no_such_symbol_anywhere") == nullptr);
  // libc references ld.so's symbols through verneed.
  bool needs_ld = false;
  for (const auto& need : libc.version_needs)
    needs_ld = needs_ld || need.file == "ld-linux-x86-64.so.2";
  CHECK(needs_ld);
}

TEST_CASE("ElfFile: undefined references carry the version they need", "[elf]") {
  auto file = read_elf_file(kLibm);
  REQUIRE(file.ok());
  bool found = false;
  for (const auto& s : (*file)->dynamic_symbols)
    if (!s.defined && !s.version.empty() && s.version.rfind("GLIBC_", 0) == 0) found = true;
  CHECK(found);
}

TEST_CASE("ElfFile: errors for missing and non-ELF files", "[elf]") {
  auto missing = read_elf_file("/nonexistent/libx.so");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  std::string text = "/tmp/dltrace-not-elf-" + std::to_string(getpid());
  std::ofstream(text) << "GROUP ( libc.so.6 )\n";  // a linker script, as libc.so is
  auto script = read_elf_file(text);
  CHECK_FALSE(script.ok());
  CHECK(std::string(script.status().message()).find("not an ELF file") != std::string::npos);
  std::remove(text.c_str());
}

TEST_CASE("ElfCache checks the recorded build-id against the file", "[elf]") {
  ElfCache cache;
  auto libc = read_elf_file(kLibc);
  REQUIRE(libc.ok());
  ObjectRecord same;
  same.id = 1;
  same.build_id = (*libc)->build_id;
  CHECK(cache.for_object(same, kLibc).check == FileCheck::kSame);
  CHECK(cache.for_object(same, kLibc).file != nullptr);
  ObjectRecord changed;
  changed.id = 2;
  changed.build_id = std::string(40, '0');
  const auto& entry = cache.for_object(changed, kLibc);
  CHECK(entry.check == FileCheck::kDifferent);
  CHECK(entry.file == nullptr);
  CHECK(entry.problem.find("not the file that was loaded") != std::string::npos);
  ObjectRecord gone;
  gone.id = 3;
  CHECK(cache.for_object(gone, "/nonexistent/libgone.so").check == FileCheck::kMissing);
  ObjectRecord unverified;
  unverified.id = 4;
  CHECK(cache.for_object(unverified, kLibc).check == FileCheck::kUnverified);
}

TEST_CASE("parse_dlerror: glibc's message shapes", "[explain]") {
  auto u = parse_dlerror("/x/libplugin.so: undefined symbol: api_value");
  CHECK(u.kind == DlerrorText::Kind::kUndefinedSymbol);
  CHECK(u.object == "/x/libplugin.so");
  CHECK(u.symbol == "api_value");
  CHECK(u.version.empty());
  auto uv = parse_dlerror("/x/a: b.so: undefined symbol: foo, version VER_2");
  CHECK(uv.object == "/x/a: b.so");
  CHECK(uv.symbol == "foo");
  CHECK(uv.version == "VER_2");
  auto exe = parse_dlerror("undefined symbol: main_only");  // the executable has no name
  CHECK(exe.kind == DlerrorText::Kind::kUndefinedSymbol);
  CHECK(exe.object.empty());
  auto nf = parse_dlerror("libnope.so: cannot open shared object file: No such file or directory");
  CHECK(nf.kind == DlerrorText::Kind::kNotFound);
  CHECK(nf.object == "libnope.so");
  auto v = parse_dlerror(
      "/usr/lib/libstdc++.so.6: version `GLIBCXX_3.4.32' not found (required by /opt/x/libx.so)");
  CHECK(v.kind == DlerrorText::Kind::kVersionNotFound);
  CHECK(v.object == "/usr/lib/libstdc++.so.6");
  CHECK(v.version == "GLIBCXX_3.4.32");
  CHECK(v.needed_by == "/opt/x/libx.so");
  CHECK(parse_dlerror("/x/y.so: invalid ELF header").kind == DlerrorText::Kind::kOther);
  CHECK(parse_dlerror("").kind == DlerrorText::Kind::kOther);
}

TEST_CASE("expand_search_dir: $ORIGIN and friends", "[explain]") {
  CHECK(expand_search_dir("$ORIGIN/../lib", "/opt/app/bin") == "/opt/app/bin/../lib");
  CHECK(expand_search_dir("${ORIGIN}", "/opt") == "/opt");
  CHECK(expand_search_dir("/usr/$LIB", "") == "/usr/lib/x86_64-linux-gnu");
  CHECK(expand_search_dir("", "/x") == ".");
  CHECK(expand_search_dir("/plain", "/x") == "/plain");
}

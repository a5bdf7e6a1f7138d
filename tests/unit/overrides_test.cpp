// The recorder side of flag overrides: the emulated library search (library_resolver) and
// apply_overrides() over a 100-rule config, including its cost per call.
#include "overrides.h"

#include <dlfcn.h>
#include <link.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>

#include "library_resolver.h"

using namespace dltrace::preload;

namespace {

std::string ov_dir() {
  return std::string(DLTRACE_TEST_FIXTURES_DIR) + "/overrides";
}

CallerObject caller_of(void* handle) {
  link_map* lm = nullptr;
  REQUIRE(dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0);
  CallerObject c;
  c.path = lm->l_name;
  c.base = lm->l_addr;
  c.dynamic = lm->l_ld;
  return c;
}

int code_in_this_executable() {
  return 1;
}

std::string exe_name() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  REQUIRE(n > 0);
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(p.rfind('/') + 1);
}

}  // namespace

TEST_CASE("resolver: ld.so.cache, loaded sonames, absolute and relative paths") {
  resolver_init();
  ResolvedLibrary r;
  REQUIRE(resolve_library("libz.so.1", nullptr, &r));  // in /etc/ld.so.cache, not loaded here
  CHECK(std::string(r.path).find("/x86_64-linux-gnu/libz.so.1") != std::string::npos);
  CHECK(std::string(r.soname) == "libz.so.1");
  REQUIRE(resolve_library("libz.so", nullptr, &r));  // the dev symlink: its soname is libz.so.1
  CHECK(std::string(r.soname) == "libz.so.1");

  REQUIRE(resolve_library("libc.so.6", nullptr, &r));  // already loaded: its l_name
  CHECK(std::string(r.path).find("libc.so.6") != std::string::npos);
  CHECK(r.path[0] == '/');

  std::string abs = ov_dir() + "/libalias.so";
  REQUIRE(resolve_library(abs.c_str(), nullptr, &r));
  CHECK(std::string(r.path) == abs);
  CHECK(std::string(r.soname) == "libembed.so");

  char cwd[4096];
  REQUIRE(getcwd(cwd, sizeof cwd) != nullptr);
  REQUIRE(chdir(ov_dir().c_str()) == 0);
  bool ok = resolve_library("./libapi.so", nullptr, &r);
  REQUIRE(chdir(cwd) == 0);
  REQUIRE(ok);
  CHECK(std::string(r.path) == ov_dir() + "/libapi.so");
  CHECK(std::string(r.soname) == "libapi.so");

  CHECK_FALSE(resolve_library("libdoes-not-exist-anywhere.so", nullptr, &r));
  CHECK(r.path[0] == '\0');
}

TEST_CASE("resolver: the caller's RUNPATH with $ORIGIN decides a bare name") {
  resolver_init();
  void* embed = dlopen((ov_dir() + "/libembed.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE(embed != nullptr);
  ResolvedLibrary r;
  const CallerObject from_embed = caller_of(embed);
  CallerObject found;
  REQUIRE(find_caller(dlsym(embed, "embed_value"), &found));
  CHECK(found.dynamic == from_embed.dynamic);
  CHECK(std::string(found.path) == ov_dir() + "/libembed.so");
  // libembed.so has RUNPATH $ORIGIN; libplugin.so is only in that directory.
  REQUIRE(resolve_library("libplugin.so", &from_embed, &r));
  CHECK(std::string(r.path) == ov_dir() + "/libplugin.so");
  CHECK(std::string(r.soname) == "libplugin.so");
  CHECK_FALSE(resolve_library("libplugin.so", nullptr, &r));  // not from the test executable
  // Cached answers are the same answers.
  REQUIRE(resolve_library_cached("libplugin.so", &from_embed, &r));
  REQUIRE(resolve_library_cached("libplugin.so", &from_embed, &r));
  CHECK(std::string(r.path) == ov_dir() + "/libplugin.so");
  CHECK_FALSE(resolve_library_cached("libplugin.so", nullptr, &r));
  dlclose(embed);
}

TEST_CASE("apply_overrides: 100 rules, name/soname/caller matching, under 1 us per call") {
  char dir[] = "/tmp/dltrace-overrides-unit.XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  std::string path = std::string(dir) + "/dltrace.toml";
  uint32_t soname_line = 0, path_line = 0, caller_line = 0;
  {
    std::ofstream f(path);
    // 97 rules that never match: literals, globs, full paths and caller filters.
    for (int i = 0; i < 97; ++i) {
      f << "[[override]]\n";
      switch (i % 4) {
        case 0:
          f << "match = \"libnomatch" << i << ".so\"\n";
          break;
        case 1:
          f << "match = \"libnomatch" << i << "*.so*\"\n";
          break;
        case 2:
          f << "match = \"/opt/nomatch" << i << "/*.so\"\n";
          break;
        default:
          f << "match = \"*\"\ncaller = \"libnotthecaller" << i << "*.so\"\n";
          break;
      }
      f << "add = [\"RTLD_NODELETE\"]\n";
    }
    soname_line = 24 * 4 + 73 * 3 + 1;  // 24 of the 97 rules have a caller line
    f << "[[override]]\nmatch = \"libz.so.1\"\nadd = [\"RTLD_GLOBAL\"]\n";
    path_line = soname_line + 3;
    f << "[[override]]\nmatch = \"*/libz.so\"\nremove = [\"RTLD_LAZY\"]\nadd = [\"RTLD_NOW\"]\n";
    caller_line = path_line + 4;
    f << "[[override]]\nmatch = \"libz*\"\ncaller = \"" << exe_name()
      << "\"\nadd = [\"RTLD_NOLOAD\"]\n";
  }
  REQUIRE(setenv("DLTRACE_CONFIG", path.c_str(), 1) == 0);
  const char* loaded = load_overrides_from_env(DLTRACE_TEST_CONFIG_LIBRARY);
  REQUIRE(loaded != nullptr);
  CHECK(std::string(loaded) == path);
  unsetenv("DLTRACE_CONFIG");

  const void* caller = reinterpret_cast<const void*>(&code_in_this_executable);
  OverrideResult r;
  // "libz.so" is matched through the soname of the file it resolves to (libz.so.1), through its
  // resolved full path, and through the caller (this executable).
  REQUIRE(apply_overrides("libz.so", RTLD_LAZY, caller, &r));
  CHECK(r.flags == (RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD));
  REQUIRE(r.count == 3);
  CHECK(r.applied[0].line == soname_line);
  CHECK(r.applied[0].flags_before == RTLD_LAZY);
  CHECK(r.applied[0].flags_after == (RTLD_LAZY | RTLD_GLOBAL));
  CHECK(r.applied[1].line == path_line);
  CHECK(r.applied[2].line == caller_line);
  CHECK(r.applied[2].flags_after == r.flags);

  // Not from a matching caller (no caller at all): the caller rule stays out.
  REQUIRE(apply_overrides("libz.so", RTLD_LAZY, nullptr, &r));
  CHECK(r.flags == (RTLD_NOW | RTLD_GLOBAL));
  CHECK_FALSE(apply_overrides("libsomething-else.so", RTLD_NOW, nullptr, &r));
  CHECK(r.flags == RTLD_NOW);
  CHECK(r.count == 0);
  CHECK_FALSE(apply_overrides(nullptr, RTLD_NOW, caller, &r));  // dlopen(NULL)

  // The cost of a 100-rule lookup is measured in tests/bench/overrides_bench.cpp, not here.
  unlink(path.c_str());
  rmdir(dir);
}

// self_exe: /proc/self/exe read once per process and kept, and the executable's basename.
#include "self_exe.h"

#include <limits.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

using namespace dltrace::preload;

TEST_CASE("self_exe_path is the /proc/self/exe link, read once and kept", "[self_exe]") {
  char link[PATH_MAX] = {};
  REQUIRE(readlink("/proc/self/exe", link, sizeof link - 1) > 0);
  char scratch[PATH_MAX];
  const char* first = self_exe_path(scratch, sizeof scratch);
  CHECK(std::string(first) == link);
  // Kept: the same storage every time, never the caller's scratch once it is read.
  char other[8];
  const char* again = self_exe_path(other, sizeof other);
  CHECK(again == first);
  CHECK(again != other);
  CHECK(std::string(again) == link);
}

TEST_CASE("exe_basename gives the executable's name, through the kept path or not", "[self_exe]") {
  char link[PATH_MAX] = {};
  REQUIRE(readlink("/proc/self/exe", link, sizeof link - 1) > 0);
  const std::string name = std::strrchr(link, '/') + 1;
  for (bool keep : {false, true}) {
    INFO("keep " << keep);
    char out[PATH_MAX];
    exe_basename(out, sizeof out, keep);
    CHECK(std::string(out) == name);
    // Too small for the name: program_invocation_short_name, cut to fit.
    char tiny[4];
    exe_basename(tiny, sizeof tiny, keep);
    CHECK(std::strlen(tiny) < sizeof tiny);
  }
}

// Traces recorded under qemu-aarch64, read and explained by this host's (x86-64) viewer: the trace
// tells its CPU (its dynamic loader is among its objects), and the explanations use ld.so's rules
// for that CPU (its default directories, which ELF files it can load), not the viewer's.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "harness.h"

using namespace dltrace::test;
namespace fs = std::filesystem;

TEST_CASE("an aarch64 trace records its CPU and reads on this host", "[foreign-trace]") {
  const std::string dir = temp_dir("foreign");
  const std::string trace = dir + "/next.trace";
  ProcessResult r = run_traced({fixture("diff_next")}, trace);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  // The CPU: its dynamic loader is among the trace's objects.
  CHECK(find_object(export_json(trace), "ld-linux-aarch64.so.1") != nullptr);
  ProcessResult show = run({viewer_path(), "show", trace});
  INFO(describe(show));
  CHECK(show.exit_code == 0);
  CHECK(show.out.find("dlsym(RTLD_NEXT, \"who\") = NULL") != std::string::npos);
}

// The x86-64 copy of a library beside an aarch64 program: ld.so refuses it for the wrong machine,
// and explain says so from the trace alone, even once the program's file is gone (so the CPU can
// only come from the trace).
TEST_CASE("explain judges a wrong-machine library by the trace's CPU", "[foreign-trace]") {
  const std::string dir = temp_dir("foreign");
  fs::copy_file(fixture("rt_local_plugin"), dir + "/rt_local_plugin");
  fs::copy_file(fixture("librt_plugin.so"), dir + "/librt_plugin.so.aarch64");
  // Any x86-64 shared object will do: this host's libm.
  fs::copy_file("/lib/x86_64-linux-gnu/libm.so.6", dir + "/librt_plugin.so");
  const std::string trace = dir + "/wrong.trace";
  ProcessResult r = run_traced({dir + "/rt_local_plugin"}, trace);
  INFO(describe(r));
  REQUIRE(r.exit_code == 100);  // rt_open: the dlopen failed
  CHECK(r.err.find("librt_plugin.so") != std::string::npos);
  fs::remove(dir + "/rt_local_plugin");

  ProcessResult explain = run({viewer_path(), "explain", trace});
  INFO(describe(explain));
  CHECK(explain.out.find("librt_plugin.so is a 64-bit ELF file for x86-64; this process runs "
                         "AArch64 code") != std::string::npos);
}

TEST_CASE("explain lists the trace CPU's default directories for a missing library",
          "[foreign-trace]") {
  const std::string dir = temp_dir("foreign");
  fs::copy_file(fixture("diff_dlerror"), dir + "/diff_dlerror");
  const std::string trace = dir + "/missing.trace";
  ProcessResult r = run_traced({dir + "/diff_dlerror", "missing-file"}, trace);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  fs::remove(dir + "/diff_dlerror");  // the CPU can only come from the trace
  ProcessResult explain = run({viewer_path(), "explain", "--probes", trace});
  INFO(describe(explain));
  CHECK(explain.out.find("libdiff_does_not_exist.so") != std::string::npos);
  CHECK(explain.out.find("/usr/lib/aarch64-linux-gnu") != std::string::npos);
  CHECK(explain.out.find("x86_64-linux-gnu") == std::string::npos);
}

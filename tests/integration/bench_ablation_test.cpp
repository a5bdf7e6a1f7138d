// The benchmarks' ablation build of the recorder (preload/bench_ablation.h): it leaves out the
// parts DLTRACE_ABLATE names, so that dlopen_loop_cost.sh can time each part in the same run; and
// libdltrace.so itself has no such switch: the variable changes nothing in what it records.
#include <catch2/catch.hpp>
#include <string>

#include "harness.h"

using namespace dltrace::test;
using nlohmann::json;

namespace {

struct Recorded {
  size_t events = 0, objects = 0;
};

// What `rt_dlopen_loop 3` leaves in its trace, recorded by `library` with DLTRACE_ABLATE=`parts`.
Recorded record_loop(const std::string& library, const std::string& parts) {
  const std::string dir = temp_dir("ablation");
  RunOptions opts;
  opts.env = {{"LD_PRELOAD", library},
              {"DLTRACE_OUTPUT", dir + "/"},
              {"DLTRACE_QUIET", "1"},
              {"DLTRACE_STACK_DEPTH", "0"},
              {"DLTRACE_ABLATE", parts}};
  const ProcessResult r = run({fixture("rt_dlopen_loop"), "3"}, opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  const auto traces = traces_in(dir);
  REQUIRE(traces.size() == 1);
  const json trace = export_json(traces[0]);
  return {trace["events"].size(), trace["objects"].size()};
}

}  // namespace

TEST_CASE("DLTRACE_ABLATE leaves parts of recording out only in the ablation build", "[cost]") {
  const Recorded whole = record_loop(preload_path(), "0");
  // Three dlopen, dlsym and dlclose each; the objects of the process and the plugin's 3 loads.
  CHECK(whole.events == 9);
  CHECK(whole.objects > 3);
  SECTION("libdltrace.so records everything whatever the variable says") {
    const Recorded all_out = record_loop(preload_path(), "1f");
    CHECK(all_out.events == whole.events);
    CHECK(all_out.objects == whole.objects);
  }
  SECTION("the ablation build leaves out what it names") {
    const std::string ablation = DLTRACE_TEST_ABLATION;
    if (ablation.empty()) {
      WARN("built without the benchmarks (DLTRACE_BUILD_BENCHMARKS=OFF): no ablation build");
      return;
    }
    const Recorded nothing_out = record_loop(ablation, "0");
    CHECK(nothing_out.events == whole.events);
    CHECK(nothing_out.objects == whole.objects);
    CHECK(record_loop(ablation, "10").events == 0);  // event commits
    // Object syncs after start: the objects present then are all it knows, not the plugin.
    const Recorded no_syncs = record_loop(ablation, "8");
    CHECK(no_syncs.objects > 0);
    CHECK(no_syncs.objects < whole.objects);
  }
}

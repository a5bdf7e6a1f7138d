// Cost of flag overrides per dlopen: apply_overrides() with no config (the branch every traced
// dlopen pays) and with a 100-rule config, for a name matched by its soname through the
// resolution cache, a name matched by nothing, and an absolute path. Target: < 1 us per call.
//
//   BUILD/bench/overrides_bench [--benchmark_min_time=...]
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "overrides.h"

using namespace dltrace::preload;

namespace {

int code_in_this_executable() {
  return 1;
}
const void* caller_ip() {
  return reinterpret_cast<const void*>(&code_in_this_executable);
}

void BM_NoConfig(benchmark::State& state) {
  OverrideResult r;
  for (auto _ : state) {
    apply_overrides("libz.so", RTLD_LAZY, caller_ip(), &r);
    benchmark::DoNotOptimize(r.flags);
  }
}

std::string write_hundred_rules();

// The config is loaded once, by the first of these: overrides/no_config (registered first, and
// benchmarks run in registration order) has measured the no-config path by then.
bool load_hundred_rules() {
  std::string path = write_hundred_rules();
  setenv("DLTRACE_CONFIG", path.c_str(), 1);
  bool ok = load_overrides_from_env(DLTRACE_CONFIG_LIBRARY) != nullptr;
  unlink(path.c_str());
  return ok;
}

void BM_HundredRules(benchmark::State& state, const char* name) {
  static const bool loaded = load_hundred_rules();
  if (!loaded) {
    state.SkipWithError("cannot load the 100-rule config");
    return;
  }
  OverrideResult r;
  for (auto _ : state) {
    apply_overrides(name, RTLD_LAZY, caller_ip(), &r);
    benchmark::DoNotOptimize(r.flags);
  }
}

std::string write_hundred_rules() {
  std::string path = "/tmp/dltrace-overrides-bench." + std::to_string(getpid()) + ".toml";
  std::ofstream f(path);
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
  f << "[[override]]\nmatch = \"libz.so.1\"\nadd = [\"RTLD_GLOBAL\"]\n";
  f << "[[override]]\nmatch = \"*/libz.so\"\nremove = [\"RTLD_LAZY\"]\nadd = [\"RTLD_NOW\"]\n";
  f << "[[override]]\nmatch = \"libdoes-not-exist*\"\nadd = [\"RTLD_NOLOAD\"]\n";
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RegisterBenchmark("overrides/no_config", BM_NoConfig);
  benchmark::RegisterBenchmark("overrides/100_rules/soname_match", BM_HundredRules, "libz.so");
  benchmark::RegisterBenchmark("overrides/100_rules/no_match", BM_HundredRules,
                               "libnomatch-at-all.so");
  benchmark::RegisterBenchmark("overrides/100_rules/absolute_path", BM_HundredRules,
                               "/usr/lib/x86_64-linux-gnu/libz.so.1");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// Throughput of `dltrace export --format json|jsonl`: the whole exporter (symbolizer, cached
// stack fragments, JSON writer) over a 1,000,000-event synthetic trace (tests/scale/big_trace.h:
// dlsym-heavy mix over 24 plugins, 256 distinct native stacks, one event in 8 with a Python
// stack), written to /dev/null through a FILE*, the same path the command uses. Reported as
// items_per_second = events per second. Target: >= 2M events/s with 32-frame stacks.
//
//   build/bench/export_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "big_trace.h"
#include "dltrace/reader.h"
#include "render/json_export.h"
#include "render/json_writer.h"

namespace {

constexpr uint64_t kEvents = 1'000'000;

// One trace per stack depth, written on first use and removed at exit.
class Traces {
 public:
  ~Traces() {
    readers_.clear();
    for (const auto& [depth, path] : paths_) unlink(path.c_str());
    if (!dir_.empty()) rmdir(dir_.c_str());
  }

  const dltrace::TraceReader* get(uint32_t depth, std::string* error) {
    if (auto it = readers_.find(depth); it != readers_.end()) return it->second.get();
    if (dir_.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/dltrace-export-bench.XXXXXX";
      if (!mkdtemp(templ.data())) {
        *error = "mkdtemp failed";
        return nullptr;
      }
      dir_ = templ;
    }
    const std::string path = dir_ + "/depth" + std::to_string(depth) + ".trace";
    dltrace::test::BigTraceOptions options;
    options.events = kEvents;
    options.stack_depth = depth;
    *error = dltrace::test::write_big_trace(path, options);
    if (!error->empty()) return nullptr;
    paths_[depth] = path;
    auto reader = dltrace::TraceReader::open(path, error);
    if (!reader) return nullptr;
    struct stat st {};
    stat(path.c_str(), &st);
    sizes_[depth] = uint64_t(st.st_blocks) * 512;
    return (readers_[depth] = std::move(reader)).get();
  }
  uint64_t bytes_on_disk(uint32_t depth) const { return sizes_.at(depth); }

 private:
  std::string dir_;
  std::map<uint32_t, std::string> paths_;
  std::map<uint32_t, uint64_t> sizes_;
  std::map<uint32_t, std::unique_ptr<dltrace::TraceReader>> readers_;
};

Traces& traces() {
  static Traces t;
  return t;
}

// Args: stack depth recorded in the trace, whether the export includes stacks, json (0) / jsonl
// (1), whether frames are symbolized (0: --no-symbols).
void BM_Export(benchmark::State& state) {
  const auto depth = static_cast<uint32_t>(state.range(0));
  std::string error;
  const dltrace::TraceReader* reader = traces().get(depth, &error);
  if (!reader) {
    state.SkipWithError(error.c_str());
    return;
  }
  dltrace::viewer::JsonExportOptions options;
  options.stacks = state.range(1) != 0;
  options.symbolize = state.range(3) != 0;
  options.flavor =
      state.range(2) ? dltrace::viewer::JsonFlavor::kJsonl : dltrace::viewer::JsonFlavor::kJson;
  // The output goes where `export -o /dev/null` sends it: a FILE* on a descriptor (the writer
  // hands large cached fragments to writev) that discards it.
  std::FILE* out = std::fopen("/dev/null", "w");
  if (!out) {
    state.SkipWithError("cannot open /dev/null");
    return;
  }
  uint64_t bytes = 0;
  for (auto _ : state) {
    // What the command does: a writer on the output FILE*, a fresh exporter (and symbolizer).
    dltrace::viewer::JsonWriter writer(out);
    if (auto status = dltrace::viewer::write_json_export(*reader, options, writer); !status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      break;
    }
    bytes += writer.bytes_written();
  }
  std::fclose(out);
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(kEvents));
  state.SetBytesProcessed(int64_t(bytes));
  state.counters["trace_MB"] = double(traces().bytes_on_disk(depth)) / 1e6;
  state.counters["json_bytes_per_event"] =
      state.iterations() ? double(bytes) / double(state.iterations()) / double(kEvents) : 0;
}

BENCHMARK(BM_Export)
    ->ArgNames({"depth", "stacks", "jsonl", "symbols"})
    ->Args({16, 1, 0, 1})  // 16-frame stacks, exported
    ->Args({32, 1, 0, 1})  // the recorder's default depth
    ->Args({16, 0, 0, 1})  // --no-stacks
    ->Args({0, 0, 0, 1})   // a trace recorded without stacks
    ->Args({16, 1, 1, 1})  // jsonl
    ->Args({32, 1, 1, 1})  // jsonl at the recorder's default depth
    ->Args({32, 1, 0, 0})  // --no-symbols: without the debug-info lookups (fixed per export)
    ->Unit(benchmark::kMillisecond);  // rates from CPU time: the machine is shared

}  // namespace

BENCHMARK_MAIN();

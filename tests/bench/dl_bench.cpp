// dl_bench: native vs traced dl* calls, measured in ONE run under the preload.
//
//   native  libc's own dlsym/dlopen/dlclose, obtained with dlvsym(libc, NAME, "GLIBC_2.34") and
//           called through a pointer: the interposer is bypassed, and glibc still sees this
//           binary as the caller (so RTLD_NEXT / RTLD_DEFAULT behave as for a direct call).
//   traced  the plain dlsym/dlopen/dlclose symbols, which the preload interposes, with the
//           recorder's stack capture off (depth 0) and at the default depth (32), switched with
//           the preload's dltrace_set_stack_depth() when it exports it.
//
// Benchmark names are GROUP/VARIANT; run_benchmarks.sh turns them into a native-vs-traced table.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <link.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "arch/arch.h"  // dltrace_call_with_return_address
#include "dltrace/format.h"

namespace {

using DlsymFn = void* (*)(void*, const char*);
using DlopenFn = void* (*)(const char*, int);
using DlcloseFn = int (*)(void*);
using SetDepthFn = int (*)(unsigned);

DlsymFn native_dlsym;
DlopenFn native_dlopen;
DlcloseFn native_dlclose;
SetDepthFn set_stack_depth;  // null when the preload is absent or does not export it
bool preload_active;

void* lookup_handle;  // BENCH_LOOKUP_LIB, open for the whole run

constexpr unsigned kDefaultDepth = 32;

// Variant: -1 native, otherwise the traced stack depth (or -2: traced, depth left as configured).
void apply_variant(benchmark::State& state, int variant) {
  if (variant >= 0 && set_stack_depth != nullptr && set_stack_depth(unsigned(variant)) != 0)
    state.SkipWithError("dltrace_set_stack_depth failed");
}

void dlsym_loop(benchmark::State& state, int variant, void* handle, const char* symbol,
                bool expect_found) {
  apply_variant(state, variant);
  for (auto _ : state) {
    void* p = variant == -1 ? native_dlsym(handle, symbol) : dlsym(handle, symbol);
    benchmark::DoNotOptimize(p);
  }
  // Check once, outside the timed loop, that both paths give the same answer.
  void* native = native_dlsym(handle, symbol);
  void* traced = dlsym(handle, symbol);
  if ((native != nullptr) != expect_found || native != traced)
    state.SkipWithError("native and traced dlsym disagree");
}

// A loop over distinct names, as a loader resolving many entry points makes: the recorder's
// per-thread memo of names and objects cannot hold them all.
std::vector<std::string> g_many_names;  // bench_many_0 ... (BENCH_MANY_LIB's functions)
std::vector<std::string> g_libc_names;  // libc functions, for RTLD_DEFAULT / RTLD_NEXT
void* many_handle;

void dlsym_names_loop(benchmark::State& state, int variant, void* handle,
                      const std::vector<std::string>& names, size_t count) {
  apply_variant(state, variant);
  std::vector<const char*> list;
  for (size_t i = 0; i < count; ++i) list.push_back(names[i].c_str());
  size_t j = 0;
  for (auto _ : state) {
    const char* name = list[j];
    void* p = variant == -1 ? native_dlsym(handle, name) : dlsym(handle, name);
    benchmark::DoNotOptimize(p);
    if (++j == count) j = 0;
  }
  for (const char* name : list)
    if (native_dlsym(handle, name) == nullptr || native_dlsym(handle, name) != dlsym(handle, name))
      state.SkipWithError("native and traced dlsym disagree");
}

void dlopen_dlclose_loop(benchmark::State& state, int variant) {
  apply_variant(state, variant);
  for (auto _ : state) {
    void* h = variant == -1 ? native_dlopen(BENCH_OPENCLOSE_LIB, RTLD_NOW | RTLD_LOCAL)
                            : dlopen(BENCH_OPENCLOSE_LIB, RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      state.SkipWithError("dlopen failed");
      break;
    }
    int rc = variant == -1 ? native_dlclose(h) : dlclose(h);
    benchmark::DoNotOptimize(rc);
  }
  // The library must really be unloaded each time, or we measure a refcount bump.
  void* still = native_dlopen(BENCH_OPENCLOSE_LIB, RTLD_NOW | RTLD_NOLOAD);
  state.counters["left_loaded"] = still != nullptr ? 1 : 0;
  if (still != nullptr) {
    native_dlclose(still);
    state.SkipWithError("library stayed loaded after dlclose (NODELETE?)");
  }
}

// The floor under any per-event cost on this machine: what the recorder does for every event
// whatever else is saved, two TSC reads (start time and duration) and one locked add (the
// event's sequence number). Reported apart from the native/traced pairs.
void floor_two_tsc_reads(benchmark::State& state) {
  for (auto _ : state) {
    const uint64_t start = __builtin_ia32_rdtsc();
    benchmark::DoNotOptimize(__builtin_ia32_rdtsc() - start);
  }
}

std::atomic<uint64_t> g_floor_seq{0};
void floor_seq_reserve(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(g_floor_seq.fetch_add(1, std::memory_order_relaxed));
}

// The whole floor of one recorded event, done the way the writer does it but into a ring in
// private memory: both clock reads, the seq, a 128-byte slot filled, checksummed, copied into its
// ring slot and published by a release store. What a traced call costs beyond this is the
// recorder's own decisions (names, objects, nesting) and the interposition.
alignas(64) dltrace::format::EventSlot g_floor_ring[1024];
void floor_event_write(benchmark::State& state) {
  for (auto _ : state) {
    dltrace::format::EventSlot s{};
    s.time_ns = __builtin_ia32_rdtsc();
    s.call = 2;
    s.name = 7;
    s.seq = g_floor_seq.fetch_add(1, std::memory_order_relaxed) + 1;
    s.duration_ns = __builtin_ia32_rdtsc() - s.time_ns;
    s.checksum = dltrace::format::slot_checksum(reinterpret_cast<const unsigned char*>(&s) + 16);
    auto* dst = &g_floor_ring[s.seq & 1023];
    std::memcpy(reinterpret_cast<unsigned char*>(dst) + 8, reinterpret_cast<unsigned char*>(&s) + 8,
                sizeof s - 8);
    __atomic_store_n(&dst->seq, s.seq, __ATOMIC_RELEASE);
    benchmark::ClobberMemory();
  }
}

// The least any recorder does to learn what a dlopen or dlclose brought in or took out: one look
// at the loader's list under the loader's lock (dl_iterate_phdr, stopped at the first object,
// whose dlpi_adds/dlpi_subs say whether anything changed). The tiny dlopen loop's floor counts
// two of these per iteration, beside three event_writes (run_benchmarks.sh).
int first_object_only(dl_phdr_info* info, size_t, void* data) {
  *static_cast<unsigned long long*>(data) = info->dlpi_adds + info->dlpi_subs;
  return 1;
}
void floor_loader_walk(benchmark::State& state) {
  unsigned long long counters = 0;
  for (auto _ : state) {
    dl_iterate_phdr(first_object_only, &counters);
    benchmark::DoNotOptimize(counters);
  }
}

// A call made on the caller's behalf (RTLD_DEFAULT / RTLD_NEXT: glibc resolves them relative to
// the object its caller lies in): the recorder's trampoline calls the function with a return
// address inside the caller's object, here a `ret` in this program. Its cost beyond a plain call
// (one mispredicted return) is paid by every such traced dlsym on top of the event.
extern "C" void dl_bench_ret_gadget();
asm(".text\n.globl dl_bench_ret_gadget\n.type dl_bench_ret_gadget, @function\n"
    "dl_bench_ret_gadget:\n ret\n.size dl_bench_ret_gadget, .-dl_bench_ret_gadget\n");
__attribute__((noinline)) uintptr_t first_argument(uintptr_t a0, uintptr_t, uintptr_t) {
  benchmark::ClobberMemory();
  return a0;
}
void floor_callers_behalf(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(dltrace_call_with_return_address(
        reinterpret_cast<const void*>(&first_argument),
        reinterpret_cast<const void*>(&dl_bench_ret_gadget), 1, 2, 3));
}
void floor_plain_call(benchmark::State& state) {
  uintptr_t (*volatile fn)(uintptr_t, uintptr_t, uintptr_t) = first_argument;
  for (auto _ : state) benchmark::DoNotOptimize(fn(1, 2, 3));
}

void register_group(const std::string& group, void (*body)(benchmark::State&, int)) {
  benchmark::RegisterBenchmark((group + "/native").c_str(), body, -1);
  if (set_stack_depth != nullptr) {
    benchmark::RegisterBenchmark((group + "/traced_stacks_off").c_str(), body, 0);
    benchmark::RegisterBenchmark(
        (group + "/traced_stacks_" + std::to_string(kDefaultDepth)).c_str(), body,
        int(kDefaultDepth));
  } else {
    benchmark::RegisterBenchmark((group + "/traced").c_str(), body, -2);
  }
}

}  // namespace

int main(int argc, char** argv) {
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (libc == nullptr) {
    std::fprintf(stderr, "dl_bench: libc.so.6 not found: %s\n", dlerror());
    return 1;
  }
  native_dlsym = reinterpret_cast<DlsymFn>(dlvsym(libc, "dlsym", "GLIBC_2.34"));
  native_dlopen = reinterpret_cast<DlopenFn>(dlvsym(libc, "dlopen", "GLIBC_2.34"));
  native_dlclose = reinterpret_cast<DlcloseFn>(dlvsym(libc, "dlclose", "GLIBC_2.34"));
  if (native_dlsym == nullptr || native_dlopen == nullptr || native_dlclose == nullptr) {
    std::fprintf(stderr, "dl_bench: libc's dl* functions not found (glibc < 2.34?)\n");
    return 1;
  }
  preload_active = reinterpret_cast<void*>(native_dlsym) != reinterpret_cast<void*>(&dlsym);
  set_stack_depth =
      reinterpret_cast<SetDepthFn>(native_dlsym(RTLD_DEFAULT, "dltrace_set_stack_depth"));
  if (!preload_active)
    std::fprintf(stderr,
                 "dl_bench: WARNING: dlsym is not interposed (no preload): "
                 "\"traced\" numbers are native\n");
  else if (set_stack_depth == nullptr)
    std::fprintf(stderr,
                 "dl_bench: the preload does not export dltrace_set_stack_depth: "
                 "stack on/off variants skipped, \"traced\" uses DLTRACE_STACK_DEPTH\n");
  lookup_handle = dlopen(BENCH_LOOKUP_LIB, RTLD_NOW | RTLD_LOCAL);
  if (lookup_handle == nullptr) {
    std::fprintf(stderr, "dl_bench: %s\n", dlerror());
    return 1;
  }

  register_group("dlsym_handle", [](benchmark::State& s, int v) {
    dlsym_loop(s, v, lookup_handle, "bench_lookup_fn", true);
  });
  register_group("dlsym_handle_missing", [](benchmark::State& s, int v) {
    dlsym_loop(s, v, lookup_handle, "bench_no_such_symbol", false);
  });
  register_group("dlsym_default",
                 [](benchmark::State& s, int v) { dlsym_loop(s, v, RTLD_DEFAULT, "fopen", true); });
  register_group("dlsym_next",
                 [](benchmark::State& s, int v) { dlsym_loop(s, v, RTLD_NEXT, "fopen", true); });
  many_handle = dlopen(BENCH_MANY_LIB, RTLD_NOW | RTLD_LOCAL);
  if (many_handle == nullptr) {
    std::fprintf(stderr, "dl_bench: %s\n", dlerror());
    return 1;
  }
  for (int i = 0; i < BENCH_MANY_COUNT; ++i)
    g_many_names.push_back("bench_many_" + std::to_string(i));
  for (const char* name :
       {"fopen",        "fclose", "fread",   "fwrite",   "fprintf", "printf",  "sprintf",
        "snprintf",     "malloc", "free",    "calloc",   "realloc", "strlen",  "strcmp",
        "strncmp",      "strchr", "strrchr", "strstr",   "memcpy",  "memmove", "memset",
        "memcmp",       "open",   "close",   "read",     "write",   "lseek",   "stat",
        "fstat",        "mmap",   "munmap",  "mprotect", "getpid",  "getppid", "getenv",
        "setenv",       "qsort",  "bsearch", "atoi",     "strtol",  "strtoul", "strdup",
        "strndup",      "fflush", "fgets",   "fputs",    "puts",    "getline", "time",
        "clock_gettime"})
    g_libc_names.push_back(name);
  register_group("dlsym_handle_50_names", [](benchmark::State& s, int v) {
    dlsym_names_loop(s, v, many_handle, g_many_names, 50);
  });
  register_group("dlsym_handle_2000_names", [](benchmark::State& s, int v) {
    dlsym_names_loop(s, v, many_handle, g_many_names, g_many_names.size());
  });
  register_group("dlsym_default_50_names", [](benchmark::State& s, int v) {
    dlsym_names_loop(s, v, RTLD_DEFAULT, g_libc_names, g_libc_names.size());
  });
  register_group("dlsym_next_50_names", [](benchmark::State& s, int v) {
    dlsym_names_loop(s, v, RTLD_NEXT, g_libc_names, g_libc_names.size());
  });
  register_group("dlopen_dlclose", dlopen_dlclose_loop);
  benchmark::RegisterBenchmark("floor/two_tsc_reads", floor_two_tsc_reads);
  benchmark::RegisterBenchmark("floor/seq_reserve", floor_seq_reserve);
  benchmark::RegisterBenchmark("floor/event_write", floor_event_write);
  benchmark::RegisterBenchmark("floor/loader_walk", floor_loader_walk);
  benchmark::RegisterBenchmark("floor/plain_call", floor_plain_call);
  benchmark::RegisterBenchmark("floor/callers_behalf", floor_callers_behalf);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (set_stack_depth != nullptr) set_stack_depth(kDefaultDepth);
  return 0;
}

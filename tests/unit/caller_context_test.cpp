// CallerContext and the trampoline: a call made through a context whose caller_ip lies in a
// fixture library must get exactly what the fixture library gets when it makes the call itself.
#include "caller_context.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>
#include <unwind.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "real_functions.h"

using namespace dltrace::preload;

namespace {

std::string fixture(const char* name) {
  return std::string(DLTRACE_TEST_FIXTURES_DIR) + "/" + name;
}

// Design doc §9: right after the fixtures were written, glibc has been seen to misidentify
// callers; flushing them and dropping them from the page cache avoids it.
void settle_fixtures() {
  static bool done = false;
  if (done) return;
  done = true;
  for (const char* f : {"libcaller_fx_main.so", "libcaller_fx_next.so",
                        "caller_sub/libcaller_fx_sub.so", "libcaller_fx_ver_gnu.so"}) {
    int fd = open(fixture(f).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    fsync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
}

std::string take_error() {
  const char* e = dlerror();
  return e ? e : "<none>";
}

struct Fixture {
  void* handle = nullptr;
  void* (*dlsym)(void*, const char*) = nullptr;
  void* (*dlvsym)(void*, const char*, const char*) = nullptr;
  void* (*dlopen)(const char*, int) = nullptr;
  void* (*dlmopen)(Lmid_t, const char*, int) = nullptr;
  const void* (*caller_ip)() = nullptr;

  Fixture() {
    settle_fixtures();
    handle = ::dlopen(fixture("libcaller_fx_main.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(handle != nullptr);
    dlsym = reinterpret_cast<decltype(dlsym)>(::dlsym(handle, "fx_dlsym"));
    dlvsym = reinterpret_cast<decltype(dlvsym)>(::dlsym(handle, "fx_dlvsym"));
    dlopen = reinterpret_cast<decltype(dlopen)>(::dlsym(handle, "fx_dlopen"));
    dlmopen = reinterpret_cast<decltype(dlmopen)>(::dlsym(handle, "fx_dlmopen"));
    caller_ip = reinterpret_cast<decltype(caller_ip)>(::dlsym(handle, "fx_caller_ip"));
    REQUIRE((dlsym && dlvsym && dlopen && dlmopen && caller_ip));
  }
  ~Fixture() { ::dlclose(handle); }
};

const void* object_base(const void* p) {
  Dl_info info{};
  return dladdr(p, &info) != 0 ? info.dli_fbase : nullptr;
}

// Under a sanitizer runtime that interposes dl* (ASan), glibc sees the runtime as the caller of
// both the fixture's and our calls; the comparison would prove nothing.
bool real_dl_functions_are_libc() {
  Dl_info info{};
  return dladdr(reinterpret_cast<void*>(real_functions().dlopen), &info) != 0 &&
         std::strstr(info.dli_fname, "libc.so") != nullptr;
}

bool shadow_stack_enabled() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("x86_Thread_features:", 0) == 0) return line.find("shstk") != std::string::npos;
  return false;
}

}  // namespace

TEST_CASE("trampoline availability follows the shadow-stack state", "[caller_context]") {
  CHECK(trampoline_available() == !shadow_stack_enabled());
}

TEST_CASE("CallerContext makes calls on behalf of a library's code", "[caller_context]") {
  if (!real_dl_functions_are_libc()) {
    WARN("dl* are interposed by a sanitizer runtime: caller identity cannot be compared");
    return;
  }
  REQUIRE(trampoline_available());
  Fixture fx;
  const void* ip = fx.caller_ip();
  REQUIRE(object_base(ip) == object_base(reinterpret_cast<const void*>(fx.dlsym)));
  CallerContext ctx(ip);
  REQUIRE(ctx.preserved());
  CHECK(ctx.caller_ip() == ip);
  // The gadget is a `ret` inside the caller's object.
  CHECK(object_base(ctx.gadget()) == object_base(ip));
  CHECK(*static_cast<const uint8_t*>(ctx.gadget()) == 0xc3);

  SECTION("dlsym(RTLD_NEXT) starts after the caller") {
    void* expected = fx.dlsym(RTLD_NEXT, "fx_shared_name");
    REQUIRE(expected != nullptr);
    CHECK(reinterpret_cast<int (*)()>(expected)() == 2);  // caller_fx_next's definition
    CHECK(ctx.dlsym(RTLD_NEXT, "fx_shared_name") == expected);
    CHECK(take_error() == "<none>");
    // Made from here directly, the same call means something else.
    CHECK(dlsym(RTLD_NEXT, "fx_shared_name") != expected);
    take_error();
    CHECK(ctx.dlvsym(RTLD_NEXT, "fx_shared_name", "ANY_1") ==
          fx.dlvsym(RTLD_NEXT, "fx_shared_name", "ANY_1"));
  }

  SECTION("dlsym(RTLD_DEFAULT) error text names the caller") {
    take_error();
    REQUIRE(fx.dlsym(RTLD_DEFAULT, "no_such_symbol") == nullptr);
    std::string expected = take_error();
    CHECK(expected.find("libcaller_fx_main.so") != std::string::npos);
    REQUIRE(ctx.dlsym(RTLD_DEFAULT, "no_such_symbol") == nullptr);
    CHECK(take_error() == expected);
    REQUIRE(ctx.dlvsym(RTLD_DEFAULT, "no_such_symbol", "V_1") == nullptr);
    std::string via_ctx = take_error();
    REQUIRE(fx.dlvsym(RTLD_DEFAULT, "no_such_symbol", "V_1") == nullptr);
    CHECK(via_ctx == take_error());
    REQUIRE(dlsym(RTLD_DEFAULT, "no_such_symbol") == nullptr);
    CHECK(take_error() != expected);
  }

  SECTION("dlopen of a bare name searches the caller's RUNPATH") {
    // Not on the default search path: from here it fails.
    take_error();
    CHECK(dlopen("libcaller_fx_sub.so", RTLD_NOW | RTLD_NOLOAD) == nullptr);
    REQUIRE(dlopen("libcaller_fx_sub.so", RTLD_NOW) == nullptr);
    CHECK(take_error().find("cannot open shared object file") != std::string::npos);
    void* via_ctx = ctx.dlopen("libcaller_fx_sub.so", RTLD_NOW);
    CHECK(take_error() == "<none>");
    REQUIRE(via_ctx != nullptr);
    void* expected = fx.dlopen("libcaller_fx_sub.so", RTLD_NOW);
    CHECK(via_ctx == expected);
    void* via_dlmopen = ctx.dlmopen(LM_ID_BASE, "libcaller_fx_sub.so", RTLD_NOW);
    CHECK(via_dlmopen == expected);
    CHECK(take_error() == "<none>");
    for (void* h : {via_ctx, expected, via_dlmopen})
      if (h) dlclose(h);
  }
}

TEST_CASE("CallerContext without a known caller calls directly", "[caller_context]") {
  static int not_code = 0;
  CallerContext heap_ctx(&not_code);  // data, not inside any executable segment's code
  CallerContext null_ctx(nullptr);
  CHECK_FALSE(null_ctx.preserved());
  CHECK(null_ctx.dlsym(RTLD_DEFAULT, "malloc") == dlsym(RTLD_DEFAULT, "malloc"));
  CHECK(heap_ctx.dlsym(RTLD_DEFAULT, "malloc") == dlsym(RTLD_DEFAULT, "malloc"));
}

TEST_CASE("CallerContext construction leaves dlerror alone", "[caller_context]") {
  settle_fixtures();
  REQUIRE(dlsym(RTLD_DEFAULT, "no_such_symbol_armed") == nullptr);
  void* h = dlopen(fixture("libcaller_fx_next.so").c_str(), RTLD_NOW | RTLD_NOLOAD);  // no error
  REQUIRE(dlsym(RTLD_DEFAULT, "no_such_symbol_armed") == nullptr);
  // Once for a new object (gadget search), once cached.
  void* ver = dlopen(fixture("libcaller_fx_ver_sysv.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE(ver != nullptr);
  void* ip = dlsym(ver, "fx_plain");
  REQUIRE(ip != nullptr);
  REQUIRE(dlsym(RTLD_DEFAULT, "no_such_symbol_armed") == nullptr);
  CallerContext first(ip);
  CallerContext second(first.caller_ip());
  CHECK(first.gadget() == second.gadget());
  const char* err = dlerror();
  REQUIRE(err != nullptr);
  CHECK(std::strstr(err, "no_such_symbol_armed") != nullptr);
  if (h) dlclose(h);
  dlclose(ver);
}

TEST_CASE("CallerContext gadget cache follows unloads", "[caller_context]") {
  settle_fixtures();
  for (int round = 0; round < 3; ++round) {
    void* h = dlopen(fixture("libcaller_fx_ver_gnu.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(h != nullptr);
    const void* ip = dlsym(h, "fx_plain");
    REQUIRE(ip != nullptr);
    CallerContext ctx(ip);
    if (trampoline_available()) {
      REQUIRE(ctx.preserved());
      CHECK(object_base(ctx.gadget()) == object_base(ip));
      CHECK(*static_cast<const uint8_t*>(ctx.gadget()) == 0xc3);
    }
    CHECK(ctx.dlsym(h, "fx_plain") == ip);
    dlclose(h);
    // Something else between the rounds, so the next mapping may differ.
    void* other = dlopen(fixture("libcaller_fx_ver_sysv.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(other != nullptr);
    dlclose(other);
  }
}

TEST_CASE("CallerContext is consistent across threads", "[caller_context]") {
  const bool compare_results = real_dl_functions_are_libc();
  Fixture fx;
  const void* ip = fx.caller_ip();
  const void* gadget = CallerContext(ip).gadget();
  void* expected = fx.dlsym(RTLD_NEXT, "fx_shared_name");
  if (compare_results) REQUIRE(expected != nullptr);
  std::atomic<int> mismatches{0};
  std::atomic<bool> stop{false};
  // Unloads bump the generation, so the workers keep rescanning and rewriting cache entries.
  std::thread churn([&] {
    while (!stop.load()) {
      void* h = dlopen(fixture("libcaller_fx_ver_sysv.so").c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h) dlclose(h);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        CallerContext ctx(ip);
        if (ctx.gadget() != gadget) ++mismatches;
        if (compare_results && ctx.dlsym(RTLD_NEXT, "fx_shared_name") != expected) ++mismatches;
      }
    });
  for (auto& t : threads) t.join();
  stop = true;
  churn.join();
  CHECK(mismatches.load() == 0);
}

// --- the trampoline itself -----------------------------------------------------------------

namespace {

struct Seen {
  const void* return_address;
  uintptr_t frame_mod16;
  std::vector<uintptr_t> stack;
};
Seen g_seen;

_Unwind_Reason_Code collect(_Unwind_Context* ctx, void* data) {
  auto& v = *static_cast<std::vector<uintptr_t>*>(data);
  v.push_back(_Unwind_GetIP(ctx));
  return v.size() < 32 ? _URC_NO_REASON : _URC_END_OF_STACK;
}

__attribute__((noinline)) uintptr_t three_args(uintptr_t a, uintptr_t b, uintptr_t c) {
  g_seen.return_address = __builtin_return_address(0);
  // With a frame pointer, the saved %rbp sits at entry rsp - 8: 16-aligned iff the ABI holds.
  g_seen.frame_mod16 = reinterpret_cast<uintptr_t>(__builtin_frame_address(0)) % 16;
  alignas(16) volatile double aligned[2] = {double(a), double(b)};
  g_seen.stack.clear();
  _Unwind_Backtrace(collect, &g_seen.stack);
  return a * 100 + b * 10 + c + uintptr_t(aligned[0] - double(a));
}

__attribute__((noinline)) uintptr_t call_through(const void* gadget) {
  uintptr_t r =
      dltrace_call_with_return_address(reinterpret_cast<const void*>(&three_args), gadget, 1, 2, 3);
  __asm__ volatile("" ::: "memory");
  return r;
}

}  // namespace

TEST_CASE("trampoline passes three arguments, keeps alignment and unwinds", "[caller_context]") {
  REQUIRE(trampoline_available());
  Fixture fx;
  CallerContext ctx(fx.caller_ip());
  REQUIRE(ctx.preserved());
  g_seen.stack.reserve(64);
  CHECK(call_through(ctx.gadget()) == 123);
  CHECK(g_seen.return_address == ctx.gadget());
  CHECK(g_seen.frame_mod16 == 0);
  // The unwinder walks three_args -> gadget (fixture FDE) -> trampoline -> call_through.
  auto& s = g_seen.stack;
  auto tramp = reinterpret_cast<uintptr_t>(&dltrace_call_with_return_address);
  auto caller = reinterpret_cast<uintptr_t>(&call_through);
  size_t g = 0, t = 0, c = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == reinterpret_cast<uintptr_t>(ctx.gadget())) g = i;
    if (s[i] > tramp && s[i] < tramp + 64) t = i;
    if (s[i] > caller && s[i] < caller + 256 && c == 0) c = i;
  }
  CHECK(g > 0);
  CHECK(t == g + 1);
  CHECK(c == t + 1);
  // Repeatedly, to catch stack imbalance.
  uintptr_t sum = 0;
  for (int i = 0; i < 1000; ++i)
    sum += dltrace_call_with_return_address(reinterpret_cast<const void*>(&three_args),
                                            ctx.gadget(), 0, 0, i % 10);
  CHECK(sum == 4500);
}

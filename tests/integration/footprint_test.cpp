// The preload's footprint on the traced process: what libdltrace.so needs and exports, and that
// it does not change which unwinder (libgcc_s vs libunwind) the program sees.
#include <catch2/catch.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "harness.h"

using namespace dltrace::test;
using json = nlohmann::json;

namespace {

// The NEEDED entries of `readelf -d` output.
std::set<std::string> needed_entries(const std::string& dynamic_section) {
  const std::regex needed_re(R"(\(NEEDED\)\s+Shared library: \[([^\]]+)\])");
  std::set<std::string> needed;
  for (std::sregex_iterator it(dynamic_section.begin(), dynamic_section.end(), needed_re), end;
       it != end; ++it)
    needed.insert((*it)[1]);
  return needed;
}

}  // namespace

TEST_CASE("libdltrace.so needs only libc", "[footprint]") {
  ProcessResult d = run({"readelf", "-d", "-W", preload_path()});
  REQUIRE(d.exit_code == 0);
  INFO(d.out);
  const std::set<std::string> needed = needed_entries(d.out);
  CHECK(needed.count("libc.so.6") == 1);
  for (const auto& n : needed) {
    INFO("NEEDED " << n);
    // Not even the loader: a NEEDED entry enters the global scope in the preload's place.
    CHECK(n == "libc.so.6");
  }
  CHECK(d.out.find("(TEXTREL)") == std::string::npos);
  CHECK(std::regex_search(d.out, std::regex(R"(\(FLAGS\).*TEXTREL)")) == false);
}

// Every symbol libdltrace.so may export, listed explicitly: each can interpose on the traced
// program, so a new one must be added here on purpose (and proven transparent by its own tests).
const std::set<std::string> kExports = {
    // the dl* interposers (what is recorded)
    "dlopen", "dlmopen", "dlsym", "dlvsym", "dlclose",
    // how a process ends, seen without changing it (signal_dispositions.cpp, process_end.cpp)
    "sigaction", "signal", "bsd_signal", "sysv_signal", "__sysv_signal", "_exit", "_Exit", "execve",
    "execv", "execvp", "execvpe", "execl", "execlp", "execle", "fexecve",
    // the C API
    "dltrace_set_stack_depth", "dltrace_trace_path", "dltrace_attach_namespace"};

TEST_CASE("libdltrace.so exports exactly its interposers, unversioned, and the dltrace_* API",
          "[footprint]") {
  ProcessResult nm = run({"nm", "-D", "--defined-only", preload_path()});
  REQUIRE(nm.exit_code == 0);
  INFO(nm.out);
  std::set<std::string> names;
  std::istringstream in(nm.out);
  std::string l;
  while (std::getline(in, l)) {
    std::istringstream f(l);
    std::string addr, type, name;
    f >> addr >> type >> name;
    if (name.empty()) continue;
    names.insert(name);
  }
  // Present, and unversioned (a versioned definition would not interpose on every reference).
  CHECK(names == kExports);
  ProcessResult vd = run({"readelf", "-V", "-W", preload_path()});
  INFO(vd.out);
  CHECK(vd.out.find("Version definition section") == std::string::npos);
}

namespace {

std::string config_library_path() {
  const std::string p = preload_path();
  return p.substr(0, p.rfind('/') + 1) + "libdltrace_config.so";
}

std::set<std::string> dynamic_symbols(const std::string& lib, const char* which) {
  ProcessResult nm = run({"nm", "-D", which, lib});
  REQUIRE(nm.exit_code == 0);
  std::set<std::string> names;
  std::istringstream in(nm.out);
  std::string l;
  while (std::getline(in, l)) {
    const size_t space = l.rfind(' ');
    std::string name = space == std::string::npos ? l : l.substr(space + 1);
    names.insert(name.substr(0, name.find('@')));
  }
  return names;
}

}  // namespace

// Every process maps libdltrace.so and ld.so binds all it imports before main (issue 16): the
// C++ runtime, which the override config's TOML parser needs, lives in libdltrace_config.so,
// loaded only when DLTRACE_CONFIG is set.
TEST_CASE("libdltrace.so carries no C++ runtime and imports none of its libc functions",
          "[footprint]") {
  ProcessResult nm = run({"nm", "--defined-only", preload_path()});
  REQUIRE(nm.exit_code == 0);
  // (Header-only templates such as std::sort's are code of its own, not the runtime.)
  for (const char* runtime :
       {" __gxx_personality_v0", " __cxa_throw", " __cxa_allocate_exception",
        " __cxa_guard_acquire", " _Znwm", " _ZdlPv", " _ZSt9terminatev", " _ZSt17__throw_bad_alloc",
        " _ZNSt6locale", " _ZNSt7__cxx1112basic_string", " _ZTVN10__cxxabiv"}) {
    INFO("a definition from the C++ runtime: " << runtime);
    CHECK(nm.out.find(runtime) == std::string::npos);
  }
  const std::set<std::string> imports = dynamic_symbols(preload_path(), "--undefined-only");
  INFO(imports.size() << " imports");
  // What libstdc++'s locales, iostreams and exceptions import from libc.
  for (const char* name : {"setlocale", "__newlocale", "__uselocale", "iconv_open", "iconv",
                           "dgettext", "bindtextdomain", "wcrtomb", "mbsrtowcs", "__strtod_l",
                           "__strcoll_l", "__wctype_l", "btowc", "wmemcpy", "abort", "fwrite"}) {
    INFO("imports " << name);
    CHECK(imports.count(name) == 0);
  }
}

TEST_CASE("libdltrace_config.so needs only libc and exports only its entry point", "[footprint]") {
  const std::string lib = config_library_path();
  ProcessResult d = run({"readelf", "-d", "-W", lib});
  REQUIRE(d.exit_code == 0);
  INFO(d.out);
  const std::set<std::string> needed = needed_entries(d.out);
  CHECK(needed.count("libc.so.6") == 1);
  for (const auto& n : needed) {
    INFO("NEEDED " << n);
    // Loaded RTLD_LOCAL only to parse, then unloaded: the loader it names is in the process
    // already and joins no scope through it.
    CHECK((n == "libc.so.6" || n == test_target().loader));
  }
  CHECK(d.out.find("(TEXTREL)") == std::string::npos);
  CHECK(dynamic_symbols(lib, "--defined-only") == std::set<std::string>{"dltrace_config_load_v1"});
  // No STB_GNU_UNIQUE symbol: one would make the library impossible to unload.
  ProcessResult syms = run({"readelf", "--dyn-syms", "-W", lib});
  REQUIRE(syms.exit_code == 0);
  CHECK(syms.out.find("UNIQUE") == std::string::npos);
}

TEST_CASE("the recorder leaves libgcc_s's unwinder in charge and libunwind out of scope",
          "[footprint][differential]") {
  std::string dir = temp_dir("footprint");
  RunOptions opts;
  opts.env["DLTRACE_STACK_DEPTH"] = "32";
  // Same output with and without the preload (and the untraced output is the expected one).
  DifferentialResult d = run_differential({fixture("diff_unwind")}, opts);
  INFO("UNTRACED: " << describe(d.plain));
  INFO("TRACED: " << describe(d.traced));
  REQUIRE(d.plain.exit_code == 0);
  REQUIRE(d.same());
  const std::string& o = d.plain.out;
  CHECK(o.find("RTLD_DEFAULT _Unwind_Backtrace: libgcc_s.so.1\n") != std::string::npos);
  CHECK(o.find("RTLD_DEFAULT _Unwind_RaiseException: libgcc_s.so.1\n") != std::string::npos);
  CHECK(o.find("RTLD_DEFAULT backtrace: libc.so.6\n") != std::string::npos);
  CHECK(o.find("RTLD_DEFAULT unw_backtrace: (null)\n") != std::string::npos);
  CHECK(o.find("self handle unw_backtrace: (null)\n") != std::string::npos);
  CHECK(o.find("caught boom\n") != std::string::npos);

  // The recorder walks stacks itself: no unwinder library enters the process, not even
  // privately, after the calls that took stacks.
  std::string maps_file = dir + "/maps.txt";
  ProcessResult r = run_traced({fixture("diff_unwind"), maps_file}, dir + "/u.trace", opts);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == d.plain.out);
  CHECK(run({"cat", maps_file}).out == "libunwind not mapped\nliblzma not mapped\n");
}

// Cost (issue 16): native stacks map nothing into the process (the recorder's own unwinder
// replaced libunwind and its liblzma), before or after the calls that take them; the trace's
// objects are the program's alone, and the events carry whole stacks (beyond their caller).
TEST_CASE("native stacks map no library: none in an idle process, none after traced calls",
          "[footprint]") {
  std::string dir = temp_dir("no_unwinder_library");
  RunOptions opts;
  opts.env["DLTRACE_STACK_DEPTH"] = "32";
  // The idle process is the host's cat: under an emulator (a cross build's tests) the target's
  // preload cannot enter it, so that half runs natively only.
  if (test_target().emulator.empty()) {
    ProcessResult idle = run_traced({"cat", "/proc/self/maps"}, dir + "/idle.trace", opts);
    INFO(describe(idle));
    REQUIRE(idle.exit_code == 0);
    CHECK(idle.out.find("libdltrace") != std::string::npos);  // the preload was there
    CHECK(idle.out.find("libunwind") == std::string::npos);
    CHECK(idle.out.find("liblzma") == std::string::npos);
    const json idle_trace = export_json(dir + "/idle.trace");
    CHECK(idle_trace["events"].empty());
    CHECK(!idle_trace["objects"].empty());  // the object table is there all the same
  } else {
    WARN("idle half skipped: cat is a host program, the preload is built for "
         << test_target().cpu);
  }

  std::string maps_file = dir + "/maps.txt";
  ProcessResult r = run_traced({fixture("diff_unwind"), maps_file}, dir + "/u.trace", opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK(run({"cat", maps_file}).out == "libunwind not mapped\nliblzma not mapped\n");
  const json t = export_json(dir + "/u.trace");
  REQUIRE(!t["events"].empty());
  for (const auto& e : t["events"]) {
    INFO(e.dump());
    REQUIRE(e["stack"].is_array());
    // main, __libc_start_call_main, __libc_start_main, _start
    CHECK(e["stack"].size() >= 4);
    CHECK(e["stack"][0]["function"].get<std::string>().rfind("main", 0) == 0);  // or main.cold
  }
  for (const auto& o : t["objects"]) {
    INFO(o.dump());
    const std::string path = o["path"].is_string() ? o["path"].get<std::string>() : "";
    CHECK(path.find("libunwind") == std::string::npos);
    CHECK(path.find("liblzma") == std::string::npos);
  }
}

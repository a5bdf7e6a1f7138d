// The one model of ld.so's library search (common/library_search.h, fed from a trace by
// viewer/analysis/library_search.cpp) against ld.so itself: each scenario is a real program
// run under the recorder with LD_DEBUG=libs, and the files the model says ld.so tries for a
// missing library must be exactly the "trying file=" lines ld.so printed for it.
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "analysis/elf_file.h"
#include "analysis/library_search.h"
#include "common/hwcaps.h"
#include "dltrace/reader.h"
#include "model/trace_model.h"

using namespace dltrace;
using namespace dltrace::viewer;

namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

void sh(const std::string& command) {
  INFO(command);
  REQUIRE(std::system(command.c_str()) == 0);
}

bool is_dir(const std::string& path) {
  struct stat st;
  return stat(path.empty() ? "." : path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

// A temporary tree with the scenario's programs and libraries, built with the system compiler.
struct Scenario {
  std::string dir;
  Scenario() {
    char tmpl[] = "/tmp/dltrace-search-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    for (const char* sub : {"a_rp", "d_rp", "exe_rp", "b_run", "llp", "sub"})
      REQUIRE(mkdir((dir + "/" + sub).c_str(), 0755) == 0);
    write_file(dir + "/open.c",
               "#include <dlfcn.h>\n"
               "void* FN(const char* n) { return dlopen(n, RTLD_NOW); }\n");
    write_file(dir + "/host.c",
               "#include <dlfcn.h>\n#include <stdio.h>\n"
               "int main(int argc, char** argv) {\n"
               "  if (argc < 4) return 2;\n"
               "  if (argv[1][0] == '-') { dlopen(argv[3], RTLD_NOW); return 0; }\n"
               "  void* lib = dlopen(argv[1], RTLD_NOW);\n"
               "  if (!lib) { fprintf(stderr, \"%s\\n\", dlerror()); return 3; }\n"
               "  void* (*fn)(const char*) = (void* (*)(const char*))dlsym(lib, argv[2]);\n"
               "  return fn && !fn(argv[3]) ? 0 : 4;\n"
               "}\n");
    const std::string cc = "cc -shared -fPIC -o ";
    const std::string src = " " + shell_quote(dir + "/open.c");
    // liba: DT_RPATH with $ORIGIN, an empty element (the working directory) and $LIB.
    sh(cc + shell_quote(dir + "/liba.so") + " -DFN=a_open" + src +
       " -Wl,--disable-new-dtags,-rpath,'$ORIGIN/a_rp::/nonexistent/$LIB'");
    // libb: DT_RUNPATH only.
    sh(cc + shell_quote(dir + "/libb.so") + " -DFN=b_open" + src +
       " -Wl,--enable-new-dtags,-rpath,'$ORIGIN/b_run'");
    // libcee: no path of its own, a DT_NEEDED of libd whose DT_RPATH finds it: a dlopen from
    // libcee searches libd's RPATH, then the executable's (the l_loader chain).
    sh(cc + shell_quote(dir + "/d_rp/libcee.so") + " -DFN=c_open" + src);
    sh(cc + shell_quote(dir + "/libd.so") + " -DFN=d_open" + src + " -L" +
       shell_quote(dir + "/d_rp") +
       " -Wl,--no-as-needed -lcee -Wl,--disable-new-dtags,-rpath,'$ORIGIN/d_rp'");
    // libe: -z nodeflib: neither the cache nor the default directories.
    sh(cc + shell_quote(dir + "/libe.so") + " -DFN=e_open" + src +
       " -Wl,-z,nodefaultlib -Wl,--disable-new-dtags,-rpath,'$ORIGIN/sub'");
    // host: DT_RPATH with $ORIGIN and $PLATFORM; host_run: DT_RUNPATH.
    sh("cc -o " + shell_quote(dir + "/host") + " " + shell_quote(dir + "/host.c") +
       " -ldl -Wl,--disable-new-dtags,-rpath,'$ORIGIN/exe_rp:/nonexistent/$PLATFORM'");
    sh("cc -o " + shell_quote(dir + "/host_run") + " " + shell_quote(dir + "/host.c") +
       " -ldl -Wl,--enable-new-dtags,-rpath,'$ORIGIN/exe_rp'");
  }
  ~Scenario() { std::system(("rm -rf " + shell_quote(dir)).c_str()); }
};

struct Run {
  std::unique_ptr<TraceReader> reader;
  std::vector<std::string> ld_debug;  // LD_DEBUG=libs lines, the pid prefix removed
};

Run run_traced(const Scenario& s, const std::string& exe, const std::string& lib,
               const std::string& fn, const std::string& missing, const std::string& config = {}) {
  const std::string trace = s.dir + "/" + fn + ".trace";
  const std::string log = s.dir + "/" + fn + ".ld_debug";
  // A relative LD_LIBRARY_PATH element and an empty one: both mean the working directory.
  sh("cd " + shell_quote(s.dir) + " && LD_PRELOAD=" + shell_quote(DLTRACE_TEST_PRELOAD) +
     " DLTRACE_OUTPUT=" + shell_quote(trace) +
     (config.empty() ? std::string() : " DLTRACE_CONFIG=" + shell_quote(config)) +
     " DLTRACE_QUIET=1 LD_DEBUG=libs LD_LIBRARY_PATH=" + shell_quote("llp:;" + s.dir + "/llp:") +
     " ./" + exe + " " + shell_quote(lib) + " " + fn + " " + missing + " 2>" + shell_quote(log));
  Run run;
  std::string error;
  run.reader = TraceReader::open(trace, &error);
  INFO(error);
  REQUIRE(run.reader);
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);) {
    size_t tab = line.find(":\t");
    if (tab != std::string::npos) run.ld_debug.push_back(line.substr(tab + 2));
  }
  return run;
}

// The files ld.so tried for `name`, and the directories it knew to be missing before.
void ld_so_search(const Run& run, const std::string& name, std::vector<std::string>* tried,
                  std::set<std::string>* known_missing) {
  const std::string start = "find library=" + name + " [0]; searching";
  size_t i = 0;
  for (; i < run.ld_debug.size() && run.ld_debug[i] != start; ++i) {
    const std::string& line = run.ld_debug[i];
    if (line.rfind("  trying file=", 0) == 0) {
      std::string d = dir_of(line.substr(14));
      if (d.front() == '/' && !is_dir(d)) known_missing->insert(d);
    }
  }
  REQUIRE(i < run.ld_debug.size());
  for (++i; i < run.ld_debug.size(); ++i) {
    const std::string& line = run.ld_debug[i];
    if (line.rfind("  trying file=", 0) == 0)
      tried->push_back(line.substr(14));
    else if (line.rfind(" search", 0) != 0)
      break;
  }
}

// What the model predicts ld.so printed: its candidates, minus those in a directory ld.so
// already knew to be missing. ld.so remembers an absolute directory that does not exist and
// skips it afterwards; relative ones it tries every time (the working directory may change).
// ld.so stops at the first file that exists (every file of these scenarios is loadable).
std::vector<std::string> predicted(const LibrarySearch& search, std::set<std::string> missing) {
  std::vector<std::string> out;
  for (const std::string& path : search.tried) {
    std::string d = dir_of(path);
    if (missing.count(d)) continue;
    out.push_back(path);
    if (!d.empty() && d.front() == '/' && !is_dir(d)) missing.insert(d);
    struct stat st;
    if (path.front() == '/' && stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) break;
  }
  return out;
}

void check_against_ld_so(const Scenario& s, const std::string& exe, const std::string& lib,
                         const std::string& fn, const std::string& missing) {
  Run run = run_traced(s, exe, lib, fn, missing);
  TraceModel model(*run.reader);
  ElfCache elf;
  // The dlopen of `missing` (failed, or not), copied: the slot a reader hands out lives only
  // for the callback.
  std::optional<format::EventSlot> failed;
  run.reader->for_each_event([&](const format::EventSlot& e) {
    if (e.call == static_cast<uint16_t>(format::CallKind::kDlopen) &&
        run.reader->string(e.name) == missing)
      failed = e;
    return !failed;
  });
  REQUIRE(failed);
  const ObjectRecord* caller = run.reader->object(failed->caller_object);
  REQUIRE(caller != nullptr);
  LibrarySearch search = plan_search(missing, caller, model, elf);

  std::vector<std::string> ld_so;
  std::set<std::string> known_missing;
  ld_so_search(run, missing, &ld_so, &known_missing);
  const std::vector<std::string> model_says = predicted(search, known_missing);
  size_t same = 0;
  while (same < ld_so.size() && same < model_says.size() && ld_so[same] == model_says[same]) ++same;
  std::ostringstream where;  // the first difference, with a little context
  where << ld_so.size() << " files tried by ld.so, " << model_says.size() << " by the model; "
        << same << " agree, then:\n";
  for (size_t i = same; i < same + 4; ++i)
    where << "  ld.so: " << (i < ld_so.size() ? ld_so[i] : "-")
          << "\n  model: " << (i < model_says.size() ? model_says[i] : "-") << "\n";
  INFO(where.str());
  CHECK(ld_so.size() > 4);
  CHECK(model_says == ld_so);
}

}  // namespace

TEST_CASE("library search: the model tries exactly the files ld.so tries", "[search][ld_debug]") {
  Scenario s;
  SECTION("DT_RPATH with $ORIGIN, an empty element and $LIB, then the executable's RPATH") {
    check_against_ld_so(s, "host", s.dir + "/liba.so", "a_open", "libmissing_a.so");
  }
  SECTION("DT_RUNPATH switches every RPATH off and comes after LD_LIBRARY_PATH") {
    check_against_ld_so(s, "host", s.dir + "/libb.so", "b_open", "libmissing_b.so");
  }
  SECTION("a DT_NEEDED object inherits its loader's DT_RPATH (the l_loader chain)") {
    check_against_ld_so(s, "host", s.dir + "/libd.so", "c_open", "libmissing_c.so");
  }
  SECTION("-z nodeflib: no ld.so.cache and no default directories") {
    check_against_ld_so(s, "host", s.dir + "/libe.so", "e_open", "libmissing_e.so");
  }
  SECTION("the executable's DT_RUNPATH, when it dlopens the name itself") {
    check_against_ld_so(s, "host_run", "-", "none", "libmissing_run.so");
  }
  SECTION("a name ld.so.cache knows: the cache's file after the paths, then nothing more") {
    check_against_ld_so(s, "host", "-", "cached", "libz.so.1");
  }
}

// The recorder resolves a dlopen name with the same model to match override rules: a rule that
// names the copy in a hwcaps subdirectory must apply, because that is the copy ld.so loads.
TEST_CASE("library search: the recorder's override matcher sees the copy ld.so loads",
          "[search][ld_debug]") {
  Scenario s;
  common::HwcapsSubdirs subdirs;
  common::compute_hwcaps_subdirs(&subdirs);
  REQUIRE(subdirs.count > 1);
  const std::string best = s.dir + "/exe_rp/" + subdirs.names[0];
  sh("mkdir -p " + shell_quote(best));
  for (const std::string& d : {best, s.dir + "/exe_rp"})
    sh("cc -shared -fPIC -o " + shell_quote(d + "/libfound.so") + " -DFN=f " +
       shell_quote(s.dir + "/open.c"));
  const std::string config = s.dir + "/rules.toml";
  write_file(config, "[[override]]\nmatch = \"*/" + std::string(subdirs.names[0]) +
                         "/libfound.so\"\nadd = [\"RTLD_GLOBAL\"]\n");
  Run run = run_traced(s, "host", "-", "found", "libfound.so", config);

  bool ld_so_loaded_best = false;
  for (const auto& line : run.ld_debug)
    ld_so_loaded_best |= line == "  trying file=" + best + "/libfound.so";
  CHECK(ld_so_loaded_best);
  std::optional<format::EventSlot> open;
  run.reader->for_each_event([&](const format::EventSlot& e) {
    if (run.reader->string(e.name) == "libfound.so") open = e;
    return !open;
  });
  REQUIRE(open);
  CHECK((open->bits & format::kEventOk) != 0);
  CHECK((open->bits & format::kEventOverridden) != 0);
  CHECK((open->effective_flags & RTLD_GLOBAL) != 0);
}

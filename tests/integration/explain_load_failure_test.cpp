// explain on a dlopen that fails inside the loader, with the situations built for real at test
// time: the finding's facts are checked, and the fix it prints is applied and must work.
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

namespace {

// A program that dlopens argv[1] and says whether it worked.
std::string build_opener(const std::string& dir) {
  std::ofstream(dir + "/opener.c")
      << "#include <dlfcn.h>\n#include <stdio.h>\n"
         "int main(int argc, char** argv) {\n"
         "  void* h = dlopen(argv[1], RTLD_NOW);\n"
         "  if (!h) { printf(\"failed: %s\\n\", dlerror()); return 1; }\n"
         "  printf(\"loaded\\n\");\n  return 0;\n}\n";
  build("cc", {"-o", dir + "/opener", dir + "/opener.c", "-ldl"});
  return dir + "/opener";
}

}  // namespace

// libA.so (RUNPATH $ORIGIN/b:$ORIGIN/c) → libB.so (no paths) → libC.so, which sits in c/.
// libA's RUNPATH names c/, but ld.so searches libC.so with libB's paths only: RUNPATH is not
// inherited. The fix must go to libB.so.
TEST_CASE(
    "explain: a dependency's dependency is missing: the needing chain and a fix on the "
    "right object",
    "[explain][load-failure]") {
  const std::string dir = temp_dir("missing-dep");
  run({"mkdir", "-p", dir + "/b", dir + "/c"});
  std::ofstream(dir + "/c.c") << "int c_value(void) { return 3; }\n";
  std::ofstream(dir + "/b.c") << "int c_value(void);\nint b_value(void) { return c_value(); }\n";
  std::ofstream(dir + "/a.c") << "int b_value(void);\nint a_value(void) { return b_value(); }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/c/libC.so", dir + "/c.c"});
  build("cc",
        {"-shared", "-fPIC", "-o", dir + "/b/libB.so", dir + "/b.c", "-L" + dir + "/c", "-lC"});
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libA.so", dir + "/a.c", "-L" + dir + "/b", "-lB",
               "-Wl,--enable-new-dtags,-rpath,$ORIGIN/b:$ORIGIN/c"});
  const std::string opener = build_opener(dir);

  ExplainedRun e = record_and_explain({opener, dir + "/libA.so"}, dir);
  INFO(e.text.out);
  REQUIRE(e.program.exit_code == 1);
  CHECK(e.program.out.find("libC.so: cannot open shared object file") != std::string::npos);
  const nlohmann::json f = finding(e, "library-not-found");
  REQUIRE(f.is_object());
  CHECK(f["library"] == "libC.so");
  CHECK(f["needed_by"] == dir + "/b/libB.so");
  CHECK(f["chain"] == "libA.so → libB.so → libC.so (not found)");
  CHECK(f["candidate"] == dir + "/c/libC.so");
  const std::string& out = e.text.out;
  CHECK(out.find("as a DT_NEEDED entry of libB.so") != std::string::npos);
  CHECK(out.find("libA.so's DT_RUNPATH ($ORIGIN/b:$ORIGIN/c) is not used for libB.so's "
                 "dependencies") != std::string::npos);
  // The search is libB's own: no directory from libA's RUNPATH is claimed to have been tried.
  CHECK(out.find(dir + "/c/libC.so  (") == std::string::npos);

  // Apply the first fix exactly as printed: patchelf on libB.so.
  REQUIRE(f["fixes"].size() >= 2);
  const std::string fix = f["fixes"][0]["text"];
  std::smatch m;
  REQUIRE(std::regex_search(fix, m, std::regex(R"(patchelf --set-rpath (\S+) (\S+)$)")));
  auto unquote = [](std::string s) {
    return s.size() >= 2 && s.front() == '\'' ? s.substr(1, s.size() - 2) : s;
  };
  CHECK(unquote(m[2]) == dir + "/b/libB.so");
  {
    // The second fix, LD_LIBRARY_PATH, works before the first is applied.
    const std::string llp = f["fixes"][1]["text"];
    REQUIRE(llp.rfind("or run with LD_LIBRARY_PATH=", 0) == 0);
    RunOptions opts;
    opts.env["LD_LIBRARY_PATH"] =
        unquote(llp.substr(std::string("or run with LD_LIBRARY_PATH=").size()));
    const ProcessResult fixed = run({opener, dir + "/libA.so"}, opts);
    INFO(describe(fixed));
    CHECK(fixed.exit_code == 0);
  }
  const ProcessResult patch = run({"patchelf", "--set-rpath", unquote(m[1]), unquote(m[2])});
  INFO(describe(patch));
  REQUIRE(patch.exit_code == 0);
  const ProcessResult fixed = run({opener, dir + "/libA.so"});
  INFO(describe(fixed));
  CHECK(fixed.exit_code == 0);
  CHECK(fixed.out == "loaded\n");
}

namespace {

// The finding about the file the opener was given.
nlohmann::json unloadable(const std::string& dir, const std::string& opener,
                          const std::string& file, std::string* text = nullptr) {
  ExplainedRun e = record_and_explain({opener, file}, dir);
  INFO(e.text.out);
  CHECK(e.program.exit_code == 1);
  if (text) *text = e.text.out;
  for (const auto& f : e.json["findings"])
    if (f["kind"] == "load-failed" && f.value("file", "") == file) return f;
  FAIL_CHECK("no load-failed finding about " << file);
  return nullptr;
}

}  // namespace

TEST_CASE("explain: what a file the loader refused is, and what to do instead",
          "[explain][load-failure]") {
  const std::string dir = temp_dir("file-kinds");
  const std::string opener = build_opener(dir);
  std::ofstream(dir + "/lib.c") << "int value(void) { return 42; }\nint main(void) { return 0; }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libgood.so", dir + "/lib.c"});
  auto copy_with = [&](const std::string& name, size_t offset, unsigned char byte) {
    run({"cp", dir + "/libgood.so", dir + "/" + name});
    std::fstream f(dir + "/" + name, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(byte));
  };

  SECTION("a library for another CPU: ld.so says 'cannot open', explain says why") {
    copy_with("libarm.so", 18, 0xb7);  // e_machine = EM_AARCH64
    const auto f = unloadable(dir, opener, dir + "/libarm.so");
    CHECK(f["file_kind"] == "wrong-machine");
    CHECK(f["title"].get<std::string>().find("AArch64") != std::string::npos);
  }
  SECTION("a 32-bit library in a 64-bit process") {
    copy_with("lib32.so", 4, 1);  // EI_CLASS = ELFCLASS32
    const auto f = unloadable(dir, opener, dir + "/lib32.so");
    CHECK(f["file_kind"] == "wrong-class");
  }
  SECTION("an empty file, and one cut short") {
    std::ofstream(dir + "/libempty.so");
    CHECK(unloadable(dir, opener, dir + "/libempty.so")["file_kind"] == "empty");
    run({"sh", "-c", "head -c 100 " + dir + "/libgood.so > " + dir + "/libshort.so"});
    CHECK(unloadable(dir, opener, dir + "/libshort.so")["file_kind"] == "truncated");
  }
  SECTION("a Git LFS pointer and an HTML page saved as .so") {
    std::ofstream(dir + "/liblfs.so")
        << "version https://git-lfs.example/spec/v1\n"
           "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
           "size 12345\n";
    const auto lfs = unloadable(dir, opener, dir + "/liblfs.so");
    CHECK(lfs["file_kind"] == "git-lfs-pointer");
    CHECK(lfs.dump().find("git lfs pull") != std::string::npos);
    std::ofstream(dir + "/libpage.so")
        << "<!DOCTYPE html>\n<html><head><title>404 Not Found</title>"
           "</head><body><h1>Not Found</h1></body></html>\n";
    CHECK(unloadable(dir, opener, dir + "/libpage.so")["file_kind"] == "html");
  }
  SECTION("a linker script: the fix dlopens the library it points to, and that works") {
    // What /usr/lib/x86_64-linux-gnu/libc.so is on Debian, pointing at our library.
    run({"sh", "-c", "cp " + dir + "/libgood.so " + dir + "/libgood.so.1"});
    build("cc", {"-shared", "-fPIC", "-o", dir + "/libgood.so.1", dir + "/lib.c",
                 "-Wl,-soname,libgood.so.1"});
    std::ofstream(dir + "/libscript.so") << "/* GNU ld script */\nOUTPUT_FORMAT(elf64-x86-64)\n"
                                            "GROUP ( " +
                                                dir + "/libgood.so.1 )\n";
    const auto f = unloadable(dir, opener, dir + "/libscript.so");
    CHECK(f["file_kind"] == "linker-script");
    CHECK(f["target"] == dir + "/libgood.so.1");
    const std::string fix = f["fixes"][0]["text"];
    CHECK(fix.find("dlopen(\"libgood.so.1\"") != std::string::npos);
    RunOptions opts;  // the soname is found where the file is: its directory on the search path
    opts.env["LD_LIBRARY_PATH"] = dir;
    const ProcessResult fixed = run({opener, "libgood.so.1"}, opts);
    CHECK(fixed.out == "loaded\n");
  }
  SECTION("an executable: the fix builds the code as a shared library, and that loads") {
    build("cc", {"-fPIE", "-pie", "-o", dir + "/prog", dir + "/lib.c"});
    const auto f = unloadable(dir, opener, dir + "/prog");
    CHECK(f["file_kind"] == "pie-executable");
    const std::string fix = f["fixes"][0]["text"];
    REQUIRE(fix.find("cc -shared -fPIC") != std::string::npos);
    build("cc", {"-shared", "-fPIC", "-o", dir + "/libprog.so", dir + "/lib.c"});
    CHECK(run({opener, dir + "/libprog.so"}).out == "loaded\n");
    build("cc", {"-no-pie", "-o", dir + "/prog_fixed", dir + "/lib.c"});
    CHECK(unloadable(dir, opener, dir + "/prog_fixed")["file_kind"] == "executable");
  }
  SECTION("a relative name is resolved against the traced process's working directory") {
    copy_with("librel.so", 18, 0xb7);
    RunOptions opts;
    opts.cwd = dir;
    ExplainedRun e;
    const std::string trace = dir + "/rel.trace";
    e.program = run_traced({opener, "./librel.so"}, trace, opts);
    // explain runs elsewhere: the recorded cwd, not explain's, decides what the name meant.
    const ProcessResult j = run({viewer_path(), "explain", "--json", trace});
    const auto json = nlohmann::json::parse(j.out);
    bool found = false;
    for (const auto& f : json["findings"])
      if (f["kind"] == "load-failed" && f.value("file", "") == dir + "/librel.so") {
        found = true;
        CHECK(f["file_kind"] == "wrong-machine");
        CHECK(f.dump().find("the name was relative") != std::string::npos);
      }
    CHECK(found);
  }
}

// An object dlopen'ed as "./libgood.so" keeps that name; explain, run from another directory,
// reads the file from the traced process's recorded working directory, not its own.
TEST_CASE("explain: objects loaded by a relative name are found from any directory",
          "[explain][load-failure]") {
  const std::string dir = temp_dir("relative-object");
  const std::string opener = build_opener(dir);
  std::ofstream(dir + "/lib.c") << "int value(void) { return 42; }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libgood.so", dir + "/lib.c"});
  RunOptions opts;
  opts.cwd = dir;
  const std::string trace = dir + "/rel.trace";
  const ProcessResult p = run_traced({opener, "./libgood.so"}, trace, opts);
  REQUIRE(p.out == "loaded\n");
  RunOptions elsewhere;
  elsewhere.cwd = "/";
  const ProcessResult e = run({viewer_path(), "explain", "--color=never", trace}, elsewhere);
  INFO(e.out);
  CHECK(e.out.find("is gone") == std::string::npos);
  CHECK(e.out.find("./libgood.so") == std::string::npos);
  CHECK(e.exit_code == 0);
}

// 8 KiB of initial-exec TLS does not fit in what glibc keeps for libraries dlopen'ed later.
TEST_CASE("explain: no room in the static TLS block: the size, and fixes that work",
          "[explain][load-failure]") {
  const std::string dir = temp_dir("static-tls");
  const std::string opener = build_opener(dir);
  std::ofstream(dir + "/tls.c")
      << "__thread char big[8192] __attribute__((tls_model(\"initial-exec\")));\n"
         "char* tls_buffer(void) { big[0] = 1; return big; }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libtls.so", dir + "/tls.c"});
  ExplainedRun e = record_and_explain({opener, dir + "/libtls.so"}, dir);
  INFO(e.text.out);
  REQUIRE(e.program.out.find("cannot allocate memory in static TLS block") != std::string::npos);
  const nlohmann::json f = finding(e, "static-tls");
  REQUIRE(f.is_object());
  CHECK(f["tls_size"] == "8192");
  CHECK(e.text.out.find("initial-exec model") != std::string::npos);

  // Each fix, applied as printed, makes the dlopen work.
  const std::string tunable_fix = f["fixes"][0]["text"];
  std::smatch m;
  REQUIRE(std::regex_search(tunable_fix, m, std::regex(R"(GLIBC_TUNABLES=(\S+))")));
  RunOptions tunable;
  tunable.env["GLIBC_TUNABLES"] = m[1];
  CHECK(run({opener, dir + "/libtls.so"}, tunable).out == "loaded\n");
  const std::string preload_fix = f["fixes"][1]["text"];
  REQUIRE(std::regex_search(preload_fix, m, std::regex(R"(LD_PRELOAD=(\S+))")));
  RunOptions preload;
  preload.env["LD_PRELOAD"] = m[1];
  CHECK(run({opener, dir + "/libtls.so"}, preload).out == "loaded\n");
  REQUIRE(std::string(f["fixes"][2]["text"]).find("-ftls-model=global-dynamic") !=
          std::string::npos);
  std::ofstream(dir + "/tls_gd.c") << "__thread char big[8192];\n"
                                      "char* tls_buffer(void) { big[0] = 1; return big; }\n";
  build("cc", {"-shared", "-fPIC", "-ftls-model=global-dynamic", "-o", dir + "/libtls_gd.so",
               dir + "/tls_gd.c"});
  CHECK(run({opener, dir + "/libtls_gd.so"}).out == "loaded\n");
}

// A plugin that dlopens "./helpers/libh.so" works only when started from its own directory.
TEST_CASE("explain: a relative dlopen name depends on the working directory",
          "[explain][load-failure]") {
  const std::string dir = temp_dir("relative-name");
  run({"mkdir", "-p", dir + "/plugin/helpers"});
  const std::string opener = build_opener(dir);
  std::ofstream(dir + "/h.c") << "int helper(void) { return 1; }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/plugin/helpers/libh.so", dir + "/h.c"});
  auto plugin_source = [&](const std::string& name) {
    std::ofstream(dir + "/plug.c") << "#include <dlfcn.h>\n#include <stdio.h>\n"
                                      "__attribute__((constructor)) static void init(void) {\n"
                                      "  if (!dlopen(\"" +
                                          name +
                                          "\", RTLD_NOW)) printf(\"helper: %s\\n\", dlerror());\n"
                                          "}\n";
  };
  plugin_source("./helpers/libh.so");
  build("cc", {"-shared", "-fPIC", "-o", dir + "/plugin/libplug.so", dir + "/plug.c", "-ldl"});
  ExplainedRun e = record_and_explain({opener, dir + "/plugin/libplug.so"}, dir);
  INFO(e.text.out);
  REQUIRE(e.program.out.find("helper: ./helpers/libh.so: cannot open") != std::string::npos);
  nlohmann::json f;
  for (const auto& x : e.json["findings"])
    if (x["kind"] == "library-not-found" && x.value("library", "") == "./helpers/libh.so") f = x;
  REQUIRE(f.is_object());
  CHECK(f["candidate"] == dir + "/plugin/helpers/libh.so");
  CHECK(f["cwd"] != "");
  CHECK(std::string(f["title"]).find("relative to the working directory") != std::string::npos);
  // From the plugin's directory the same program works: the name depends on the cwd.
  RunOptions there;
  there.cwd = dir + "/plugin";
  CHECK(run({opener, dir + "/plugin/libplug.so"}, there).out == "loaded\n");
  // The second fix, applied: the bare name and a DT_RUNPATH entry $ORIGIN/helpers.
  const std::string fix = f["fixes"][1]["text"];
  REQUIRE(fix.find("-Wl,-rpath,'$ORIGIN/helpers'") != std::string::npos);
  plugin_source("libh.so");
  build("cc", {"-shared", "-fPIC", "-o", dir + "/plugin/libplug.so", dir + "/plug.c", "-ldl",
               "-Wl,-rpath,$ORIGIN/helpers"});
  CHECK(run({opener, dir + "/plugin/libplug.so"}).out == "loaded\n");
}

// A dependency cut short after its headers: ld.so maps it and the process dies with SIGBUS
// inside dlopen. The recorder's in-flight mark must leave the call in every view, and explain
// must name the file that is cut short; putting the complete file back (with a rename) fixes it.
TEST_CASE("explain: a process that died inside dlopen: the call in every view, and the file",
          "[explain][load-failure][in-flight]") {
  const std::string dir = temp_dir("in-flight");
  std::ofstream(dir + "/big.c") << "int big_table[200000] = {1};\n"
                                   "int big_value(void) { return big_table[7]; }\n";
  std::ofstream(dir + "/plug.c") << "int big_value(void);\n"
                                    "int plug_value(void) { return big_value(); }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libbig.so.full", dir + "/big.c",
               "-Wl,-soname,libbig.so"});
  run({"cp", dir + "/libbig.so.full", dir + "/libbig.so"});
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libplug.so", dir + "/plug.c", "-L" + dir, "-lbig",
               "-Wl,--enable-new-dtags,-rpath,$ORIGIN"});
  const std::string opener = build_opener(dir);
  // Keep the ELF header and program headers, cut the segments (the dynamic section too).
  REQUIRE(run({"truncate", "-s", "4096", dir + "/libbig.so"}).exit_code == 0);

  const std::string trace = dir + "/died.trace";
  const ProcessResult died = run_traced({opener, dir + "/libplug.so"}, trace);
  INFO(describe(died));
  REQUIRE(died.signal == SIGBUS);

  const std::string call = "dlopen(\"" + dir + "/libplug.so\", RTLD_NOW|RTLD_LOCAL)";
  const ProcessResult show = run({viewer_path(), "show", "--color=never", trace});
  INFO(show.out);
  CHECK(show.out.find("never returned: the process ended inside it") != std::string::npos);
  CHECK(show.out.find("died inside " + call) != std::string::npos);
  CHECK(show.out.find("(killed by signal 7 (SIGBUS))") != std::string::npos);
  const ProcessResult tree = run({viewer_path(), "tree", "--color=never", trace});
  INFO(tree.out);
  CHECK(tree.out.find("✗ died inside " + call) != std::string::npos);
  const ProcessResult stats = run({viewer_path(), "stats", trace});
  INFO(stats.out);
  CHECK(stats.out.find("died inside " + call) != std::string::npos);
  CHECK(stats.out.find("failed:    0 call(s)") != std::string::npos);
  const ProcessResult exported = run({viewer_path(), "export", "--format", "json", trace});
  const auto j = nlohmann::json::parse(exported.out, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  int marked = 0;
  for (const auto& ev : j["events"])
    if (ev.value("in_flight", false)) {
      ++marked;
      CHECK(ev["call"] == "dlopen");
      CHECK(ev["ok"].is_null());
      CHECK(ev["duration_ns"].is_null());
      CHECK(ev["file"] == dir + "/libplug.so");
    }
  CHECK(marked == 1);

  const ProcessResult text = run({viewer_path(), "explain", "--color=never", trace});
  INFO(text.out);
  CHECK(text.exit_code != 0);
  const ProcessResult js = run({viewer_path(), "explain", "--json", trace});
  const auto ej = nlohmann::json::parse(js.out, nullptr, false);
  REQUIRE_FALSE(ej.is_discarded());
  nlohmann::json f;
  for (const auto& x : ej["findings"])
    if (x["kind"] == "died-in-call") f = x;
  REQUIRE(f.is_object());
  CHECK(f["severity"] == "error");
  CHECK(f["cut_short"] == dir + "/libbig.so");
  CHECK(f["file_kind"] == "truncated");
  CHECK(text.out.find("Died inside " + call) != std::string::npos);
  CHECK(text.out.find("ld.so maps it as a dependency of libplug.so") != std::string::npos);
  REQUIRE(f["fixes"].size() == 1);
  CHECK(std::string(f["fixes"][0]["text"]).find("Replace " + dir + "/libbig.so") == 0);

  // The fix: a complete copy, installed with a rename.
  REQUIRE(run({"mv", dir + "/libbig.so.full", dir + "/libbig.so"}).exit_code == 0);
  const ProcessResult fixed = run({opener, dir + "/libplug.so"});
  INFO(describe(fixed));
  CHECK(fixed.exit_code == 0);
  CHECK(fixed.out == "loaded\n");
}

// A constructor that calls exit(): the process ends inside dlopen, with a status; the files
// are complete, so explain blames no file and prints no fix.
TEST_CASE("explain: a constructor that exits ends the process inside dlopen",
          "[explain][load-failure][in-flight]") {
  const std::string dir = temp_dir("in-flight-exit");
  std::ofstream(dir + "/quit.c") << "#include <stdlib.h>\n"
                                    "__attribute__((constructor)) static void quit(void) "
                                    "{ exit(3); }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libquit.so", dir + "/quit.c"});
  const std::string opener = build_opener(dir);
  ExplainedRun e = record_and_explain({opener, dir + "/libquit.so"}, dir);
  INFO(e.text.out);
  REQUIRE(e.program.exit_code == 3);
  const nlohmann::json f = finding(e, "died-in-call");
  REQUIRE(f.is_object());
  CHECK(f["end"] == "exit");
  CHECK(f.value("cut_short", "") == "");
  CHECK(f["fixes"].empty());
  CHECK(e.text.out.find("Exited with status 3 inside dlopen(\"" + dir +
                        "/libquit.so\", RTLD_NOW|RTLD_LOCAL)") != std::string::npos);
  CHECK(e.text.out.find("complete on disk now (libquit.so)") != std::string::npos);
}

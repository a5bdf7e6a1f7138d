// explain on undefined symbols whose definition exists under another spelling or out of ld.so's
// sight (a near miss): the other C++ ABI, C++ mangling instead of extern "C" and the reverse,
// another symbol version, hidden, version-script local, static. Each situation is built at test
// time, recorded under the preload, and the finding's facts are checked against the files
// (nm); then the fix it prints is applied (the library or plugin rebuilt) and the failure is
// gone.
#include <catch2/catch.hpp>
#include <fstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

namespace {

// A program that dlopens argv[1] and, with argv[2], calls the int(void) function of that name.
std::string build_host(const std::string& dir) {
  std::ofstream(dir + "/host.c")
      << "#include <dlfcn.h>\n#include <stdio.h>\n"
         "int main(int argc, char** argv) {\n"
         "  void* h = dlopen(argv[1], RTLD_NOW);\n"
         "  if (!h) { printf(\"failed: %s\\n\", dlerror()); return 1; }\n"
         "  if (argc < 3) { printf(\"loaded\\n\"); return 0; }\n"
         "  int (*f)(void) = (int (*)(void))dlsym(h, argv[2]);\n"
         "  if (!f) { printf(\"failed: %s\\n\", dlerror()); return 1; }\n"
         "  printf(\"%s() = %d\\n\", argv[2], f());\n  return 0;\n}\n";
  build("cc", {"-o", dir + "/host", dir + "/host.c", "-ldl"});
  return dir + "/host";
}

// The defined dynamic symbol of `file` whose name contains `part`, as nm -D prints it.
std::string dynamic_symbol(const std::string& file, const std::string& part) {
  const ProcessResult nm = run({"nm", "-D", "--defined-only", file});
  REQUIRE(nm.exit_code == 0);
  size_t at = 0;
  while (at < nm.out.size()) {
    const size_t end = nm.out.find('\n', at);
    const std::string line = nm.out.substr(at, end - at);
    at = end == std::string::npos ? nm.out.size() : end + 1;
    const std::string name = line.substr(line.rfind(' ') + 1);
    if (name.find(part) != std::string::npos) return name;
  }
  return {};
}

bool any_fix_mentions(const nlohmann::json& f, const std::string& needle) {
  for (const auto& fix : f["fixes"])
    if (fix["text"].get<std::string>().find(needle) != std::string::npos) return true;
  return false;
}

// What every near-miss finding owes the user: the cause, and no RTLD_GLOBAL/override advice
// (no object exports the name that was asked for).
void check_no_flag_fix(const nlohmann::json& f) {
  CHECK_FALSE(any_fix_mentions(f, "RTLD_GLOBAL"));
  for (const auto& fix : f["fixes"]) CHECK(fix["config"].is_null());
}

}  // namespace

TEST_CASE(
    "near miss: a plugin built with the old C++ ABI needs a function the library has "
    "under the new one; rebuilding it with the library's setting fixes it",
    "[explain][near-miss]") {
  const std::string dir = temp_dir("nm-abi");
  std::ofstream(dir + "/greet.cpp")
      << "#include <string>\n#include <cstdio>\n"
         "void greet(const std::string& s) { std::printf(\"hello %s\\n\", s.c_str()); }\n"
         "std::string name() { return \"lib\"; }\n";
  build("c++", {"-shared", "-fPIC", "-o", dir + "/libgreet.so", dir + "/greet.cpp"});
  const std::string host = build_host(dir);

  SECTION("an argument of type std::string: _Z5greetRKSs against the __cxx11 spelling") {
    std::ofstream(dir + "/plugin.cpp")
        << "#include <string>\nvoid greet(const std::string&);\n"
           "extern \"C\" int run(void) { greet(\"x\"); return 7; }\n";
    auto plugin = [&](bool fixed) {
      std::vector<std::string> args{
          "-shared",           "-fPIC",    "-o",      dir + "/plugin.so",
          dir + "/plugin.cpp", "-L" + dir, "-lgreet", "-Wl,-rpath," + dir};
      if (!fixed) args.push_back("-D_GLIBCXX_USE_CXX11_ABI=0");
      build("c++", args);
    };
    plugin(false);
    ExplainedRun e = record_and_explain({host, dir + "/plugin.so", "run"}, dir);
    INFO(e.program.out << e.text.out);
    REQUIRE(e.program.exit_code == 1);
    const nlohmann::json f = finding(e, "undefined-symbol-cxx-abi");
    REQUIRE(f.is_object());
    CHECK(f["symbol"] == "_Z5greetRKSs");
    CHECK(f["symbol_demangled"] == "greet(std::string const&)");
    CHECK(f["definition"] == dynamic_symbol(dir + "/libgreet.so", "greet"));
    CHECK(f["definition_demangled"].get<std::string>().find("std::__cxx11::basic_string") !=
          std::string::npos);
    CHECK(f["defined_in"] == dir + "/libgreet.so");
    CHECK(f["abi_asked"] == "old");
    CHECK(f["near_miss"] == "cxx-abi");
    check_no_flag_fix(f);
    const std::string fix = f["fixes"][0]["text"];
    CHECK(fix.find("rebuild plugin.so without -D_GLIBCXX_USE_CXX11_ABI=0") == 0);
    plugin(true);
    const ProcessResult fixed = run({host, dir + "/plugin.so", "run"});
    INFO(describe(fixed));
    CHECK(fixed.exit_code == 0);
    CHECK(fixed.out == "hello x\nrun() = 7\n");
  }
  SECTION("a function returning std::string: name() against name[abi:cxx11]()") {
    std::ofstream(dir + "/plugin.cpp")
        << "#include <string>\nstd::string name();\n"
           "extern \"C\" int run(void) { return (int)name().size(); }\n";
    auto plugin = [&](bool fixed) {
      std::vector<std::string> args{
          "-shared",           "-fPIC",    "-o",      dir + "/plugin.so",
          dir + "/plugin.cpp", "-L" + dir, "-lgreet", "-Wl,-rpath," + dir};
      if (!fixed) args.push_back("-D_GLIBCXX_USE_CXX11_ABI=0");
      build("c++", args);
    };
    plugin(false);
    ExplainedRun e = record_and_explain({host, dir + "/plugin.so", "run"}, dir);
    INFO(e.program.out << e.text.out);
    const nlohmann::json f = finding(e, "undefined-symbol-cxx-abi");
    REQUIRE(f.is_object());
    CHECK(f["symbol"] == "_Z4namev");
    CHECK(f["definition"] == "_Z4nameB5cxx11v");
    CHECK(f["definition_demangled"] == "name[abi:cxx11]()");
    check_no_flag_fix(f);
    plugin(true);
    const ProcessResult fixed = run({host, dir + "/plugin.so", "run"});
    INFO(describe(fixed));
    CHECK(fixed.out == "run() = 3\n");
  }
}

TEST_CASE("near miss: dlsym of a C name that the library compiled as C++; extern \"C\" fixes it",
          "[explain][near-miss]") {
  const std::string dir = temp_dir("nm-externc");
  const std::string host = build_host(dir);
  auto library = [&](bool fixed) {
    std::ofstream(dir + "/plugin.cpp")
        << (fixed ? "extern \"C\" " : "") << "int create_plugin() { return 42; }\n";
    build("c++", {"-shared", "-fPIC", "-o", dir + "/libplugin.so", dir + "/plugin.cpp"});
  };
  library(false);
  ExplainedRun e = record_and_explain({host, dir + "/libplugin.so", "create_plugin"}, dir);
  INFO(e.program.out << e.text.out);
  REQUIRE(e.program.exit_code == 1);
  const nlohmann::json f = finding(e, "undefined-symbol-not-extern-c");
  REQUIRE(f.is_object());
  CHECK(f["severity"] == "error");
  CHECK(f["symbol"] == "create_plugin");
  CHECK(f["definition"] == dynamic_symbol(dir + "/libplugin.so", "create_plugin"));
  CHECK(f["definition"] == "_Z13create_pluginv");
  CHECK(f["defined_in"] == dir + "/libplugin.so");
  CHECK(f["title"].get<std::string>().find("libplugin.so exports it only as the C++ function "
                                           "create_plugin()") != std::string::npos);
  check_no_flag_fix(f);
  CHECK(any_fix_mentions(f, "declare create_plugin extern \"C\""));
  library(true);
  const ProcessResult fixed = run({host, dir + "/libplugin.so", "create_plugin"});
  INFO(describe(fixed));
  CHECK(fixed.out == "create_plugin() = 42\n");
}

TEST_CASE(
    "near miss: a C++ plugin calls a C library's function without extern \"C\"; declaring "
    "it extern \"C\" fixes it",
    "[explain][near-miss]") {
  const std::string dir = temp_dir("nm-cname");
  const std::string host = build_host(dir);
  std::ofstream(dir + "/widget.c") << "int make_widget(void) { return 5; }\n";
  build("cc", {"-shared", "-fPIC", "-o", dir + "/libwidget.so", dir + "/widget.c"});
  auto plugin = [&](bool fixed) {
    std::ofstream(dir + "/plugin.cpp") << (fixed ? "extern \"C\" " : "") << "int make_widget();\n"
                                       << "extern \"C\" int run(void) { return make_widget(); }\n";
    build("c++", {"-shared", "-fPIC", "-o", dir + "/plugin.so", dir + "/plugin.cpp", "-L" + dir,
                  "-lwidget", "-Wl,-rpath," + dir});
  };
  plugin(false);
  ExplainedRun e = record_and_explain({host, dir + "/plugin.so", "run"}, dir);
  INFO(e.program.out << e.text.out);
  REQUIRE(e.program.exit_code == 1);
  const nlohmann::json f = finding(e, "undefined-symbol-extern-c");
  REQUIRE(f.is_object());
  CHECK(f["symbol"] == "_Z11make_widgetv");
  CHECK(f["symbol_demangled"] == "make_widget()");
  CHECK(f["definition"] == "make_widget");
  CHECK(f["defined_in"] == dir + "/libwidget.so");
  CHECK(f["needed_by"] == dir + "/plugin.so");
  check_no_flag_fix(f);
  CHECK(any_fix_mentions(f, "declare make_widget extern \"C\" where plugin.so uses it"));
  plugin(true);
  const ProcessResult fixed = run({host, dir + "/plugin.so", "run"});
  INFO(describe(fixed));
  CHECK(fixed.out == "run() = 5\n");
}

TEST_CASE(
    "near miss: a library defines the symbol but does not export it (hidden, version "
    "script, static); exporting it fixes it",
    "[explain][near-miss]") {
  const std::string dir = temp_dir("nm-hidden");
  const std::string host = build_host(dir);
  std::ofstream(dir + "/plugin.c") << "int helper(void);\nint run(void) { return helper(); }\n";
  auto plugin = [&] {
    build("cc", {"-shared", "-fPIC", "-o", dir + "/plugin.so", dir + "/plugin.c", "-L" + dir,
                 "-lhelp", "-Wl,-rpath," + dir});
  };
  auto expect = [&](const std::string& visibility, const std::string& fix_start) {
    plugin();
    ExplainedRun e = record_and_explain({host, dir + "/plugin.so", "run"}, dir);
    INFO(e.program.out << e.text.out);
    REQUIRE(e.program.exit_code == 1);
    const nlohmann::json f = finding(e, "symbol-not-exported");
    REQUIRE(f.is_object());
    CHECK(f["symbol"] == "helper");
    CHECK(f["defined_in"] == dir + "/libhelp.so");
    CHECK(f["visibility"] == visibility);
    CHECK(f["near_miss"] == (visibility == "static" ? "static" : "hidden"));
    CHECK(dynamic_symbol(dir + "/libhelp.so", "helper").empty());
    check_no_flag_fix(f);
    CHECK(any_fix_mentions(f, fix_start));
    // The linker dropped libhelp.so from plugin.so (--as-needed): the fix says to relink.
    CHECK(any_fix_mentions(f, "then relink plugin.so with " + dir + "/libhelp.so"));
  };
  auto works = [&] {
    plugin();  // the fix's second half: plugin.so names libhelp.so again
    const ProcessResult fixed = run({host, dir + "/plugin.so", "run"});
    INFO(describe(fixed));
    CHECK(fixed.out == "run() = 9\n");
  };
  SECTION("-fvisibility=hidden: marking it visibility(\"default\") fixes it") {
    std::ofstream(dir + "/help.c") << "#ifndef API\n#define API\n#endif\n"
                                      "API int helper(void) { return 9; }\n";
    build("cc",
          {"-shared", "-fPIC", "-fvisibility=hidden", "-o", dir + "/libhelp.so", dir + "/help.c"});
    expect("hidden", "mark its declaration __attribute__((visibility(\"default\")))");
    build("cc", {"-shared", "-fPIC", "-fvisibility=hidden",
                 "-DAPI=__attribute__((visibility(\"default\")))", "-o", dir + "/libhelp.so",
                 dir + "/help.c"});
    works();
  }
  SECTION("a version script's local: *: listing it under global: fixes it") {
    std::ofstream(dir + "/help.c")
        << "int helper(void) { return 9; }\nint api(void) { return 1; }\n";
    std::ofstream(dir + "/help.map") << "{ global: api; local: *; };\n";
    build("cc", {"-shared", "-fPIC", "-o", dir + "/libhelp.so", dir + "/help.c",
                 "-Wl,--version-script=" + dir + "/help.map"});
    expect("hidden", "list helper under global:");
    std::ofstream(dir + "/help.map") << "{ global: api; helper; local: *; };\n";
    build("cc", {"-shared", "-fPIC", "-o", dir + "/libhelp.so", dir + "/help.c",
                 "-Wl,--version-script=" + dir + "/help.map"});
    works();
  }
  SECTION("static: giving it external linkage fixes it") {
    std::ofstream(dir + "/help.c") << "static int helper(void) { return 9; }\n"
                                      "int api(void) { return helper(); }\n";
    build("cc", {"-shared", "-fPIC", "-o", dir + "/libhelp.so", dir + "/help.c"});
    expect("static", "give helper external linkage");
    std::ofstream(dir + "/help.c") << "int helper(void) { return 9; }\n"
                                      "int api(void) { return helper(); }\n";
    build("cc", {"-shared", "-fPIC", "-o", dir + "/libhelp.so", dir + "/help.c"});
    works();
  }
}

TEST_CASE(
    "near miss: the loaded library has the symbol under another version; rebuilding the "
    "plugin against it, or loading the copy it was built against, fixes it",
    "[explain][near-miss]") {
  const std::string dir = temp_dir("nm-version");
  run({"mkdir", "-p", dir + "/built"});
  const std::string host = build_host(dir);
  std::ofstream(dir + "/ver.c") << "int ver_fn(void) { return 11; }\nint other_fn(void) "
                                   "{ return 0; }\n";
  // The library the plugin was built against has ver_fn@VER_2; the deployed one @VER_1.
  std::ofstream(dir + "/built.map") << "VER_1 { global: other_fn; local: *; };\n"
                                       "VER_2 { global: ver_fn; } VER_1;\n";
  std::ofstream(dir + "/deployed.map") << "VER_1 { global: ver_fn; local: *; };\n"
                                          "VER_2 { global: other_fn; } VER_1;\n";
  auto library = [&](const std::string& out, const std::string& map) {
    build("cc", {"-shared", "-fPIC", "-o", out, dir + "/ver.c", "-Wl,-soname,libver.so",
                 "-Wl,--version-script=" + map});
  };
  library(dir + "/built/libver.so", dir + "/built.map");
  library(dir + "/libver.so", dir + "/deployed.map");
  std::ofstream(dir + "/plugin.c") << "int ver_fn(void);\nint run(void) { return ver_fn(); }\n";
  auto plugin = [&](const std::string& against) {
    build("cc", {"-shared", "-fPIC", "-o", dir + "/plugin.so", dir + "/plugin.c", "-L" + against,
                 "-lver", "-Wl,--enable-new-dtags,-rpath," + dir});
  };
  plugin(dir + "/built");
  ExplainedRun e = record_and_explain({host, dir + "/plugin.so", "run"}, dir);
  INFO(e.program.out << e.text.out);
  REQUIRE(e.program.exit_code == 1);
  CHECK(e.program.out.find("undefined symbol: ver_fn, version VER_2") != std::string::npos);
  const nlohmann::json f = finding(e, "undefined-symbol-other-version");
  REQUIRE(f.is_object());
  CHECK(f["symbol"] == "ver_fn");
  CHECK(f["version"] == "VER_2");
  CHECK(f["defined_version"] == "VER_1");
  CHECK(f["defined_in"] == dir + "/libver.so");
  CHECK(f["candidate"] == dir + "/built/libver.so");
  check_no_flag_fix(f);
  {
    RunOptions opts;  // the first fix: load the copy that has VER_2
    opts.env["LD_LIBRARY_PATH"] = dir + "/built";
    CHECK(any_fix_mentions(f, "LD_LIBRARY_PATH=" + dir + "/built"));
    const ProcessResult fixed = run({host, dir + "/plugin.so", "run"}, opts);
    INFO(describe(fixed));
    CHECK(fixed.out == "run() = 11\n");
  }
  CHECK(any_fix_mentions(f, "rebuild plugin.so against the libver.so that is deployed"));
  plugin(dir);
  const ProcessResult fixed = run({host, dir + "/plugin.so", "run"});
  INFO(describe(fixed));
  CHECK(fixed.out == "run() = 11\n");
}

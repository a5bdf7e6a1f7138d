// Real programs from Debian packages (scripts/install-deps.sh), recorded and explained: each works
// (same result traced and untraced), so explain must find 0 errors and 0 warnings, exit 0, print
// no fix that would change them, and name their expected misses in the probe summary.
// GStreamer's GModule hooks, the JVM's JNI lookups, ImageMagick's libltdl names, PostgreSQL's
// _PG_init and Chromium's optional libraries all used to be reported as errors (issue 12).
// ctest label `realworld` (tests/integration/CMakeLists.txt).
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

bool have(const std::string& program) {
  if (access(program.c_str(), X_OK) == 0) return true;
  WARN("no " << program << " (scripts/install-deps.sh installs it); skipped");
  return false;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

struct Explained {
  std::string trace;
  ProcessResult text;
  json doc;
};

Explained explain(const std::string& trace) {
  Explained e;
  e.trace = trace;
  e.text = run({viewer_path(), "explain", "--color=never", trace});
  ProcessResult j = run({viewer_path(), "explain", "--json", trace});
  INFO(trace << "\n" << e.text.out << e.text.err);
  REQUIRE(j.exit_code == e.text.exit_code);
  e.doc = json::parse(j.out, nullptr, false);
  REQUIRE_FALSE(e.doc.is_discarded());
  return e;
}

// 0 errors, 0 warnings, exit 0; no override rule printed; every failed call is a probe or a note.
void check_clean(const Explained& e) {
  INFO(e.trace << "\n" << e.text.out);
  CHECK(e.text.exit_code == 0);
  CHECK(e.doc["problems"] == 0);
  CHECK(contains(e.text.out, "0 problems (0 errors, 0 warnings)"));
  for (const auto& f : e.doc["findings"]) {
    INFO(f.dump());
    CHECK(f["severity"] == "info");
    // Working programs carry no second copy of an API or a runtime (issue 14): what they share
    // by design (vague linkage, compat aliases, _init/_fini) stays quiet.
    CHECK(f["kind"] != "api-copy");
    CHECK(f["kind"] != "runtime-copy");
    for (const auto& fix : f["fixes"]) CHECK(fix["config"].is_null());
  }
  for (const auto& c : e.doc["failed_calls"]) {
    INFO(c.dump());
    CHECK((c["kind"] == "probe" || c["severity"] == "info"));
  }
}

// The probe group of `name` in explain --json, or null.
json probe_group(const Explained& e, const std::string& name) {
  for (const auto& g : e.doc["probes"]["groups"])
    if (g["name"] == name) return g;
  return nullptr;
}

// The first trace in `dir` whose file name contains `fragment`, or "".
std::string trace_named(const std::string& dir, const std::string& fragment) {
  for (const auto& t : traces_in(dir))
    if (contains(fs::path(t).filename().string(), fragment)) return t;
  return {};
}

}  // namespace

TEST_CASE("realworld: GStreamer registry rebuild (gst-inspect-1.0, gst-plugin-scanner)",
          "[explain-realworld][gst-registry]") {
  if (!have("/usr/bin/gst-inspect-1.0")) return;
  std::string dir = temp_dir("rw-gst");
  RunOptions opts;  // an empty cache: the registry is rebuilt by gst-plugin-scanner
  opts.env["HOME"] = dir + "/home";
  opts.env["XDG_CACHE_HOME"] = dir + "/cache";
  opts.unset = {"GST_PLUGIN_PATH", "GST_PLUGIN_SYSTEM_PATH", "GST_REGISTRY"};
  fs::create_directories(dir + "/traces");
  ProcessResult r = run_traced({"/usr/bin/gst-inspect-1.0"}, dir + "/traces/", opts);
  INFO(describe(r).substr(0, 2000));
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "coreelements"));
  const std::string scanner = trace_named(dir + "/traces", "gst-plugin-scanner");
  REQUIRE(!scanner.empty());
  for (const auto& t : traces_in(dir + "/traces")) check_clean(explain(t));

  Explained e = explain(scanner);
  json hook = probe_group(e, "g_module_check_init");
  REQUIRE(hook.is_object());
  CHECK(hook["label"] == "GModule");
  CHECK(hook["count"].get<int>() >= 50);  // one per plugin
  CHECK(probe_group(e, "g_module_unload").is_object());
  CHECK(e.doc["probe_calls"].get<int>() >= 100);
  CHECK(contains(e.text.out,
                 "optional lookups missed as their callers expected: "
                 "g_module_check_init \u00d7"));
  CHECK(contains(e.text.out, "(--probes lists them)"));
  // --probes lists them, without a fix.
  ProcessResult listed = run({viewer_path(), "explain", "--probes", "--color=never", scanner});
  CHECK(listed.exit_code == 0);
  CHECK(contains(listed.out, "probe [optional-hook]"));
  CHECK(contains(listed.out, "why this is a probe: GModule"));
  CHECK(!contains(listed.out, "\n  fix"));
}

TEST_CASE("realworld: a GStreamer pipeline (gst-launch-1.0)", "[explain-realworld][gst-pipeline]") {
  if (!have("/usr/bin/gst-launch-1.0")) return;
  std::string dir = temp_dir("rw-gstl");
  RunOptions opts;
  opts.env["HOME"] = dir + "/home";
  opts.env["XDG_CACHE_HOME"] = dir + "/cache";
  opts.unset = {"GST_PLUGIN_PATH", "GST_PLUGIN_SYSTEM_PATH", "GST_REGISTRY"};
  const std::vector<std::string> pipeline = {"/usr/bin/gst-launch-1.0",
                                             "-q",
                                             "audiotestsrc",
                                             "num-buffers=20",
                                             "!",
                                             "audioconvert",
                                             "!",
                                             "wavenc",
                                             "!",
                                             "filesink",
                                             "location=" + dir + "/out.wav"};
  ProcessResult plain = run(pipeline, opts);  // builds the registry, untraced
  REQUIRE(plain.exit_code == 0);
  fs::create_directories(dir + "/traces");
  ProcessResult r = run_traced(pipeline, dir + "/traces/", opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK(fs::file_size(dir + "/out.wav") > 1000);
  const std::string trace = trace_named(dir + "/traces", "gst-launch");
  REQUIRE(!trace.empty());
  Explained e = explain(trace);
  check_clean(e);
  CHECK(probe_group(e, "g_module_check_init").is_object());
  CHECK(e.doc["probe_calls"].get<int>() >= 5);
}

TEST_CASE("realworld: a JVM running a class that uses java.util.zip", "[explain-realworld][jvm]") {
  if (!have("/usr/bin/java") || !have("/usr/bin/javac")) return;
  std::string dir = temp_dir("rw-jvm");
  std::ofstream(dir + "/Zip.java") << R"(import java.util.zip.*;
public class Zip {
  public static void main(String[] args) throws Exception {
    byte[] in = "hello hello hello hello".getBytes("UTF-8");
    Deflater d = new Deflater(); d.setInput(in); d.finish();
    byte[] buf = new byte[100]; int n = d.deflate(buf); d.end();
    Inflater i = new Inflater(); i.setInput(buf, 0, n);
    byte[] out = new byte[100]; int m = i.inflate(out); i.end();
    CRC32 c = new CRC32(); c.update(out, 0, m);
    System.out.println(new String(out, 0, m, "UTF-8") + " " + Long.toHexString(c.getValue()));
  }
}
)";
  RunOptions opts;
  opts.env["HOME"] = dir;
  opts.unset = {"JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH"};
  ProcessResult compiled = run({"/usr/bin/javac", "-d", dir, dir + "/Zip.java"}, opts);
  INFO(describe(compiled));
  REQUIRE(compiled.exit_code == 0);
  const std::vector<std::string> java = {"/usr/bin/java", "-Xshare:auto", "-cp", dir, "Zip"};
  ProcessResult plain = run(java, opts);
  fs::create_directories(dir + "/traces");
  ProcessResult r = run_traced(java, dir + "/traces/", opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "hello hello hello hello 8d3d51e3\n");
  CHECK(r.out == plain.out);
  const std::string trace = trace_named(dir + "/traces", "java");
  REQUIRE(!trace.empty());
  Explained e = explain(trace);
  check_clean(e);
  // JNI looks each native method up in one library after another: the miss in libjava.so is a
  // probe (libzip.so's own handle finds it next), and no RTLD_GLOBAL is forced on libzip.so.
  bool deflater = false;
  for (const auto& c : e.doc["failed_calls"]) {
    if (c["symbol"] != "Java_java_util_zip_Deflater_init") continue;
    deflater = true;
    CHECK(c["kind"] == "probe");
    CHECK(c["rule"] == "obtained-later");
  }
  CHECK(deflater);
  CHECK(!contains(e.text.out, "RTLD_GLOBAL"));
  json onload = probe_group(e, "JNI_OnLoad_*");
  REQUIRE(onload.is_object());
  CHECK(onload["label"] == "JNI");
  CHECK(probe_group(e, "JVM_begin_signal_setting").is_object());  // libjsig's hook, absent

  // The same JVM with a native method that no library has: UnsatisfiedLinkError, exit 1. Its
  // lookups are failures (the JVM only looked up more natives to report it, it loaded nothing
  // new), while the JVM's own probes stay probes.
  std::ofstream(dir + "/Nat.java") << "public class Nat {\n"
                                      "  static native void missingNative();\n"
                                      "  public static void main(String[] args) {\n"
                                      "    System.loadLibrary(\"zip\");\n"
                                      "    missingNative();\n"
                                      "  }\n"
                                      "}\n";
  REQUIRE(run({"/usr/bin/javac", "-d", dir, dir + "/Nat.java"}, opts).exit_code == 0);
  fs::create_directories(dir + "/nat");
  ProcessResult nat = run_traced({"/usr/bin/java", "-cp", dir, "Nat"}, dir + "/nat/", opts);
  INFO(describe(nat));
  REQUIRE(nat.exit_code == 1);
  CHECK(contains(nat.err, "UnsatisfiedLinkError"));
  const std::string nat_trace = trace_named(dir + "/nat", "java");
  REQUIRE(!nat_trace.empty());
  Explained failing = explain(nat_trace);
  INFO(failing.text.out);
  CHECK(failing.text.exit_code == 1);
  bool reported = false;
  for (const auto& f : failing.doc["findings"]) {
    if (f.value("symbol", "") != "Java_Nat_missingNative") continue;
    reported = true;
    CHECK(f["severity"] == "warning");
    CHECK(f["outcome"] == "failure");
    CHECK(f["fixes"].empty());
  }
  CHECK(reported);
  CHECK(probe_group(failing, "JVM_begin_signal_setting").is_object());
}

TEST_CASE("realworld: Python importing the science stack (numpy)",
          "[explain-realworld][python-science]") {
  // Debian's python3.11 has the interpreter in the executable; numpy's modules bring BLAS/LAPACK
  // in RTLD_LOCAL groups. Whatever of the stack is installed is imported (python3-numpy at least).
  if (!have("/usr/bin/python3")) return;
  std::string modules = "numpy, numpy.linalg, numpy.fft, numpy.random";
  for (const char* extra : {"scipy", "scipy.linalg", "pandas", "matplotlib"})
    if (run({"/usr/bin/python3", "-c", std::string("import ") + extra}).exit_code == 0)
      modules += std::string(", ") + extra;
  if (run({"/usr/bin/python3", "-c", "import numpy"}).exit_code != 0) {
    WARN("no numpy (python3-numpy); skipped");
    return;
  }
  std::string dir = temp_dir("rw-python");
  fs::create_directories(dir + "/traces");
  ProcessResult r = run_traced(
      {"/usr/bin/python3", "-c", "import " + modules + "; print(numpy.linalg.det(numpy.eye(3)))"},
      dir + "/traces/");
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "1.0\n");
  // pandas and matplotlib run `uname -p` (the platform module): every process must be clean.
  const auto traces = traces_in(dir + "/traces");
  REQUIRE(std::count_if(traces.begin(), traces.end(),
                        [](const std::string& t) { return contains(t, ".python3"); }) == 1);
  for (const auto& t : traces) check_clean(explain(t));
}

TEST_CASE("realworld: ImageMagick convert (libltdl modules)", "[explain-realworld][imagemagick]") {
  // /usr/bin/convert itself: a `convert` earlier in PATH may be something else.
  if (!have("/usr/bin/convert")) return;
  std::string dir = temp_dir("rw-im");
  RunOptions opts;
  opts.env["HOME"] = dir;
  opts.unset = {"MAGICK_CODER_MODULE_PATH", "MAGICK_HOME", "MAGICK_CONFIGURE_PATH"};
  fs::create_directories(dir + "/traces");
  ProcessResult r =
      run_traced({"/usr/bin/convert", "-size", "200x200", "plasma:fractal", dir + "/out.png"},
                 dir + "/traces/", opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK(fs::file_size(dir + "/out.png") > 1000);
  const auto traces = traces_in(dir + "/traces");
  REQUIRE(traces.size() == 1);
  Explained e = explain(traces.front());
  check_clean(e);
  json ltx = probe_group(e, "*_LTX_*");
  REQUIRE(ltx.is_object());
  CHECK(ltx["label"] == "libltdl");
  CHECK(ltx["count"].get<int>() >= 4);  // Register/Unregister of plasma, png at least
  CHECK(!contains(e.text.out, "link plasma.so"));
}

TEST_CASE("realworld: a PostgreSQL server (single-user) loading extensions",
          "[explain-realworld][postgres]") {
  const std::string bin = "/usr/lib/postgresql/15/bin/";
  if (!have(bin + "postgres") || !have(bin + "initdb") || !have("/usr/sbin/runuser")) return;
  if (getuid() != 0) {
    WARN("not root: cannot run PostgreSQL as its own user; skipped");
    return;
  }
  // PostgreSQL refuses to run as root: its own user, in a directory it can reach.
  char templ[] = "/tmp/dltrace-rw-pg.XXXXXX";
  REQUIRE(mkdtemp(templ) != nullptr);
  const std::string dir = templ;
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      if (!std::getenv("DLTRACE_KEEP_TEST_FILES")) fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  chmod(dir.c_str(), 0777);
  fs::create_directories(dir + "/traces");
  chmod((dir + "/traces").c_str(), 0777);
  auto as_postgres = [&](std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"/usr/sbin/runuser", "-u", "postgres", "--"});
    return argv;
  };
  ProcessResult init = run(as_postgres({bin + "initdb", "-D", dir + "/data", "--no-sync"}));
  INFO(describe(init));
  if (init.exit_code != 0) {
    WARN("initdb failed here; skipped: " << init.err);
    return;
  }
  RunOptions opts;
  opts.stdin_data =
      "CREATE EXTENSION hstore;\n"
      "CREATE EXTENSION pgcrypto;\n"
      "CREATE EXTENSION pg_trgm;\n"
      "SELECT 'a=>1'::hstore;\n"
      "SELECT encode(digest('x', 'sha256'), 'hex');\n"
      "SELECT similarity('word', 'words');\n";
  // The preload goes through runuser's environment to postgres (runuser keeps it).
  ProcessResult r = run_traced(
      as_postgres({bin + "postgres", "--single", "-D", dir + "/data", "-c",
                   "shared_preload_libraries=pg_stat_statements,auto_explain", "postgres"}),
      dir + "/traces/", opts);
  INFO(describe(r));
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "\"a\"=>\"1\""));
  CHECK(contains(r.out, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"));
  const std::string trace = trace_named(dir + "/traces", "postgres");
  REQUIRE(!trace.empty());
  Explained e = explain(trace);
  check_clean(e);
  // hstore.so, pgcrypto.so, pg_trgm.so have no _PG_init; pg_stat_statements.so and
  // auto_explain.so do: the misses are probes, and no extension is to be linked to another.
  json pg_init = probe_group(e, "_PG_init");
  REQUIRE(pg_init.is_object());
  CHECK(pg_init["label"] == "PostgreSQL");
  CHECK(!contains(e.text.out, "RTLD_GLOBAL"));
}

TEST_CASE("realworld: Chromium headless, every process", "[explain-realworld][chromium]") {
  if (!have("/usr/bin/chromium")) return;
  std::string dir = temp_dir("rw-chromium");
  RunOptions opts;
  opts.env["HOME"] = dir + "/home";
  opts.timeout_seconds = 90;
  fs::create_directories(dir + "/traces");
  ProcessResult r = run_traced(
      {"/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
       "--user-data-dir=" + dir + "/profile", "--dump-dom", "data:text/html,<p>dltrace</p>"},
      dir + "/traces/", opts);
  INFO(describe(r).substr(0, 3000));
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "<p>dltrace</p>"));
  const auto traces = traces_in(dir + "/traces");
  REQUIRE(traces.size() > 3);
  uint64_t probes = 0;
  for (const auto& t : traces) {
    Explained e = explain(t);
    check_clean(e);
    probes += e.doc["probe_calls"].get<uint64_t>();
  }
  CHECK(probes > 0);
}

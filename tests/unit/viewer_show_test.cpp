// `dltrace show`: the event log of a synthetic trace, and never crashing on a damaged one.
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "commands/show_command.h"
#include "render/json_export.h"
#include "viewer_test_trace.h"

using namespace dltrace;

namespace {

std::string show_text(const TraceReader& reader, const viewer::ShowOptions& options = {}) {
  return test::rendered_text(
      [&](std::FILE* f) { CHECK(viewer::show_trace(reader, options, f).ok()); });
}

}  // namespace

TEST_CASE("show prints one decoded line per event", "[viewer][show]") {
  test::ScratchDir dir;
  const std::string path = dir.file("v.trace");
  REQUIRE(test::write_viewer_trace(path) == "");
  std::string error;
  auto reader = TraceReader::open(path, &error);
  REQUIRE(reader);
  viewer::ShowOptions options;
  options.stacks = true;
  const std::string out = show_text(*reader, options);
  INFO(out);
  CHECK(out.find("end: exited with status 0") != std::string::npos);
  CHECK(out.find("argv: host --x") != std::string::npos);
  CHECK(out.find("dlopen(\"libplugin.so\", RTLD_NOW|RTLD_LOCAL => RTLD_NOW|RTLD_GLOBAL "
                 "[override dl.toml:3]) = 0x5000 /opt/plugins/libplugin.so new: libplugin.so "
                 "libdep.so") != std::string::npos);
  CHECK(out.find("    dlsym(RTLD_DEFAULT, \"helper\")") != std::string::npos);  // nested: indented
  CHECK(out.find("dlsym(0x5000 libplugin.so, \"plugin_init\") = 0x7f0000101234 libdep.so+0x1234") !=
        std::string::npos);
  CHECK(out.find("dlvsym(RTLD_DEFAULT, \"missing\"@\"V1\") = NULL") != std::string::npos);
  CHECK(out.find("error: /usr/bin/host: undefined symbol: missing, version V1") !=
        std::string::npos);
  CHECK(out.find("dlclose(0x5000 libplugin.so) = 0 unloaded: libplugin.so, libdep.so") !=
        std::string::npos);
  CHECK(out.find("py app.py:3 <module>") != std::string::npos);
  CHECK(out.find("host+0x1234") != std::string::npos);  // unsymbolized frame: object+offset

  viewer::ShowOptions failed;
  failed.failed = true;
  const std::string only_failed = show_text(*reader, failed);
  CHECK(only_failed.find("dlvsym") != std::string::npos);
  CHECK(only_failed.find("dlclose(") == std::string::npos);

  viewer::ShowOptions calls;
  calls.calls = {"dlclose"};
  calls.seq_range = "2-5";
  const std::string only_close = show_text(*reader, calls);
  CHECK(only_close.find("dlclose(") != std::string::npos);
  CHECK(only_close.find("dlopen(") == std::string::npos);

  viewer::ShowOptions bad;
  bad.calls = {"dlopenx"};
  std::FILE* sink = std::tmpfile();
  const absl::Status st = viewer::show_trace(*reader, bad, sink);
  std::fclose(sink);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);  // exit code 2
}

TEST_CASE("show reports a process without a clean end and a truncated file", "[viewer][show]") {
  test::ScratchDir dir;
  const std::string path = dir.file("k.trace");
  REQUIRE(test::write_viewer_trace(path, false) == "");
  auto bytes = test::read_file(path);
  std::string error;
  {
    auto reader = TraceReader::open(path, &error);
    REQUIRE(reader);
    CHECK(show_text(*reader).find("end: no recorded end: killed by SIGKILL, vanished, or still "
                                  "running\n") != std::string::npos);
  }
  // Cut the file inside the ring: the header and catalog survive, events past the cut do not.
  const auto& h = *reinterpret_cast<const format::FileHeader*>(bytes.data());
  const size_t cut = test::file_offset_of(h, h.ring_offset + 2 * format::kSlotSize + 40);
  auto reader = TraceReader::open_bytes(bytes.data(), cut, &error);
  INFO(error);
  REQUIRE(reader);
  const std::string out = show_text(*reader);
  INFO(out);
  CHECK(out.find("recovery: ") != std::string::npos);
  CHECK(out.find("truncated") != std::string::npos);
}

TEST_CASE("show and export survive garbled traces", "[viewer][show][export]") {
  const int opened = test::for_each_garbled_trace(1234, [](const TraceReader& reader) {
    viewer::ShowOptions options;
    options.stacks = true;
    (void)show_text(reader, options);
    viewer::JsonWriter w;
    CHECK(viewer::write_json_export(reader, {}, w).ok());
  });
  CHECK(opened > 0);
}

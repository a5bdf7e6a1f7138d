// The HTML report in a real browser: headless Chromium (Debian's chromium, installed by
// scripts/install-deps.sh) loads the report of a real failing run from a file: URL with no
// network, runs its script, and the DOM it dumps must hold the findings, both graphs as SVG and
// the event table, with the filter from the URL applied. A screenshot is kept as an artifact
// (BUILD_DIR/test-artifacts/html_report.png) for a person to look at.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>
#include <string>

#include "harness.h"

using namespace dltrace::test;

namespace {

const char* const kChromium = "/usr/bin/chromium";

// Flags for a headless run as root in a closed network: no sandbox (root), no GPU, none of the
// background connections Chromium makes at start.
std::vector<std::string> chromium(const std::string& profile, std::vector<std::string> args) {
  std::vector<std::string> argv = {kChromium,
                                   "--headless",
                                   "--no-sandbox",
                                   "--disable-gpu",
                                   "--disable-quic",
                                   "--no-first-run",
                                   "--disable-background-networking",
                                   "--disable-component-update",
                                   "--disable-sync",
                                   "--user-data-dir=" + profile};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("the HTML report works in headless Chromium: findings, two graphs, table, filter",
          "[html][browser]") {
  if (access(kChromium, X_OK) != 0) {
    WARN("no " << kChromium << " (scripts/install-deps.sh installs Debian's chromium); skipped");
    return;
  }
  settle_fixtures();
  const std::string dir = fixtures_dir() + "/overrides";
  const std::string work = temp_dir("html-browser");
  const std::string trace = work + "/run.trace";
  ProcessResult r = run_traced({dir + "/ov_host", "open:libembed.so:NOW|LOCAL",
                                "open:libplugin.so:NOW", "open:libdeep.so:NOW", "global:api_value"},
                               trace);
  REQUIRE(r.exit_code == 0);
  const std::string report = work + "/report.html";
  ProcessResult html = run({viewer_path(), "html", trace, "-o", report});
  INFO(describe(html));
  REQUIRE(html.exit_code == 0);

  RunOptions opts;
  opts.timeout_seconds = 120;
  const std::string url = "file://" + report;
  ProcessResult all = run(chromium(work + "/profile1", {"--dump-dom", url}), opts);
  INFO(describe(all));
  REQUIRE(all.exit_code == 0);
  const std::string& dom = all.out;
  // The findings come first, with the RTLD_LOCAL diagnosis and its override rule.
  const size_t findings = dom.find("id=\"findings\"");
  REQUIRE(findings != std::string::npos);
  CHECK(findings < dom.find("id=\"load-graph\""));
  CHECK(dom.find("undefined-symbol-local-scope") != std::string::npos);
  CHECK(dom.find("[[override]]\nmatch = \"libembed.so\"\nadd = [\"RTLD_GLOBAL\"]") !=
        std::string::npos);  // the rule keeps its lines, ready to copy
  // Both graphs are inline SVG, laid out: the scope graph has the global scope's cluster.
  CHECK(count(dom, "<svg") >= 2);
  CHECK(dom.find("global scope, namespace 0") != std::string::npos);
  // The script ran and filled the table from the embedded events.
  std::smatch m;
  std::regex info(R"((\d+) of (\d+) events, page 1 of)");
  REQUIRE(std::regex_search(dom, m, info));
  const int total = std::stoi(m[2]);
  CHECK(std::stoi(m[1]) == total);
  CHECK(total == 4);  // three dlopens and one dlsym
  CHECK(count(dom, "<tr") >= size_t(total));

  // The filter: the same page with a filter in its URL shows only matching rows.
  ProcessResult filtered =
      run(chromium(work + "/profile2", {"--dump-dom", url + "#filter=libplugin"}), opts);
  REQUIRE(filtered.exit_code == 0);
  REQUIRE(std::regex_search(filtered.out, m, info));
  const int shown = std::stoi(m[1]);
  CHECK(shown >= 1);
  CHECK(shown < total);
  CHECK(std::stoi(m[2]) == total);

  // A screenshot for people: kept in the build tree.
  const std::string artifacts = build_dir() + "/test-artifacts";
  std::filesystem::create_directories(artifacts);
  const std::string png = artifacts + "/html_report.png";
  std::filesystem::remove(png);
  ProcessResult shot =
      run(chromium(work + "/profile3",
                   {"--screenshot=" + png, "--window-size=1280,1600", "--hide-scrollbars", url}),
          opts);
  INFO(describe(shot));
  CHECK(shot.exit_code == 0);
  CHECK(std::filesystem::exists(png));
  CHECK(std::filesystem::file_size(png) > 10000);
}

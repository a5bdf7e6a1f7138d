// `dltrace --help` is a short menu, one line per subcommand; each subcommand's own --help has the
// whole text.
#include <algorithm>
#include <catch2/catch.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"

using namespace dltrace::test;

TEST_CASE("dltrace --help is a menu of the subcommands, each with its own --help", "[cli]") {
  const ProcessResult top = run({viewer_path(), "--help"});
  INFO(describe(top));
  REQUIRE(top.exit_code == 0);
  std::istringstream in(top.out);
  std::string line;
  std::vector<std::string> commands;
  size_t lines = 0;
  bool in_menu = false;
  while (std::getline(in, line)) {
    ++lines;
    if (line == "Subcommands:") {
      in_menu = true;
      continue;
    }
    if (!in_menu) continue;
    if (line.empty()) break;
    std::smatch m;
    // "  name    summary": one line each, no continuation lines.
    REQUIRE(std::regex_match(line, m, std::regex(R"(  ([a-z]+) +(\S.*))")));
    commands.push_back(m[1]);
  }
  CHECK(lines <= 40);
  for (const char* expected :
       {"run", "show", "export", "stats", "tree", "scopes", "explain", "dot", "html", "config"})
    CHECK(std::count(commands.begin(), commands.end(), expected) == 1);
  for (const std::string& command : commands) {
    const ProcessResult sub = run({viewer_path(), command, "--help"});
    INFO(command << ": " << describe(sub));
    CHECK(sub.exit_code == 0);
    CHECK(sub.out.find("Usage: dltrace " + command) != std::string::npos);
  }
}

// `dltrace --help` is a short menu, one line per subcommand; each subcommand's own --help has the
// whole text.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <regex>
#include <set>
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
  for (const char* expected : {"run", "show", "export", "stats", "tree", "scopes", "bindings",
                               "explain", "dot", "html", "config"})
    CHECK(std::count(commands.begin(), commands.end(), expected) == 1);
  for (const std::string& command : commands) {
    const ProcessResult sub = run({viewer_path(), command, "--help"});
    INFO(command << ": " << describe(sub));
    CHECK(sub.exit_code == 0);
    CHECK(sub.out.find("Usage: dltrace " + command) != std::string::npos);
  }
}

namespace {

// The options a help text defines: "  -o,--output TEXT  ..." lines of its "Options:" section.
std::set<std::string> defined_options(const std::string& help) {
  std::set<std::string> out;
  std::istringstream in(help);
  std::string line;
  bool in_options = false;
  const std::regex option(R"(^  (-[a-zA-Z])?,?(--[a-z][a-z0-9-]*)?)");
  while (std::getline(in, line)) {
    if (line == "Options:") {
      in_options = true;
      continue;
    }
    if (!in_options) continue;
    if (line.empty() || line[0] != ' ') break;
    std::smatch m;
    if (std::regex_search(line, m, option)) {
      if (m[1].matched) out.insert(m[1]);
      if (m[2].matched) out.insert(m[2]);
    }
  }
  return out;
}

}  // namespace

// A help text that names a flag the command does not have (explain's once said --quiet-info for
// --no-info) sends the user into an error. Every flag a help text names, in its prose or its
// examples, must exist: its own, or, after "dltrace CMD", CMD's.
TEST_CASE("every flag a --help text names exists", "[cli]") {
  const std::vector<std::vector<std::string>> commands = {
      {},           {"run"},     {"show"}, {"export"}, {"stats"},  {"tree"},           {"scopes"},
      {"bindings"}, {"explain"}, {"dot"},  {"html"},   {"config"}, {"config", "check"}};
  std::map<std::string, std::string> help_of;  // "config check" → its help
  std::map<std::string, std::set<std::string>> options_of;
  auto key = [](const std::vector<std::string>& words) {
    std::string k;
    for (const auto& w : words) k += (k.empty() ? "" : " ") + w;
    return k;
  };
  for (const auto& words : commands) {
    std::vector<std::string> argv{viewer_path()};
    argv.insert(argv.end(), words.begin(), words.end());
    argv.push_back("--help");
    const ProcessResult r = run(argv);
    INFO(describe(r));
    REQUIRE(r.exit_code == 0);
    help_of[key(words)] = r.out;
    options_of[key(words)] = defined_options(r.out);
  }
  const std::regex mention(R"(dltrace ((?:config check)|[a-z]+)\b)");
  const std::regex flag(R"((^|[\s`(\[|])(--?[a-zA-Z][a-z0-9-]*))");
  size_t checked = 0;
  for (const auto& [command, help] : help_of) {
    std::istringstream in(help);
    std::string line;
    bool in_options = false;
    while (std::getline(in, line)) {
      if (line == "Options:") in_options = true;
      if (line.empty()) in_options = false;
      if (in_options && line.rfind("  -", 0) == 0) continue;  // the definitions themselves
      // Flags after "dltrace CMD" belong to CMD, the others to this help's command.
      std::string owner = command;
      size_t owner_from = 0;
      std::vector<std::pair<size_t, std::string>> owners;
      for (std::sregex_iterator it(line.begin(), line.end(), mention), end; it != end; ++it)
        if (options_of.count((*it)[1])) owners.emplace_back(it->position(), (*it)[1]);
      // After a shell pipe the flags are another program's ("| dot -Tsvg", "| jq -r").
      for (size_t pipe = line.find(" | "); pipe != std::string::npos;
           pipe = line.find(" | ", pipe + 1))
        owners.emplace_back(pipe, "|");
      std::sort(owners.begin(), owners.end());
      for (std::sregex_iterator it(line.begin(), line.end(), flag), end; it != end; ++it) {
        const size_t at = static_cast<size_t>(it->position(2));
        while (owner_from < owners.size() && owners[owner_from].first < at)
          owner = owners[owner_from++].second;
        const std::string name = (*it)[2];
        if (owner == "|") continue;
        INFO("`dltrace " << command << " --help` names " << name << " (as an option of `dltrace "
                         << owner << "`) in: " << line);
        CHECK(options_of[owner].count(name) == 1);
        ++checked;
      }
    }
  }
  CHECK(checked > 20);
}

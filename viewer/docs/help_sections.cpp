#include "docs/help_sections.h"

#include <sstream>
#include <string_view>

namespace dltrace::viewer {
namespace {

bool starts_with(std::string_view line, std::string_view heading) {
  return line.substr(0, heading.size()) == heading;
}

std::string trimmed_left(std::string_view s) {
  const size_t first = s.find_first_not_of(' ');
  return first == std::string_view::npos ? std::string() : std::string(s.substr(first));
}

}  // namespace

HelpSections split_help(const std::string& description) {
  HelpSections out;
  std::vector<std::string>* section = &out.description;
  std::istringstream in(description);
  std::string line;
  while (std::getline(in, line)) {
    if (line == "Example:" || line == "Examples:") {
      section = &out.examples;
      continue;
    }
    if (line == "Environment:") {
      section = &out.environment;
      continue;
    }
    if (starts_with(line, "Exit status:")) {
      section = &out.exit_status;
      const std::string rest = trimmed_left(std::string_view(line).substr(12));
      if (!rest.empty()) section->push_back(rest);
      continue;
    }
    if (line.empty()) {
      if (section != &out.description) {
        section = &out.description;
      } else if (!out.description.empty() && !out.description.back().empty()) {
        out.description.push_back("");
      }
      continue;
    }
    section->push_back(line);
  }
  while (!out.description.empty() && out.description.back().empty()) out.description.pop_back();
  return out;
}

}  // namespace dltrace::viewer

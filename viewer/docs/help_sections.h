// A subcommand's --help description split into the parts a man page puts in its own sections.
// The descriptions are written for the terminal with headings at the start of a line:
// "Example:"/"Examples:" (command lines follow), "Exit status: ..." and "Environment:"
// ("  NAME  text" lines follow); a blank line ends the section and the prose goes on.
#pragma once

#include <string>
#include <vector>

namespace dltrace::viewer {

struct HelpSections {
  std::vector<std::string> description;  // prose lines; "" separates paragraphs
  std::vector<std::string> examples;     // command lines, as printed (indented)
  std::vector<std::string> exit_status;  // prose lines, the heading's own text first
  std::vector<std::string> environment;  // "  NAME  text" lines
};

HelpSections split_help(const std::string& description);

}  // namespace dltrace::viewer

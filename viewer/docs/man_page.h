// The man pages, generated from the CLI itself (cli.h) so that they say what `--help` says:
// dltrace(1) with the menu, and dltrace-<command>(1) for each subcommand, in the sections of
// strace(1): NAME, SYNOPSIS, DESCRIPTION, OPTIONS, ENVIRONMENT, EXIT STATUS, EXAMPLES, SEE ALSO.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace dltrace::viewer {

struct ManPage {
  std::string name;  // "dltrace" or "dltrace-run": the file is <name>.1
  std::string roff;  // the page, for man(1)
};

// `version` goes into the page footer ("dltrace 0.1.0").
std::vector<ManPage> man_pages(const CLI::App& app, const std::string& version);

}  // namespace dltrace::viewer

// The dltrace command line as one CLI11 app. main() parses argv with it; the build generates the
// man pages and the bash completion from it (docs/), so what they say is what `--help` prints.
#pragma once

#include <memory>
#include <string>

#include "commands/command.h"

namespace CLI {
class App;
}

namespace dltrace::viewer {

// Every subcommand registered, in menu order; their callbacks store their exit code in `result`,
// which must outlive the app.
std::unique_ptr<CLI::App> make_cli(CommandResult& result);

// What `dltrace --version` prints: "dltrace 0.1.0 (git commit 43613ba9c1e2)".
std::string version_text();

// A subcommand's menu line: its description's first sentence or clause, within its first line.
std::string summary_of(const std::string& description);

}  // namespace dltrace::viewer

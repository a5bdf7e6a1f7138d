// The bash completion script, generated from the CLI itself (cli.h): subcommands, each one's
// flags, the values of options that take a fixed set, trace files (*.trace) where a trace is
// expected, and the traced program and its arguments after `dltrace run [--]`.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace dltrace::viewer {

std::string bash_completion(const CLI::App& app);

}  // namespace dltrace::viewer

// The command registry. Every subcommand lives in its own commands/<name>_command.cpp and
// exposes one function, `void register_<name>_command(CLI::App& app, CommandResult& result)`,
// which adds its subcommand to `app` with a callback that stores its exit code in `result`.
//
// Adding a command is ONE line: append X(<name>) to DLTRACE_COMMANDS below (and list the new
// .cpp in viewer/CMakeLists.txt). main() registers them in this order, which is also the order
// `dltrace --help` lists them in.
#pragma once

#include "absl/status/status.h"
#include "util/status.h"

namespace CLI {
class App;
}

namespace dltrace::viewer {

struct CommandResult {
  int exit_code = kExitOk;
  // Records a command's outcome: prints the error, if any, and keeps its exit code.
  void set(const absl::Status& status) { exit_code = report_error(status); }
};

#define DLTRACE_COMMANDS(X) \
  X(run)                    \
  X(show)                   \
  X(export)                 \
  X(stats)                  \
  X(tree)                   \
  X(scopes)                 \
  X(bindings)               \
  X(explain)                \
  X(dot)                    \
  X(html)                   \
  X(config)

#define DLTRACE_DECLARE_COMMAND(name) \
  void register_##name##_command(CLI::App& app, CommandResult& result);
DLTRACE_COMMANDS(DLTRACE_DECLARE_COMMAND)
#undef DLTRACE_DECLARE_COMMAND

}  // namespace dltrace::viewer

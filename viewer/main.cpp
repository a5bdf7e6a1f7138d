// dltrace: the viewer / launcher. Subcommands come from the registry in commands/command.h;
// this file only builds the CLI11 app, maps parse errors to exit code 2 and keeps every
// exception inside main.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "commands/command.h"

#ifndef DLTRACE_VERSION
#define DLTRACE_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  using namespace dltrace::viewer;
  try {
    CLI::App app{
        "dltrace: trace dlopen/dlmopen/dlsym/dlvsym/dlclose.\n"
        "Record a program with `dltrace run`, then read the trace file offline.\n\n"
        "  dltrace run -- python3 app.py            # writes dltrace.python3.1234.trace\n"
        "  dltrace show dltrace.python3.1234.trace  # the event log\n"
        "  dltrace export --format json dltrace.python3.1234.trace -o trace.json\n",
        "dltrace"};
    app.set_version_flag("--version", std::string("dltrace ") + DLTRACE_VERSION);
    app.require_subcommand(1);
    app.fallthrough(false);

    CommandResult result;
#define DLTRACE_REGISTER_COMMAND(name) register_##name##_command(app, result);
    DLTRACE_COMMANDS(DLTRACE_REGISTER_COMMAND)
#undef DLTRACE_REGISTER_COMMAND

    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      const int code = app.exit(e);  // prints help / version / the error
      return code == 0 ? kExitOk : kExitUsage;
    }
    return result.exit_code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dltrace: internal error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "dltrace: internal error\n");
  }
  return kExitTraceProblem;
}

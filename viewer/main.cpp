// dltrace: the viewer / launcher. The command line is built by cli.cpp (from the registry in
// commands/command.h); this file only parses, maps parse errors to exit code 2 and keeps every
// exception inside main.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "cli.h"

int main(int argc, char** argv) {
  using namespace dltrace::viewer;
  try {
    CommandResult result;
    const auto app = make_cli(result);
    try {
      app->parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      const int code = app->exit(e);  // prints help / version / the error
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

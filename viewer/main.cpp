// dltrace: the viewer / launcher. Subcommands come from the registry in commands/command.h;
// this file only builds the CLI11 app, maps parse errors to exit code 2 and keeps every
// exception inside main.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <memory>
#include <sstream>
#include <string>

#include "commands/command.h"

#ifndef DLTRACE_VERSION
#define DLTRACE_VERSION "unknown"
#endif

namespace {

// The menu line of a subcommand: its description's first sentence or clause, within its first
// line (up to the first ". " or ": ").
std::string summary_of(const std::string& description) {
  std::string line = description.substr(0, description.find('\n'));
  for (size_t i = 0; i + 1 < line.size(); ++i)
    if ((line[i] == '.' || line[i] == ':') && line[i + 1] == ' ') return line.substr(0, i);
  if (!line.empty() && (line.back() == '.' || line.back() == ':')) line.pop_back();
  return line;
}

// `dltrace --help` is a menu: one line per subcommand; the whole description is
// `dltrace SUBCOMMAND --help`.
class MenuFormatter : public CLI::Formatter {
 public:
  std::string make_subcommand(const CLI::App* sub) const override {
    std::stringstream out;
    CLI::detail::format_help(out, sub->get_display_name(true), summary_of(sub->get_description()),
                             column_width_);
    return out.str();
  }
};

}  // namespace

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
    app.formatter(std::make_shared<MenuFormatter>());
    app.require_subcommand(1);
    app.fallthrough(false);

    CommandResult result;
#define DLTRACE_REGISTER_COMMAND(name) register_##name##_command(app, result);
    DLTRACE_COMMANDS(DLTRACE_REGISTER_COMMAND)
#undef DLTRACE_REGISTER_COMMAND
    // After the subcommands were added: they would inherit it.
    app.footer("Run `dltrace SUBCOMMAND --help` for what each one does, its options and examples.");

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

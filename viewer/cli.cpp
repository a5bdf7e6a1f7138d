#include "cli.h"

#include <CLI/CLI.hpp>
#include <sstream>
#include <string>

#include "common/version.h"

namespace dltrace::viewer {
namespace {

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

std::string summary_of(const std::string& description) {
  std::string line = description.substr(0, description.find('\n'));
  for (size_t i = 0; i + 1 < line.size(); ++i)
    if ((line[i] == '.' || line[i] == ':') && line[i + 1] == ' ') return line.substr(0, i);
  if (!line.empty() && (line.back() == '.' || line.back() == ':')) line.pop_back();
  return line;
}

std::string version_text() {
  std::string text = std::string("dltrace ") + kBuildVersion;
  text += *kBuildCommit ? std::string(" (git commit ") + kBuildCommit + ")"
                        : std::string(" (git commit unknown: not built from a git checkout)");
  return text;
}

std::unique_ptr<CLI::App> make_cli(CommandResult& result) {
  auto app = std::make_unique<CLI::App>(
      "dltrace: trace dlopen/dlmopen/dlsym/dlvsym/dlclose.\n"
      "Record a program with `dltrace run`, then read the trace file offline.\n\n"
      "Examples:\n"
      "  dltrace run -- python3 app.py            # writes dltrace.python3.1234.trace\n"
      "  dltrace show dltrace.python3.1234.trace  # the event log\n"
      "  dltrace explain dltrace.python3.1234.trace\n"
      "  dltrace export --format json dltrace.python3.1234.trace -o trace.json\n\n"
      "Exit status: `dltrace run` exits with the program's exit status; the other commands\n"
      "exit 0 on success, 1 when a trace cannot be read or the output cannot be written (and\n"
      "as each command says), 2 on a usage error.\n",
      "dltrace");
  app->set_version_flag("--version", version_text());
  app->formatter(std::make_shared<MenuFormatter>());
  app->require_subcommand(1);
  app->fallthrough(false);

#define DLTRACE_REGISTER_COMMAND(name) register_##name##_command(*app, result);
  DLTRACE_COMMANDS(DLTRACE_REGISTER_COMMAND)
#undef DLTRACE_REGISTER_COMMAND
  // After the subcommands were added: they would inherit it.
  app->footer("Run `dltrace SUBCOMMAND --help` for what each one does, its options and examples.");
  return app;
}

}  // namespace dltrace::viewer

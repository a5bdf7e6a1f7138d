#include "docs/man_page.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <regex>
#include <string_view>

#include "cli.h"
#include "docs/help_sections.h"

namespace dltrace::viewer {
namespace {

// Escapes text for roff: backslashes, minus signs (so that options copy as ASCII '-'), and every
// non-ASCII character as a \[uXXXX] glyph (the pages are ASCII whatever the locale). `code` in
// the help texts becomes bold.
std::string roff(std::string_view text) {
  std::string out;
  bool code = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else if (c == '`') {
      out += code ? "\\fR" : "\\fB";
      code = !code;
    } else if (c < 0x80) {
      out += char(c);
    } else {
      // UTF-8 lead byte and continuation bytes: one code point.
      const int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
      uint32_t cp = c & (0x3F >> extra);
      for (int k = 0; k < extra && i + 1 < text.size(); ++k)
        cp = (cp << 6) | (static_cast<unsigned char>(text[++i]) & 0x3F);
      out += fmt::format("\\[u{:04X}]", cp);
    }
  }
  if (code) out += "\\fR";
  return out;
}

// One line of roff source: a line must not start with a control character.
std::string text_line(std::string_view text) {
  std::string line = roff(text);
  if (!line.empty() && (line[0] == '.' || line[0] == '\'')) line.insert(0, "\\&");
  return line + "\n";
}

std::string bold(std::string_view s) {
  return "\\fB" + roff(s) + "\\fR";
}
std::string italic(std::string_view s) {
  return "\\fI" + roff(s) + "\\fR";
}

// Prose as it is in the help text: lines indented by two or more spaces are shown as they are
// (lists, formats); the others flow into paragraphs.
std::string prose(const std::vector<std::string>& lines) {
  std::string out;
  bool literal = false;
  for (const std::string& line : lines) {
    const bool indented = line.starts_with("  ");
    if (indented != literal) {
      out += indented ? ".RS 2\n.nf\n" : ".fi\n.RE\n";
      literal = indented;
    }
    out += line.empty() ? ".PP\n" : text_line(indented ? std::string_view(line).substr(2) : line);
  }
  if (literal) out += ".fi\n.RE\n";
  return out;
}

std::string examples(const std::vector<std::string>& lines) {
  if (lines.empty()) return {};
  std::string out = ".RS 2\n.nf\n";
  for (const std::string& line : lines)
    out += text_line(std::string_view(line).substr(line.find_first_not_of(' ')));
  return out + ".fi\n.RE\n";
}

// "  NAME[=VALUE]  text" lines, the text possibly continued on more deeply indented lines.
std::string environment(const std::vector<std::string>& lines) {
  static const std::regex entry(R"(^  ([A-Z_][A-Z0-9_]*(=\S+)?) {2,}(.*)$)");
  std::string out;
  bool after_list = false;
  for (const std::string& line : lines) {
    std::smatch m;
    if (std::regex_match(line, m, entry)) {
      out += ".TP\n" + bold(m[1].str()) + "\n" + text_line(m[3].str());
    } else if (line.starts_with("  ")) {  // the entry's text goes on
      out += text_line(std::string_view(line).substr(line.find_first_not_of(' ')));
    } else {  // prose after the list
      if (!after_list) out += ".PP\n";
      after_list = true;
      out += text_line(line);
    }
  }
  return out;
}

// "{auto,always,never}" in CLI11's type name of a checked option: the values it takes.
std::vector<std::string> choices_of(const CLI::Option& opt) {
  std::vector<std::string> out;
  const std::string type = opt.get_type_name();
  const size_t open = type.find('{'), close = type.rfind('}');
  if (open == std::string::npos || close == std::string::npos || close < open) return out;
  std::string_view list = std::string_view(type).substr(open + 1, close - open - 1);
  while (!list.empty()) {
    const size_t comma = list.find(',');
    out.emplace_back(list.substr(0, comma));
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

std::string value_of(const CLI::Option& opt) {
  if (opt.get_type_size() == 0) return {};  // a flag
  const auto choices = choices_of(opt);
  if (!choices.empty()) {
    std::string out;
    for (const auto& c : choices) out += (out.empty() ? "" : "|") + bold(c);
    return " " + out;
  }
  const std::string type = opt.get_type_name();
  return " " + italic(type.substr(0, type.find(':')));
}

std::string positional_usage(const CLI::Option& opt) {
  std::string s = italic(opt.get_name(true, false));
  if (opt.get_items_expected_max() > 1) s += "\\&...";
  return opt.get_required() ? s : "[" + s + "]";
}

std::vector<const CLI::Option*> positionals(const CLI::App& app) {
  return app.get_options([](const CLI::Option* o) { return !o->nonpositional(); });
}
std::vector<const CLI::Option*> named_options(const CLI::App& app) {
  return app.get_options([](const CLI::Option* o) { return o->nonpositional(); });
}

// "dltrace run" for a subcommand, "dltrace config check" for a nested one.
std::string command_path(const CLI::App& app) {
  const CLI::App* parent = app.get_parent();
  return parent == nullptr ? app.get_name() : command_path(*parent) + " " + app.get_name();
}

std::string synopsis(const CLI::App& app) {
  std::string out = ".SY \"" + command_path(app) + "\"\n";
  if (!named_options(app).empty()) out += "[" + italic("OPTIONS") + "]\n";
  if (!app.get_subcommands({}).empty()) out += italic("SUBCOMMAND") + "\n";
  const auto pos = positionals(app);
  if (app.get_positionals_at_end() && !pos.empty()) out += "[" + bold("--") + "]\n";
  for (const CLI::Option* p : pos) out += positional_usage(*p) + "\n";
  return out + ".YS\n";
}

std::string options(const CLI::App& app) {
  std::string out;
  for (const CLI::Option* p : positionals(app))
    out += ".TP\n" + positional_usage(*p) + "\n" + text_line(p->get_description());
  for (const CLI::Option* o : named_options(app)) {
    std::string names;
    for (const auto& s : o->get_snames()) names += (names.empty() ? "" : ", ") + bold("-" + s);
    for (const auto& l : o->get_lnames()) names += (names.empty() ? "" : ", ") + bold("--" + l);
    std::string description = o->get_description();
    if (!o->get_default_str().empty()) description += " (default: " + o->get_default_str() + ")";
    out += ".TP\n" + names + value_of(*o) + "\n" + text_line(description);
  }
  return out;
}

std::string page_name(const CLI::App& sub) {
  return "dltrace-" + sub.get_name();
}

std::string header(const std::string& name, const std::string& summary,
                   const std::string& version) {
  std::string upper;
  for (char c : name) upper += char(c >= 'a' && c <= 'z' ? c - 32 : c);
  return fmt::format(
      ".\\\" Generated from the dltrace command line (viewer/docs): do not edit.\n"
      ".TH {} 1 \"\" \"{}\" \"User Commands\"\n"
      ".nr HY 0\n.nh\n"  // option names and paths are never hyphenated (HY: every paragraph)
      ".SH NAME\n{} \\- {}",
      roff(upper), roff(version), roff(name), text_line(summary));
}

std::string see_also(const std::vector<std::string>& pages) {
  std::string out = ".SH SEE ALSO\n";
  for (size_t i = 0; i < pages.size(); ++i) {
    const size_t paren = pages[i].find('(');
    out += ".BR " + roff(pages[i].substr(0, paren)) + " " + pages[i].substr(paren) +
           (i + 1 < pages.size() ? "," : "") + "\n";
  }
  return out;
}

std::string sections(const HelpSections& help, const std::string& options_text,
                     const std::string& exit_status_fallback) {
  std::string out;
  if (!options_text.empty()) out += ".SH OPTIONS\n" + options_text;
  if (!help.environment.empty()) out += ".SH ENVIRONMENT\n" + environment(help.environment);
  out += ".SH \"EXIT STATUS\"\n";
  out += help.exit_status.empty() ? exit_status_fallback : prose(help.exit_status);
  if (!help.examples.empty()) out += ".SH EXAMPLES\n" + examples(help.examples);
  return out;
}

ManPage command_page(const CLI::App& sub, const std::string& version,
                     const std::string& exit_status_fallback) {
  HelpSections help = split_help(sub.get_description());
  std::string text = header(page_name(sub), summary_of(sub.get_description()), version);
  text += ".SH SYNOPSIS\n";
  const auto nested = sub.get_subcommands({});
  for (const CLI::App* n : nested) text += synopsis(*n);
  if (nested.empty()) text += synopsis(sub);
  text += ".SH DESCRIPTION\n" + prose(help.description) + "\n";
  std::string options_text = options(sub);
  // A command with subcommands (config check): each one's text and options under its name.
  for (const CLI::App* n : nested) {
    const HelpSections part = split_help(n->get_description());
    text += ".SS \"" + command_path(*n) + "\"\n" + prose(part.description);
    options_text += ".SS \"" + command_path(*n) + "\"\n" + options(*n);
    for (const auto& line : part.examples) help.examples.push_back(line);
    for (const auto& line : part.exit_status) help.exit_status.push_back(line);
  }
  text += sections(help, options_text, exit_status_fallback);
  text += see_also({"dltrace(1)", "ld.so(8)", "dlopen(3)"});
  return {page_name(sub), text};
}

}  // namespace

std::vector<ManPage> man_pages(const CLI::App& app, const std::string& version) {
  const HelpSections help = split_help(app.get_description());
  const auto subs = app.get_subcommands({});
  std::vector<ManPage> pages;
  // The help's first line, "dltrace: trace dlopen/...", without the name.
  const std::string& description = app.get_description();
  std::string summary = description.substr(0, description.find('\n'));
  if (summary.starts_with("dltrace: ")) summary.erase(0, 9);
  if (summary.ends_with('.')) summary.pop_back();
  std::string text = header("dltrace", summary, version);
  text += ".SH SYNOPSIS\n";
  for (const CLI::App* sub : subs) {
    const auto nested = sub->get_subcommands({});
    for (const CLI::App* n : nested) text += synopsis(*n);
    if (nested.empty()) text += synopsis(*sub);
  }
  text += ".SY dltrace\n" + bold("--version") + "\n.YS\n";
  text += ".SH DESCRIPTION\n" + prose(help.description);
  text += ".SH COMMANDS\nEach command has its own page, with its options and examples.\n";
  for (const CLI::App* sub : subs)
    text += ".TP\n" + bold(sub->get_name()) + "\n" +
            text_line(summary_of(sub->get_description()) + ".") + ".br\n.BR " +
            roff(page_name(*sub)) + " (1)\n";
  // The environment variables are run's (the recorder reads them in every traced process).
  HelpSections all = help;
  for (const CLI::App* sub : subs)
    for (const auto& line : split_help(sub->get_description()).environment)
      all.environment.push_back(line);
  text += sections(all, options(app), "");
  std::vector<std::string> refs;
  for (const CLI::App* sub : subs) refs.push_back(page_name(*sub) + "(1)");
  for (const char* other : {"strace(1)", "ltrace(1)", "ld.so(8)", "dlopen(3)", "dlsym(3)"})
    refs.push_back(other);
  text += see_also(refs);
  pages.push_back({"dltrace", text});
  const std::string fallback = prose(help.exit_status);
  for (const CLI::App* sub : subs) pages.push_back(command_page(*sub, version, fallback));
  return pages;
}

}  // namespace dltrace::viewer

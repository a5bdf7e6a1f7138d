#include "docs/bash_completion.h"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <string_view>
#include <vector>

namespace dltrace::viewer {
namespace {

// What a word in a given place is completed with.
enum class Completion { kNothing, kChoices, kFile, kTrace, kCommand };

struct Place {
  Completion kind = Completion::kNothing;
  std::string choices;  // kChoices: space-separated
};

// An option's value: the set CLI11 checks it against ("TEXT:{auto,always,never}"), or by what
// the option names: an output or config file, or a trace.
Place value_place(const CLI::Option& opt) {
  const std::string type = opt.get_type_name();
  const size_t open = type.find('{'), close = type.rfind('}');
  if (open != std::string::npos && close != std::string::npos && close > open) {
    std::string list = type.substr(open + 1, close - open - 1);
    for (char& c : list)
      if (c == ',') c = ' ';
    return {Completion::kChoices, list};
  }
  const std::string name = opt.get_name(true, false);
  if (name == "trace") return {Completion::kTrace, {}};
  if (name == "output" || name == "config") return {Completion::kFile, {}};
  return {};
}

// A positional: trace files, a file, or the program `run` starts.
Place positional_place(const CLI::Option& opt) {
  const std::string name = opt.get_name(true, false);
  if (name == "trace" || name == "traces") return {Completion::kTrace, {}};
  if (name == "command") return {Completion::kCommand, {}};
  return {Completion::kFile, {}};
}

std::string action(const Place& p) {
  switch (p.kind) {
    case Completion::kChoices:
      return fmt::format("COMPREPLY=($(compgen -W '{}' -- \"$cur\"))", p.choices);
    case Completion::kFile:
      return "_filedir";
    case Completion::kTrace:
      return "_filedir trace";
    case Completion::kCommand:
      return "_command_offset \"$cword\"";
    case Completion::kNothing:
      break;
  }
  return ":";
}

std::string path_of(const CLI::App& app) {
  const CLI::App* parent = app.get_parent();
  if (parent == nullptr) return "";
  const std::string up = path_of(*parent);
  return up.empty() ? app.get_name() : up + " " + app.get_name();
}

struct Script {
  std::string takes_value;  // case arms of _dltrace_takes_value
  std::string values;       // case arms: "$cmd $prev"
  std::string flags;        // case arms: "$cmd" -> its flags
  std::string operands;     // case arms: "$cmd" -> its positional or subcommands
  std::string nested;       // commands whose next word is a subcommand: "config|..."
};

void describe(const CLI::App& app, Script& s) {
  const std::string path = path_of(app);
  std::vector<std::string> flags;
  std::string positional_action;
  for (const CLI::Option* o : app.get_options({})) {
    if (!o->nonpositional()) {
      if (positional_action.empty()) positional_action = action(positional_place(*o));
      continue;
    }
    std::vector<std::string> names;
    for (const auto& n : o->get_snames()) names.push_back("-" + n);
    for (const auto& n : o->get_lnames()) names.push_back("--" + n);
    for (const auto& n : names) flags.push_back(n);
    if (o->get_type_size() == 0) continue;
    std::string arms;
    for (const auto& n : names) arms += (arms.empty() ? "" : "|") + fmt::format("'{} {}'", path, n);
    s.takes_value += fmt::format("    {}) return 0 ;;\n", arms);
    s.values += fmt::format("    {}) {}; return ;;\n", arms, action(value_place(*o)));
  }
  if (app.get_name() == "dltrace") flags.push_back("--version");
  std::string flag_words;
  for (const auto& f : flags) flag_words += (flag_words.empty() ? "" : " ") + f;
  s.flags += fmt::format("    '{}') words_='{}' ;;\n", path, flag_words);
  const auto subs = app.get_subcommands({});
  if (!subs.empty()) {
    std::string names;
    for (const CLI::App* sub : subs) names += (names.empty() ? "" : " ") + sub->get_name();
    s.operands +=
        fmt::format("    '{}') COMPREPLY=($(compgen -W '{}' -- \"$cur\")) ;;\n", path, names);
    if (!path.empty()) s.nested += fmt::format("    '{}') cmd=\"$cmd $w\" ;;\n", path);
  } else if (!positional_action.empty()) {
    s.operands += fmt::format("    '{}') {} ;;\n", path, positional_action);
  }
  for (const CLI::App* sub : subs) describe(*sub, s);
}

}  // namespace

std::string bash_completion(const CLI::App& app) {
  Script s;
  describe(app, s);
  return fmt::format(R"(# bash completion for dltrace(1).
# Generated from the dltrace command line (viewer/docs/bash_completion.cpp): do not edit.

# Whether option $2 of command $1 takes a value (the next word is that value).
_dltrace_takes_value() {{
  case "$1 $2" in
{}  esac
  return 1
}}

_dltrace() {{
  local cur prev words cword split
  _init_completion -s || return

  # The command so far ("", "show", "config check"): words before the cursor that are neither
  # options nor option values. After `run --` (or run's first operand) comes the program.
  local i w cmd= skip=
  for ((i = 1; i < cword; i++)); do
    w=${{words[i]}}
    if [[ -n $skip ]]; then skip=; continue; fi
    if [[ $w == -- ]]; then
      [[ $cmd == run ]] && {{ _command_offset $((i + 1)); return; }}
      continue
    fi
    if [[ $w == -* ]]; then
      [[ $w != *=* ]] && _dltrace_takes_value "$cmd" "$w" && skip=1
      continue
    fi
    case "$cmd" in
    '') cmd=$w ;;
{}    run) _command_offset "$i"; return ;;
    esac
  done

  case "$cmd $prev" in
{}  esac
  $split && return

  if [[ $cur == -* ]]; then
    local words_=
    case "$cmd" in
{}    esac
    COMPREPLY=($(compgen -W "$words_" -- "$cur"))
    return
  fi
  case "$cmd" in
{}  esac
}} &&
  complete -F _dltrace dltrace
)",
                     s.takes_value, s.nested, s.values, s.flags, s.operands);
}

}  // namespace dltrace::viewer

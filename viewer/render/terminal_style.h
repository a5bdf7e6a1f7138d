// ANSI styling for the text commands (show, tree): when to colour, and the escape sequences.
// Every style is empty when colour is off, so printers use them unconditionally.
#pragma once

#include <optional>
#include <string_view>

namespace dltrace::viewer {

enum class ColorMode { kAuto, kAlways, kNever };

// "auto" | "always" | "never"; anything else: nullopt.
std::optional<ColorMode> parse_color_mode(std::string_view text);

// Whether to emit ANSI colour: kAlways yes, kNever no, kAuto only when the output is a terminal
// and NO_COLOR is unset or empty (https://no-color.org).
bool use_color(ColorMode mode, bool output_is_terminal);

// use_color() for a FILE's descriptor.
bool use_color_for(ColorMode mode, int fd);

struct TerminalStyle {
  bool on = false;
  std::string_view dim() const { return on ? "\x1b[2m" : ""; }
  std::string_view bold() const { return on ? "\x1b[1m" : ""; }
  std::string_view red() const { return on ? "\x1b[31m" : ""; }
  std::string_view yellow() const { return on ? "\x1b[33m" : ""; }
  std::string_view reset() const { return on ? "\x1b[0m" : ""; }
};

}  // namespace dltrace::viewer

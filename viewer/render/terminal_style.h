// ANSI styling for the text commands (show, tree): when to colour, and the escape sequences.
// Every style is empty when colour is off, so printers use them unconditionally.
#pragma once

#include <optional>
#include <string_view>

#include "render/visible_text.h"

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
  StyleCode dim() const { return on ? StyleCode("\x1b[2m") : StyleCode(); }
  StyleCode bold() const { return on ? StyleCode("\x1b[1m") : StyleCode(); }
  StyleCode red() const { return on ? StyleCode("\x1b[31m") : StyleCode(); }
  StyleCode yellow() const { return on ? StyleCode("\x1b[33m") : StyleCode(); }
  StyleCode reset() const { return on ? StyleCode("\x1b[0m") : StyleCode(); }
};

}  // namespace dltrace::viewer

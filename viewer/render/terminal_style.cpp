#include "render/terminal_style.h"

#include <unistd.h>

#include <cstdlib>

namespace dltrace::viewer {

std::optional<ColorMode> parse_color_mode(std::string_view text) {
  if (text == "auto") return ColorMode::kAuto;
  if (text == "always") return ColorMode::kAlways;
  if (text == "never") return ColorMode::kNever;
  return std::nullopt;
}

bool use_color(ColorMode mode, bool output_is_terminal) {
  switch (mode) {
    case ColorMode::kAlways:
      return true;
    case ColorMode::kNever:
      return false;
    case ColorMode::kAuto:
      break;
  }
  const char* no_color = std::getenv("NO_COLOR");
  return output_is_terminal && (no_color == nullptr || *no_color == '\0');
}

bool use_color_for(ColorMode mode, int fd) {
  return use_color(mode, isatty(fd) == 1);
}

}  // namespace dltrace::viewer

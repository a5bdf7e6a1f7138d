// Text output of strings that come from a trace (or from files it names): every text renderer
// prints them through here, escaped by common/visible_text.h so that no control byte, invalid
// UTF-8 or bidi character reaches the terminal as it is. The renderers' own styling (ANSI colour)
// is a StyleCode, printed as it is.
//
// format_visible / print_visible / append_visible_format are fmt's format / print / format_to
// with every string argument escaped: a renderer cannot forget one. Strings put together from
// trace data before printing are escaped once, when printed, so nothing is escaped twice.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <iterator>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "common/visible_text.h"

namespace dltrace::viewer {

// A string shown escaped.
struct Visible {
  std::string_view text;
};

// The renderer's own ANSI styling, shown as it is (empty when colour is off).
struct StyleCode {
  std::string_view code;
  constexpr StyleCode() = default;
  constexpr StyleCode(const char* c) : code(c) {}  // NOLINT: "" in `cond ? style.red() : ""`
};

// The escaped form of `text`.
std::string visible(std::string_view text);
void append_visible(std::string& out, std::string_view text);

namespace detail {
template <typename T>
inline constexpr bool kIsText =
    std::is_convertible_v<const std::remove_cvref_t<T>&, std::string_view> &&
    !std::is_same_v<std::remove_cvref_t<T>, StyleCode>;
}  // namespace detail

// The argument as printed: any string as Visible, anything else as it is.
template <typename T>
using shown_t = std::conditional_t<detail::kIsText<T>, Visible, T>;

template <typename T>
decltype(auto) shown(T&& arg) {
  if constexpr (detail::kIsText<T>) {
    return Visible{std::string_view(arg)};
  } else {
    return std::forward<T>(arg);
  }
}

template <typename... Args>
std::string format_visible(fmt::format_string<shown_t<Args>...> f, Args&&... args) {
  return fmt::format(f, shown(std::forward<Args>(args))...);
}

template <typename... Args>
void print_visible(std::FILE* out, fmt::format_string<shown_t<Args>...> f, Args&&... args) {
  fmt::print(out, f, shown(std::forward<Args>(args))...);
}

template <typename Buffer, typename... Args>
void append_visible_format(Buffer& buf, fmt::format_string<shown_t<Args>...> f, Args&&... args) {
  fmt::format_to(std::back_inserter(buf), f, shown(std::forward<Args>(args))...);
}

}  // namespace dltrace::viewer

template <>
struct fmt::formatter<dltrace::viewer::Visible> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const dltrace::viewer::Visible& v, FormatContext& ctx) const {
    if (!dltrace::visible::needs_escape(v.text.data(), v.text.size()))
      return fmt::formatter<std::string_view>::format(v.text, ctx);
    return fmt::formatter<std::string_view>::format(dltrace::viewer::visible(v.text), ctx);
  }
};

template <>
struct fmt::formatter<dltrace::viewer::StyleCode> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const dltrace::viewer::StyleCode& s, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(s.code, ctx);
  }
};

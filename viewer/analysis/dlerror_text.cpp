#include "analysis/dlerror_text.h"

namespace dltrace::viewer {
namespace {

// "OBJ: rest" -> OBJ; glibc omits "OBJ: " when the object's name is empty (the executable).
std::string_view object_before(std::string_view text, size_t marker) {
  if (marker >= 2 && text.substr(marker - 2, 2) == ": ") return text.substr(0, marker - 2);
  return {};
}

}  // namespace

DlerrorText parse_dlerror(std::string_view text) {
  DlerrorText out;
  // The object name can itself contain ": " (paths can), so markers are searched from the end.
  static constexpr std::string_view kUndefined = "undefined symbol: ";
  if (size_t at = text.rfind(kUndefined); at != std::string_view::npos) {
    out.kind = DlerrorText::Kind::kUndefinedSymbol;
    out.object = std::string(object_before(text, at));
    std::string_view rest = text.substr(at + kUndefined.size());
    if (size_t v = rest.rfind(", version "); v != std::string_view::npos) {
      out.version = std::string(rest.substr(v + 10));
      rest = rest.substr(0, v);
    }
    out.symbol = std::string(rest);
    return out;
  }
  static constexpr std::string_view kNotFound =
      "cannot open shared object file: No such file or directory";
  if (size_t at = text.rfind(kNotFound); at != std::string_view::npos) {
    out.kind = DlerrorText::Kind::kNotFound;
    out.object = std::string(object_before(text, at));
    return out;
  }
  static constexpr std::string_view kVersion = "version `";
  if (size_t at = text.find(kVersion); at != std::string_view::npos) {
    std::string_view rest = text.substr(at + kVersion.size());
    size_t quote = rest.find("' not found");
    if (quote != std::string_view::npos) {
      out.kind = DlerrorText::Kind::kVersionNotFound;
      out.object = std::string(object_before(text, at));
      out.version = std::string(rest.substr(0, quote));
      std::string_view tail = rest.substr(quote);
      static constexpr std::string_view kRequired = "(required by ";
      if (size_t r = tail.find(kRequired); r != std::string_view::npos) {
        std::string_view by = tail.substr(r + kRequired.size());
        if (!by.empty() && by.back() == ')') by.remove_suffix(1);
        out.needed_by = std::string(by);
      }
    }
  }
  return out;
}

}  // namespace dltrace::viewer

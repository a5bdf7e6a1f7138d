// Text escaping for Graphviz DOT output: quoted strings and HTML-like labels. Paths are bytes,
// not text, and Graphviz rejects invalid UTF-8, so invalid sequences become U+FFFD.
#pragma once

#include <string>
#include <string_view>

namespace dltrace::viewer {

// `s` as valid UTF-8 (invalid byte sequences replaced by U+FFFD), control characters dropped.
std::string dot_clean(std::string_view s);
// `s` as a DOT double-quoted string, quotes included: "lib\"x\".so".
std::string dot_quoted(std::string_view s);
// `s` escaped for the inside of an HTML-like label <...>: & < > " become entities.
std::string dot_html(std::string_view s);

}  // namespace dltrace::viewer

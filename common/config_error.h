// The one line that says why an override config cannot be used: "FILE:LINE:COL: message", or
// "FILE: message" without a position. libc only, no allocation: the recorder prints it for its
// own failures (the parser library missing), the parser and the viewer for the config's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dltrace::config {

// Into buf (NUL-terminated, cut to fit). line 0: no position. Control characters (from the
// file's text or name) are escaped as \xNN: always exactly one line. Returns the length.
size_t format_error_line_to(char* buf, size_t size, std::string_view file, uint32_t line,
                            uint32_t col, std::string_view message);

}  // namespace dltrace::config

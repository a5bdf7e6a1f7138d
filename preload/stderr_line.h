// Writing the recorder's own lines to stderr without changing the program's fate.
#pragma once

#include <cstddef>

namespace dltrace::preload {

// Writes `text` to fd 2. If stderr is a closed pipe, the write fails quietly: the SIGPIPE it
// raises is blocked and consumed, so a program that would never have written there untraced is
// not killed because the recorder did. Async-signal-safe.
void write_stderr(const char* text, size_t length);

}  // namespace dltrace::preload

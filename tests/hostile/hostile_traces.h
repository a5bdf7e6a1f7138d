// Traces an attacker would craft, written with the recorder's own TraceWriter (the file the
// preload writes): for the viewer's hostile-input tests, the bounded-run test of every command and
// the seeds of the viewer fuzzer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dltrace::test {

// Strings with terminal escapes (title, clear screen), BEL, CR, LF (a forged "0 problems" line),
// backslashes, invalid UTF-8 and a bidi override, everywhere a trace has a string: exe, argv,
// cwd, config path, object paths and sonames, dlopen/dlsym/dlvsym names and versions, dlerror
// texts, Python file and function names. Has a failed dlopen, a failed dlsym, Python stacks.
std::string write_escape_trace(const std::string& path);

// The pieces write_escape_trace puts into strings, and what each must never print as.
inline constexpr const char* kTitleEscape = "\x1b]0;pwned\x07";
inline constexpr const char* kClearScreen = "\x1b[2J";
inline constexpr const char* kForgedLine = "\r\n0 problems\n";
inline constexpr const char* kInvalidUtf8 = "\xff\xfe";
inline constexpr const char* kBidiOverride = "\xe2\x80\xae";  // U+202E

// Objects, a failed dlopen, stack frames and Python frames whose paths are `targets` (a FIFO,
// /dev/zero, a secret file, a directory...), and the executable at targets[0]: every way the trace
// makes the viewer open a local file.
std::string write_pointing_trace(const std::string& path, const std::vector<std::string>& targets);

// `depth` dlopens, each made inside the previous one's constructor (parent_seq and the caller
// object chain), each loading a new object: quadratic nesting work and unbounded indentation.
std::string write_nested_trace(const std::string& path, uint32_t depth);

}  // namespace dltrace::test

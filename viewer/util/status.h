// absl::Status conventions of the viewer: which status means which exit code, and how an error
// reaches the user. Commands return absl::Status; main() turns it into a message and exit code.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dltrace::viewer {

// Exit codes of every subcommand.
inline constexpr int kExitOk = 0;
inline constexpr int kExitTraceProblem = 1;  // unreadable trace, I/O error
inline constexpr int kExitUsage = 2;         // bad command line

// A bad command line (unknown format, malformed range): exit code 2.
inline absl::Status UsageError(std::string_view message) {
  return absl::InvalidArgumentError(std::string(message));  // absl::string_view != std's here
}
// A trace that cannot be read at all, or output that cannot be written: exit code 1.
inline absl::Status TraceError(std::string_view message) {
  return absl::DataLossError(std::string(message));
}

inline int exit_code_for(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  return status.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitTraceProblem;
}

// Prints "dltrace: <message>" on stderr (no status-code prefix: users read these).
inline int report_error(const absl::Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "dltrace: %.*s\n", static_cast<int>(status.message().size()),
                 status.message().data());
  }
  return exit_code_for(status);
}

}  // namespace dltrace::viewer

// Propagates a non-OK absl::Status to the caller.
#define DLTRACE_RETURN_IF_ERROR(expr)             \
  do {                                            \
    if (auto _st = (expr); !_st.ok()) return _st; \
  } while (0)

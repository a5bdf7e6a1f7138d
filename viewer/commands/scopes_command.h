// `dltrace scopes` as a function, so that tests can run it on any reader and capture its output.
#pragma once

#include <cstdio>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

struct ScopesOptions {
  std::string trace;
  std::string for_object;          // --for NAME: the search list of one object
  std::optional<uint64_t> at_seq;  // --at SEQ: the state at that event (default: its load)
  bool json = false;
  bool color = false;
};

absl::Status scopes_trace(const TraceReader& reader, const ScopesOptions& options, std::FILE* out);

}  // namespace dltrace::viewer

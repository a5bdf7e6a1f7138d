// DLTRACE_ONLY (`dltrace run --only GLOB`): which processes of a tree record.
#pragma once

#include <cstddef>

namespace dltrace::preload {

// Whether this process is to be recorded. Unset or empty: yes. Otherwise a glob (the override
// config's syntax) on the executable's basename (self_exe.h); a malformed pattern records nothing
// and says so in *error (one sentence).
bool selected_by_only(const char* pattern, char* error, size_t error_size);

}  // namespace dltrace::preload

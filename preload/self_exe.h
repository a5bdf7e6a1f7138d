// The executable this process runs, as the recorder names it (trace file names, DLTRACE_ONLY,
// the run report).
#pragma once

#include <cstddef>

namespace dltrace::preload {

// The basename of /proc/self/exe (program_invocation_short_name if that cannot be read or does
// not fit in `out`, then "unknown"). No malloc: usable before main and in fork children. `out`
// should hold a whole path (PATH_MAX) for the link's own name to be used.
void exe_basename(char* out, size_t out_size);

}  // namespace dltrace::preload

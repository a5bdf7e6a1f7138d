// The executable this process runs, as the recorder names it (trace file names, DLTRACE_ONLY,
// the run report).
#pragma once

#include <cstddef>

namespace dltrace::preload {

// The target of /proc/self/exe, NUL-terminated ("" if it cannot be read whole), read from the
// kernel once per process and kept (a fork child runs the same executable; an exec starts
// afresh). Async-signal-safe, no malloc; a caller racing the first read reads the link itself
// into `scratch` and gets that.
const char* self_exe_path(char* scratch, size_t scratch_size);

// The basename of /proc/self/exe (program_invocation_short_name if that cannot be read or does
// not fit in `out`, then "unknown"). No malloc: usable before main and in fork children. `out`
// should hold a whole path (PATH_MAX) for the link's own name to be used. `keep`: through
// self_exe_path (the trace's name: the executable's object entry reads the path next); else the
// link read into `out`, touching no memory of ours (DLTRACE_ONLY's test, the run report).
void exe_basename(char* out, size_t out_size, bool keep = false);

}  // namespace dltrace::preload

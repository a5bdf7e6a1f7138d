// The executable this process runs, as the recorder names it (trace file names, DLTRACE_ONLY,
// the run report).
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace dltrace::preload {

// readlink("/proc/self/exe", out, out_size) (the same result: the length, no NUL added, -1 with
// errno), read from the kernel once per process: the first whole answer is kept (a fork child
// runs the same executable; an exec starts afresh). Async-signal-safe, no malloc.
ssize_t read_self_exe(char* out, size_t out_size);

// The basename of /proc/self/exe (program_invocation_short_name if that cannot be read or does
// not fit in `out`, then "unknown"). No malloc: usable before main and in fork children. `out`
// should hold a whole path (PATH_MAX) for the link's own name to be used.
void exe_basename(char* out, size_t out_size);

}  // namespace dltrace::preload

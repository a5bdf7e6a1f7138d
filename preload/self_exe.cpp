#include "self_exe.h"

#include <errno.h>  // program_invocation_short_name
#include <string.h>
#include <unistd.h>

#include "bounded_text.h"

namespace dltrace::preload {
namespace {

constinit char g_exe[4096];
// 0: not read; 1: being read by one thread (the others read the link themselves); 2: g_exe holds
// the path.
constinit int g_exe_state = 0;

// The link into `out` (NUL-terminated), or "" where it cannot be read whole.
void read_link(char* out, size_t out_size) {
  const ssize_t n = readlink("/proc/self/exe", out, out_size - 1);
  out[n > 0 && size_t(n) < out_size - 1 ? n : 0] = '\0';
}

}  // namespace

const char* self_exe_path(char* scratch, size_t scratch_size) {
  if (__atomic_load_n(&g_exe_state, __ATOMIC_ACQUIRE) == 2) return g_exe;
  int idle = 0;
  if (!__atomic_compare_exchange_n(&g_exe_state, &idle, 1, false, __ATOMIC_ACQUIRE,
                                   __ATOMIC_RELAXED)) {
    if (scratch_size == 0) return "";
    read_link(scratch, scratch_size);
    return scratch;
  }
  const int saved_errno = errno;
  read_link(g_exe, sizeof g_exe);
  errno = saved_errno;
  __atomic_store_n(&g_exe_state, 2, __ATOMIC_RELEASE);
  return g_exe;
}

void exe_basename(char* out, size_t out_size, bool keep) {
  if (out_size == 0) return;
  // `out` is the scratch space: no temporary on the stack (fork children and signal paths may
  // run on small stacks). A link that may have been cut is "": its end, the basename, would be
  // wrong.
  const char* path = out;
  if (keep)
    path = self_exe_path(out, out_size);
  else
    read_link(out, out_size);
  const char* slash = strrchr(path, '/');
  const char* name = slash ? slash + 1 : path;
  if (*name && strlen(name) < out_size) {
    memmove(out, name, strlen(name) + 1);
    return;
  }
  name = program_invocation_short_name;
  Text(out, out_size).add(name && *name ? name : "unknown");
}

}  // namespace dltrace::preload

#include "self_exe.h"

#include <errno.h>  // program_invocation_short_name
#include <string.h>
#include <unistd.h>

#include "bounded_text.h"

namespace dltrace::preload {
namespace {

constinit char g_exe[4096];
constinit ssize_t g_exe_length = 0;
// 0: not read; 1: being filled by one thread (the others read the link themselves); 2: g_exe
// holds the link, g_exe_length long.
constinit int g_exe_state = 0;

}  // namespace

ssize_t read_self_exe(char* out, size_t out_size) {
  if (__atomic_load_n(&g_exe_state, __ATOMIC_ACQUIRE) != 2) {
    int idle = 0;
    if (!__atomic_compare_exchange_n(&g_exe_state, &idle, 1, false, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
      return readlink("/proc/self/exe", out, out_size);
    const ssize_t n = readlink("/proc/self/exe", g_exe, sizeof g_exe);
    if (n <= 0 || size_t(n) >= sizeof g_exe) {  // failed, or perhaps cut: not kept
      const int err = errno;
      __atomic_store_n(&g_exe_state, 0, __ATOMIC_RELEASE);
      if (n <= 0) {
        errno = err;
        return n;
      }
      return readlink("/proc/self/exe", out, out_size);
    }
    g_exe_length = n;
    __atomic_store_n(&g_exe_state, 2, __ATOMIC_RELEASE);
  }
  const size_t n = size_t(g_exe_length) < out_size ? size_t(g_exe_length) : out_size;
  memcpy(out, g_exe, n);
  return ssize_t(n);
}

void exe_basename(char* out, size_t out_size) {
  if (out_size == 0) return;
  // The link is read into `out` and its basename moved to the front: no temporary on the stack
  // (fork children and signal paths may run on small stacks). A link that may have been cut
  // (it filled `out`) is not trusted: its end, the basename, would be wrong.
  const ssize_t n = read_self_exe(out, out_size - 1);
  if (n > 0 && size_t(n) < out_size - 1) {
    out[n] = '\0';
    const char* slash = strrchr(out, '/');
    const char* name = slash ? slash + 1 : out;
    if (*name) {
      memmove(out, name, strlen(name) + 1);
      return;
    }
  }
  const char* name = program_invocation_short_name;
  Text(out, out_size).add(name && *name ? name : "unknown");
}

}  // namespace dltrace::preload

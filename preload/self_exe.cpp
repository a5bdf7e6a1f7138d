#include "self_exe.h"

#include <errno.h>  // program_invocation_short_name
#include <string.h>
#include <unistd.h>

#include "bounded_text.h"

namespace dltrace::preload {

void exe_basename(char* out, size_t out_size) {
  if (out_size == 0) return;
  // The link is read into `out` and its basename moved to the front: no temporary on the stack
  // (fork children and signal paths may run on small stacks). A link that may have been cut
  // (it filled `out`) is not trusted: its end, the basename, would be wrong.
  const ssize_t n = readlink("/proc/self/exe", out, out_size - 1);
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

#include "self_exe.h"

#include <errno.h>  // program_invocation_short_name
#include <string.h>
#include <unistd.h>

#include "bounded_text.h"

namespace dltrace::preload {

void exe_basename(char* out, size_t out_size) {
  char target[4096];
  const ssize_t n = readlink("/proc/self/exe", target, sizeof target - 1);
  const char* name = nullptr;
  if (n > 0) {
    target[n] = '\0';
    const char* slash = strrchr(target, '/');
    name = slash ? slash + 1 : target;
  }
  if (!name || !*name) name = program_invocation_short_name;
  if (!name || !*name) name = "unknown";
  Text(out, out_size).add(name);
}

}  // namespace dltrace::preload

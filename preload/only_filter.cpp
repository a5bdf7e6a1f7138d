#include "only_filter.h"

#include "bounded_text.h"
#include "common/glob.h"
#include "self_exe.h"

namespace dltrace::preload {

bool selected_by_only(const char* pattern, char* error, size_t error_size) {
  if (error_size) error[0] = '\0';
  if (pattern == nullptr || *pattern == '\0') return true;
  config::GlobView glob;
  const char* why = nullptr;
  if (!glob.compile(pattern, &why)) {
    Text(error, error_size).add("invalid DLTRACE_ONLY '").add(pattern).add("': ").add(why);
    return false;
  }
  char name[4096];  // a whole path: exe_basename reads the link into it
  exe_basename(name, sizeof name);
  return glob.matches(name);
}

}  // namespace dltrace::preload

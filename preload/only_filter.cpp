#include "only_filter.h"

#include <string>

#include "bounded_text.h"
#include "common/config.h"
#include "self_exe.h"

namespace dltrace::preload {

bool selected_by_only(const char* pattern, char* error, size_t error_size) {
  if (error_size) error[0] = '\0';
  if (pattern == nullptr || *pattern == '\0') return true;
  config::Glob glob;
  std::string why;
  if (!glob.compile(pattern, &why)) {
    Text(error, error_size).add("invalid DLTRACE_ONLY '").add(pattern).add("': ").add(why.c_str());
    return false;
  }
  char name[4096];  // a whole path: exe_basename reads the link into it
  exe_basename(name, sizeof name);
  return glob.matches(name);
}

}  // namespace dltrace::preload

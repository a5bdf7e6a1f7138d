// The exported _exit/_Exit and exec* family: how a process ends when it does not return through
// exit(). Each records the end in the trace (recorder.h) and then makes the real call, so the
// program sees no difference. execl/execlp/execle collect their arguments and go through the
// vector forms, as glibc's own do.
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "interposed_functions.h"
#include "real_functions.h"
#include "recorder.h"

using namespace dltrace::preload;

namespace {

[[noreturn]] void exit_now(int status) {
  record_process_exit(status, /*underscore=*/true);
  if (const auto real = real_functions()._exit) real(status);
  for (;;) syscall(SYS_exit_group, status);
}

// Records the exec, makes it; if it returns (it failed), the process runs on: undo the record.
template <typename Call>
int exec_with_record(const char* target, Call&& call) {
  record_exec(target);
  const int r = call();
  const int err = errno;
  record_exec_failed();
  errno = err;
  return r;
}

// argv of a variadic exec: `first`, then the arguments up to the terminating NULL. glibc's own
// execl builds the same array on its stack.
constexpr int kMaxListArgs = 4096;

}  // namespace

DLTRACE_EXPORT [[noreturn]] void _exit(int status) {
  exit_now(status);
}
DLTRACE_EXPORT [[noreturn]] void _Exit(int status) {
  exit_now(status);
}

DLTRACE_EXPORT int execve(const char* path, char* const argv[], char* const envp[]) noexcept {
  return exec_with_record(path, [&] { return real_functions().execve(path, argv, envp); });
}

DLTRACE_EXPORT int execv(const char* path, char* const argv[]) noexcept {
  return exec_with_record(path, [&] { return real_functions().execv(path, argv); });
}

DLTRACE_EXPORT int execvp(const char* file, char* const argv[]) noexcept {
  return exec_with_record(file, [&] { return real_functions().execvp(file, argv); });
}

DLTRACE_EXPORT int execvpe(const char* file, char* const argv[], char* const envp[]) noexcept {
  return exec_with_record(file, [&] { return real_functions().execvpe(file, argv, envp); });
}

DLTRACE_EXPORT int fexecve(int fd, char* const argv[], char* const envp[]) noexcept {
  char target[64];
  snprintf(target, sizeof target, "/proc/self/fd/%d", fd);
  char resolved[4096];
  const ssize_t n = readlink(target, resolved, sizeof resolved - 1);
  if (n > 0) resolved[n] = '\0';
  return exec_with_record(n > 0 ? resolved : target,
                          [&] { return real_functions().fexecve(fd, argv, envp); });
}

#define DLTRACE_COLLECT_ARGS(first, ap, argv, argc, then_envp)                                \
  char* argv[kMaxListArgs + 1];                                                               \
  int argc = 0;                                                                               \
  va_list ap;                                                                                 \
  va_start(ap, first);                                                                        \
  argv[argc++] = const_cast<char*>(first);                                                    \
  while (argv[argc - 1] != nullptr && argc <= kMaxListArgs) argv[argc++] = va_arg(ap, char*); \
  then_envp;                                                                                  \
  va_end(ap);                                                                                 \
  if (argv[argc - 1] != nullptr) {                                                            \
    errno = E2BIG;                                                                            \
    return -1;                                                                                \
  }

DLTRACE_EXPORT int execl(const char* path, const char* arg, ...) noexcept {
  DLTRACE_COLLECT_ARGS(arg, ap, argv, argc, (void)0)
  return execv(path, argv);
}

DLTRACE_EXPORT int execlp(const char* file, const char* arg, ...) noexcept {
  DLTRACE_COLLECT_ARGS(arg, ap, argv, argc, (void)0)
  return execvp(file, argv);
}

DLTRACE_EXPORT int execle(const char* path, const char* arg, ...) noexcept {
  char* const* envp = nullptr;
  DLTRACE_COLLECT_ARGS(arg, ap, argv, argc, envp = va_arg(ap, char* const*))
  return execve(path, argv, envp);
}

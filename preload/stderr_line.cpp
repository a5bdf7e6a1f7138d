#include "stderr_line.h"

#include <errno.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

namespace dltrace::preload {

void write_stderr(const char* text, size_t length) {
  const int saved_errno = errno;
  sigset_t pipe_only, old_mask, pending;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
  // A SIGPIPE already pending belongs to the program: leave it for the program.
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  ssize_t written = write(STDERR_FILENO, text, length);
  if (written < 0 && errno == EPIPE && !was_pending) {
    const timespec no_wait{0, 0};
    sigtimedwait(&pipe_only, nullptr, &no_wait);  // consume the one our write raised
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  errno = saved_errno;
}

}  // namespace dltrace::preload

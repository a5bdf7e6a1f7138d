// Who the traced process is, written once per trace: its command line, working directory and
// LD_LIBRARY_PATH (catalog), and its pid and parent as seen from outside a PID namespace
// (header), so that the viewer can name processes and join parents to children.
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "arch/arch.h"
#include "object_table.h"
#include "recorder_internal.h"

namespace dltrace::preload::recorder {
namespace {
// Static storage: nothing is allocated, and a fork child rewrites them for its own trace.
DLTRACE_LARGE_BSS constinit char g_cmdline[65536];
DLTRACE_LARGE_BSS constinit const char* g_argv[2048];
DLTRACE_LARGE_BSS constinit char g_cwd[4096];

// `length` bytes of NUL-separated arguments in g_cmdline, split into g_argv.
int split_arguments(size_t length) {
  g_cmdline[length] = '\0';
  int argc = 0;
  for (size_t i = 0; i < length && argc < 2048;) {
    g_argv[argc++] = g_cmdline + i;
    i += strlen(g_cmdline + i) + 1;
  }
  return argc;
}

// The command line as /proc/self/cmdline gives it (cut at the same size).
int read_cmdline() {
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t total = 0, n;
  while (total < static_cast<ssize_t>(sizeof(g_cmdline)) - 1 &&
         (n = read(fd, g_cmdline + total, sizeof(g_cmdline) - 1 - total)) > 0)
    total += n;
  close(fd);
  return split_arguments(size_t(total));
}

// The constructor's arguments laid out as /proc/self/cmdline would give them.
int copy_arguments(int argc, char** argv) {
  size_t total = 0;
  for (int i = 0; i < argc && argv[i] != nullptr; ++i) {
    const size_t room = sizeof(g_cmdline) - 1 - total;
    const size_t n = strnlen(argv[i], room) + 1;
    if (n > room) {
      memcpy(g_cmdline + total, argv[i], room);
      total += room;
      break;
    }
    memcpy(g_cmdline + total, argv[i], n);
    total += n;
  }
  return split_arguments(total);
}

}  // namespace

void write_process_info(int start_argc, char** start_argv) {
  // AT_BASE is 0 when the kernel ran ld.so itself ("ld.so PROGRAM ARGS"): the constructor then
  // gets the program's arguments, /proc/self/cmdline (what a trace records) all of them.
  const bool from_constructor = start_argv != nullptr && start_argc > 0 && getauxval(AT_BASE) != 0;
  const int argc = from_constructor ? copy_arguments(start_argc, start_argv) : read_cmdline();
  if (getcwd(g_cwd, sizeof(g_cwd)) == nullptr) g_cwd[0] = '\0';
  g_writer.write_process(objects::executable_path(), g_cwd, argc, g_argv,
                         getenv("LD_LIBRARY_PATH"));
}

// pid and ppid as /proc shows them: from outside a PID namespace sandbox (where the process may
// be pid 1 with no parent), as far as the /proc mounted here can see.
void write_outer_pids() {
  format::FileHeader* h = g_writer.header();
  if (h == nullptr) return;
  char buf[2048];
  // The common case costs one readlink: /proc names us by our own pid, and our parent is in our
  // namespace (a PID namespace's first process has ppid 0).
  const ssize_t self = readlink("/proc/self", buf, 32);
  if (self > 0 && h->ppid != 0) {
    int64_t v = 0;
    for (ssize_t i = 0; i < self && buf[i] >= '0' && buf[i] <= '9'; ++i)
      v = v * 10 + (buf[i] - '0');
    if (v == h->pid) {
      h->outer_pid = h->pid;
      h->outer_ppid = h->ppid;
      return;
    }
  }
  const int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = '\0';
  auto field = [&](const char* name) -> int32_t {
    const char* p = strstr(buf, name);
    if (p == nullptr) return 0;
    p += strlen(name);
    while (*p == ' ' || *p == '\t') ++p;
    int64_t v = 0;
    while (*p >= '0' && *p <= '9' && v < INT32_MAX) v = v * 10 + (*p++ - '0');
    return static_cast<int32_t>(v);
  };
  h->outer_pid = field("\nPid:");
  h->outer_ppid = field("\nPPid:");
}

}  // namespace dltrace::preload::recorder

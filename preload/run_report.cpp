#include "run_report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>

#include "bounded_text.h"
#include "self_exe.h"
#include "stderr_line.h"

namespace dltrace::preload {

namespace {

constinit bool g_quiet = false;
constinit uint64_t g_token = 0;
constinit char g_report_path[4096];  // empty: no run report

uint64_t parse_token(const char* text) {
  if (text == nullptr) return 0;
  uint64_t v = 0;
  size_t n = 0;
  for (; text[n]; ++n) {
    const char c = text[n];
    if (n == 16) return 0;
    if (c >= '0' && c <= '9')
      v = v << 4 | uint64_t(c - '0');
    else if (c >= 'a' && c <= 'f')
      v = v << 4 | uint64_t(c - 'a' + 10);
    else
      return 0;
  }
  return n == 16 ? v : 0;
}

}  // namespace

void run_report_init() {
  const char* q = getenv("DLTRACE_QUIET");
  g_quiet = q != nullptr && q[0] == '1' && q[1] == '\0';
  g_token = parse_token(getenv("DLTRACE_RUN_TOKEN"));
  g_report_path[0] = '\0';
  const char* report = getenv("DLTRACE_RUN_REPORT");
  if (getauxval(AT_SECURE) != 0 || report == nullptr || report[0] != '/') return;
  if (strlen(report) >= sizeof g_report_path) return;
  memcpy(g_report_path, report, strlen(report) + 1);
}

bool quiet() {
  return g_quiet;
}

uint64_t run_token() {
  return g_token;
}

void report_to_run(const char* kind, const char* text) {
  if (g_report_path[0] == '\0') return;
  const int saved_errno = errno;
  char buf[4096 + 512];
  Text line(buf, sizeof buf - 1);  // room for the final newline
  line.add(uint64_t(getpid())).add("\t");
  // The executable's basename (as in trace names), read into the free part of the line.
  const size_t start = line.len;
  exe_basename(buf + start, sizeof buf - 1 - start);
  line.len = start + strlen(buf + start);
  for (size_t i = start; i < line.len; ++i)
    if (buf[i] == '\t' || buf[i] == '\n') buf[i] = ' ';
  line.add("\t").add_flat(kind).add("\t").add_flat(text);
  buf[line.len++] = '\n';
  // O_NONBLOCK: a FIFO put in the file's place must not hang the program (and is refused below).
  const int fd = open(g_report_path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd >= 0) {
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
      const ssize_t w = write(fd, buf, line.len);
      (void)w;
    }
    close(fd);
  }
  errno = saved_errno;
}

void report_problem(const char* kind, const char* text, const char* stderr_tail) {
  report_to_run(kind, text);
  if (g_quiet) return;
  char buf[4096 + 512];
  Text line(buf, sizeof buf - 1);
  line.add("dltrace: ").add_flat(text).add_flat(stderr_tail);
  buf[line.len++] = '\n';
  write_stderr(buf, line.len);
}

}  // namespace dltrace::preload

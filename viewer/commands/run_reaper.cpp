#include "commands/run_reaper.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <optional>

#include "dltrace/format.h"

namespace dltrace::viewer {
namespace {

// A trace's header, read once, and the pid the reaped statuses are matched against.
struct TraceHead {
  std::string path;
  pid_t pid = 0;
  uint64_t start_ns = 0;
};

std::optional<format::FileHeader> read_header(int fd) {
  format::FileHeader h{};
  if (::pread(fd, &h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return std::nullopt;
  if (std::memcmp(h.magic, format::kMagic, sizeof h.magic) != 0 ||
      h.header_size != format::kHeaderSize)
    return std::nullopt;
  return h;
}

// Opens a trace for writing its header: a regular file, never through a symlink, never blocking.
int open_trace_file(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return -1;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The pid `dltrace run` knows the process by: the outer pid when the recorder saw it (inside a
// PID namespace the header's own pid is the namespace's), else the header pid.
pid_t reaped_pid_of(const format::FileHeader& h) {
  return h.outer_pid != 0 ? h.outer_pid : h.pid;
}

bool write_end(const std::string& path, pid_t pid, const ObservedEnd& end) {
  const int fd = open_trace_file(path, O_RDWR);
  if (fd < 0) return false;
  bool written = false;
  // Read again: only a trace still without an end, of the same process, is written.
  if (auto h = read_header(fd); h && reaped_pid_of(*h) == pid &&
                                h->end_kind == static_cast<uint32_t>(format::EndKind::kRunning)) {
    const int status = end.wait_status;
    const bool signaled = WIFSIGNALED(status);
    const int32_t code = signaled ? WTERMSIG(status) : WEXITSTATUS(status);
    const uint32_t kind =
        static_cast<uint32_t>(signaled ? format::EndKind::kSignal : format::EndKind::kExit);
    const uint32_t via = format::kEndViaObserved;
    auto put = [fd](const auto& value, size_t offset) {
      return ::pwrite(fd, &value, sizeof value, static_cast<off_t>(offset)) ==
             static_cast<ssize_t>(sizeof value);
    };
    // end_kind last: readers take it as the commit of the others.
    written = put(code, offsetof(format::FileHeader, end_code)) &&
              put(end.monotonic_ns, offsetof(format::FileHeader, end_monotonic_ns)) &&
              put(via, offsetof(format::FileHeader, end_via)) &&
              put(kind, offsetof(format::FileHeader, end_kind));
  }
  ::close(fd);
  return written;
}

}  // namespace

bool become_subreaper() {
  return ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0;
}

uint64_t monotonic_now_ns() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);  // one clock for the whole system: the traces' too
  return uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec);
}

bool wait_for_child(pid_t child, int* wait_status, std::vector<ObservedEnd>* others) {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (pid == child) {
      *wait_status = status;
      return true;
    }
    others->push_back({pid, status, monotonic_now_ns()});
  }
}

std::vector<ObservedEnd> reap_orphans(std::chrono::milliseconds grace) {
  std::vector<ObservedEnd> out;
  const uint64_t deadline = monotonic_now_ns() + uint64_t(grace.count()) * 1000000u;
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      out.push_back({pid, status, monotonic_now_ns()});
      continue;
    }
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) break;  // ECHILD: no children left
    // Children remain, none has ended yet.
    if (monotonic_now_ns() >= deadline) break;
    const timespec pause{0, 2 * 1000 * 1000};
    ::nanosleep(&pause, nullptr);
  }
  return out;
}

std::vector<std::string> record_observed_ends(const std::vector<std::string>& traces,
                                              const std::vector<ObservedEnd>& ends) {
  std::vector<TraceHead> heads;
  for (const std::string& path : traces) {
    const int fd = open_trace_file(path, O_RDONLY);
    if (fd < 0) continue;
    if (auto h = read_header(fd)) heads.push_back({path, reaped_pid_of(*h), h->start_monotonic_ns});
    ::close(fd);
  }
  std::vector<std::string> written;
  for (const ObservedEnd& end : ends) {
    // The process's last image: the most recent trace of the pid that started before it ended.
    const TraceHead* last = nullptr;
    for (const TraceHead& t : heads) {
      if (t.pid != end.pid || t.start_ns > end.monotonic_ns) continue;
      if (last == nullptr || t.start_ns >= last->start_ns) last = &t;
    }
    if (last != nullptr && write_end(last->path, end.pid, end)) written.push_back(last->path);
  }
  return written;
}

}  // namespace dltrace::viewer

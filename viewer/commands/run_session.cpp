#include "commands/run_session.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "dltrace/format.h"

namespace dltrace::viewer {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxReportBytes = 1 << 20;
constexpr size_t kMaxPrinted = 20;
constexpr const char* kRecordingTo = "; recording to ";
constexpr const char* kInstead = " instead";

uint64_t random_nonzero() {
  uint64_t v = 0;
  while (v == 0) {
    if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) v = 0;
  }
  return v;
}

}  // namespace

std::string RunReportEntry::fallback_path() const {
  const size_t at = text.rfind(kRecordingTo);
  if (kind != "fallback" || at == std::string::npos || !text.ends_with(kInstead)) return "";
  const size_t from = at + std::strlen(kRecordingTo);
  const size_t to = text.size() - std::strlen(kInstead);
  return to > from ? text.substr(from, to - from) : "";
}

RunSession::RunSession() {
  token_ = random_nonzero();
  ::setenv("DLTRACE_RUN_TOKEN", fmt::format("{:016x}", token_).c_str(), 1);
  ::unsetenv("DLTRACE_RUN_REPORT");  // an outer run's report is not ours to fill
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && tmp[0] == '/' ? tmp : "/tmp") + "/dltrace-run.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) return;
  dir_ = pattern;
  // Searchable but not listable, and the report's name is random: the processes of the run may
  // change user (su, daemons dropping privileges) and must still be able to append their line,
  // while nobody who does not have the path (from the environment of a process of the run) can.
  const std::string report = fmt::format("{}/report.{:016x}", dir_, random_nonzero());
  const int fd = ::open(report.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (::chmod(dir_.c_str(), 0711) != 0 || fd < 0 || ::fchmod(fd, 0622) != 0) {
    if (fd >= 0) {
      ::close(fd);
      ::unlink(report.c_str());
    }
    ::rmdir(dir_.c_str());
    dir_.clear();
    return;
  }
  ::close(fd);
  report_ = report;
  ::setenv("DLTRACE_RUN_REPORT", report_.c_str(), 1);
}

RunSession::~RunSession() {
  if (!report_.empty()) ::unlink(report_.c_str());
  if (!dir_.empty()) ::rmdir(dir_.c_str());
}

bool RunSession::owns(const std::string& path) const {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  format::FileHeader h{};
  const bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                  ::pread(fd, &h, sizeof h, 0) == static_cast<ssize_t>(sizeof h) &&
                  std::memcmp(h.magic, format::kMagic, sizeof h.magic) == 0 &&
                  h.run_token == token_;
  ::close(fd);
  return ok;
}

std::vector<RunReportEntry> RunSession::entries() const {
  std::vector<RunReportEntry> out;
  if (report_.empty()) return out;
  const int fd = ::open(report_.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return out;
  std::string data(kMaxReportBytes, '\0');
  size_t have = 0;
  while (have < data.size()) {
    const ssize_t n = ::read(fd, data.data() + have, data.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += static_cast<size_t>(n);
  }
  ::close(fd);
  data.resize(have);
  size_t pos = 0;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos) break;  // a partial last line (cut off by the bound)
    const std::string line = data.substr(pos, end - pos);
    pos = end + 1;
    const size_t t1 = line.find('\t');
    const size_t t2 = t1 == std::string::npos ? t1 : line.find('\t', t1 + 1);
    const size_t t3 = t2 == std::string::npos ? t2 : line.find('\t', t2 + 1);
    if (t3 == std::string::npos) continue;
    RunReportEntry e;
    e.pid = static_cast<pid_t>(std::strtol(line.substr(0, t1).c_str(), nullptr, 10));
    e.exe = line.substr(t1 + 1, t2 - t1 - 1);
    e.kind = line.substr(t2 + 1, t3 - t2 - 1);
    e.text = line.substr(t3 + 1);
    out.push_back(std::move(e));
  }
  return out;
}

void print_run_report(const std::vector<RunReportEntry>& entries) {
  size_t printed = 0;
  for (const auto& e : entries) {
    if (printed == kMaxPrinted) {
      std::fprintf(stderr, "dltrace: ... and %zu more processes not traced or traced elsewhere\n",
                   entries.size() - printed);
      break;
    }
    ++printed;
    const std::string who = fmt::format("pid {} ({})", e.pid, e.exe);
    if (e.kind == "not-traced") {
      std::fprintf(stderr, "dltrace: not traced: %s: %s\n", who.c_str(), e.text.c_str());
    } else if (e.kind == "fallback" && !e.fallback_path().empty()) {
      const std::string why = e.text.substr(0, e.text.rfind(kRecordingTo));
      std::fprintf(stderr, "dltrace: traced elsewhere: %s wrote %s (%s)\n", who.c_str(),
                   e.fallback_path().c_str(), why.c_str());
    } else if (e.kind == "stopped") {
      std::fprintf(stderr, "dltrace: stopped recording: %s: %s\n", who.c_str(), e.text.c_str());
    } else {
      std::fprintf(stderr, "dltrace: %s: %s: %s\n", e.kind.c_str(), who.c_str(), e.text.c_str());
    }
  }
}

void create_private_directories(const std::string& dir) {
  fs::path path;
  for (const auto& part : fs::path(dir).lexically_normal()) {
    path /= part;
    if (part.empty() || part == "/" || part == "." || part == "..") continue;
    if (::mkdir(path.c_str(), 0700) != 0) continue;
    // The umask may have taken bits. fchmod on what we opened without following a symlink: a
    // directory swapped for one (not possible in a sticky /tmp, but elsewhere) changes nothing.
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      struct stat st {};
      if (::fstat(fd, &st) == 0 && st.st_uid == ::geteuid()) ::fchmod(fd, 0700);
      ::close(fd);
    }
  }
}

}  // namespace dltrace::viewer

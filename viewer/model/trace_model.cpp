#include "model/trace_model.h"

#include <fmt/format.h>
#include <signal.h>
#include <string.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "common/version.h"
#include "util/status.h"

namespace dltrace::viewer {

std::optional<std::string> other_version_note(const std::string& path, const ProcessInfo& p) {
  if (p.recorder_version == kBuildVersionTag) return std::nullopt;
  if (p.recorder_version.empty()) {
    return fmt::format(
        "{} was recorded by an older dltrace, which did not record its version; "
        "this is dltrace {}",
        path, kBuildVersionTag);
  }
  return fmt::format("{} was recorded by dltrace {}; this is dltrace {}", path, p.recorder_version,
                     kBuildVersionTag);
}

absl::StatusOr<std::unique_ptr<TraceReader>> open_trace(const std::string& path,
                                                        bool note_version) {
  std::string error;
  auto reader = TraceReader::open(path, &error);
  if (!reader) {
    return TraceError(fmt::format("{}: {}", path, error.empty() ? "cannot read the trace" : error));
  }
  if (note_version) {
    if (auto note = other_version_note(path, reader->process()))
      std::fprintf(stderr, "dltrace: note: %s\n", note->c_str());
  }
  return reader;
}

std::string_view call_name(uint16_t call) {
  const char* name = format::call_name(call);
  return name != nullptr ? name : "unknown";
}

std::string_view cause_name(format::ObjectCause cause) {
  switch (cause) {
    case format::ObjectCause::kStartup:
      return "startup";
    case format::ObjectCause::kNeeded:
      return "needed";
    case format::ObjectCause::kDlopen:
      return "dlopen";
    case format::ObjectCause::kPreload:
      return "preload";
  }
  return "unknown";
}

std::string_view end_name(format::EndKind end) {
  switch (end) {
    case format::EndKind::kExit:
      return "exit";
    case format::EndKind::kSignal:
      return "signal";
    case format::EndKind::kExec:
      return "exec";
    case format::EndKind::kRunning:
      break;
  }
  return "unknown";
}

std::optional<std::string_view> end_via_name(uint32_t via) {
  switch (via) {
    case format::kEndViaExit:
      return "exit";
    case format::kEndViaUnderscoreExit:
      return "_exit";
    case format::kEndViaFatalSignal:
      return "signal-handler";
    case format::kEndViaExec:
      return "exec";
    case format::kEndViaObserved:
      return "observed";
    default:
      break;
  }
  return std::nullopt;
}

std::string signal_text(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? fmt::format("signal {} (SIG{})", sig, abbrev) : fmt::format("signal {}", sig);
}

namespace {

std::string with_when(std::string text, std::string_view when) {
  if (!when.empty()) text.append(" ").append(when);
  return text;
}

// What follows the end itself: who saw it, when that is not the recorder's usual way.
std::string_view via_suffix(const ProcessInfo& p, bool brief) {
  if (p.end_via == format::kEndViaObserved)
    return brief ? ", observed by dltrace run" : " (observed by dltrace run)";
  if (p.end == format::EndKind::kExit && p.end_via == format::kEndViaUnderscoreExit)
    return " via _exit";
  return {};
}

}  // namespace

std::string end_text(const ProcessInfo& p, std::string_view when) {
  std::string text;
  switch (p.end) {
    case format::EndKind::kExit:
      text = with_when(fmt::format("exited with status {}", p.end_code), when);
      break;
    case format::EndKind::kSignal:
      text = with_when(fmt::format("killed by {}", signal_text(p.end_code)), when);
      break;
    case format::EndKind::kExec:
      text = with_when(
          fmt::format("exec'ed {}", p.exec_target.empty() ? "another program" : p.exec_target),
          when);
      break;
    case format::EndKind::kRunning:
      return std::string(kNoRecordedEnd);
  }
  return text.append(via_suffix(p, false));
}

std::string outer_pids_text(const ProcessInfo& p) {
  if (p.outer_pid == 0 || (p.outer_pid == p.pid && p.outer_ppid == p.ppid)) return {};
  return fmt::format(", outside its PID namespace {} (parent {})", p.outer_pid, p.outer_ppid);
}

std::string end_summary(const ProcessInfo& p) {
  std::string text;
  switch (p.end) {
    case format::EndKind::kExit:
      text = fmt::format("exit {}", p.end_code);
      break;
    case format::EndKind::kSignal:
      text = fmt::format("killed by {}", signal_text(p.end_code));
      break;
    case format::EndKind::kExec:
      text = fmt::format("exec → {}", p.exec_target.empty() ? "?" : basename_of(p.exec_target));
      break;
    case format::EndKind::kRunning:
      return std::string(kNoRecordedEnd);
  }
  return text.append(via_suffix(p, true));
}

std::string_view basename_of(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

std::string object_name(const ObjectRecord& o) {
  if (!o.path.empty()) return std::string(basename_of(o.path));
  if (!o.soname.empty()) return o.soname;
  if (o.flags & format::kObjectVdso) return "[vdso]";
  return fmt::format("#{}", o.id);
}

bool is_system_path(std::string_view path) {
  for (std::string_view dir : {"/lib/", "/usr/lib/", "/lib64/", "/usr/lib64/", "/lib32/",
                               "/usr/lib32/", "/libx32/", "/usr/libx32/"}) {
    if (path.starts_with(dir)) return true;
  }
  const std::string_view base = basename_of(path);
  return base.starts_with("ld-linux") || base.starts_with("linux-vdso") ||
         base.starts_with("linux-gate") || base.starts_with("ld64.so");
}

std::vector<std::string> recovery_sentences(const TraceReader& reader) {
  const Recovery& r = reader.recovery();
  std::vector<std::string> out;
  // The reader writes one note per problem; prefer its wording (it knows the details) and only
  // fall back to the counters when it wrote none.
  if (!r.notes.empty()) {
    for (std::string note : r.notes) {
      if (!note.empty()) {
        if (note[0] >= 'a' && note[0] <= 'z') note[0] = static_cast<char>(note[0] - 'a' + 'A');
        if (note.back() != '.') note += '.';
        out.push_back(std::move(note));
      }
    }
    return out;
  }
  if (r.truncated) {
    out.push_back(
        "The file is truncated: it is shorter than its header says; events and "
        "catalog entries past the end were lost.");
  }
  if (r.torn_events) {
    out.push_back(
        fmt::format("{} event(s) were torn (started but never committed, or failing "
                    "their checksum) and were skipped.",
                    r.torn_events));
  }
  if (r.dropped_events) {
    out.push_back(
        fmt::format("{} of {} event(s) are not readable (overwritten when the ring "
                    "buffer wrapped, or torn); raise --buffer-size to keep them.",
                    r.dropped_events, reader.last_seq()));
  }
  if (r.corrupt_catalog) {
    out.push_back(
        fmt::format("{} byte(s) of the catalog (strings, objects, stacks) did not "
                    "check out and were skipped.",
                    r.corrupt_catalog));
  }
  if (r.catalog_dropped) {
    out.push_back(
        fmt::format("{} catalog entries did not fit in the buffer and were not "
                    "recorded; names or stacks may be missing.",
                    r.catalog_dropped));
  }
  return out;
}

TraceModel::TraceModel(const TraceReader& reader) : reader_(reader) {
  const format::FileHeader& h = reader.header();
  if (h.clock_kind == format::kClockTsc) {
    tsc_ = true;
    if (h.tsc_latest > h.tsc_base && h.tsc_latest_ns > h.tsc_base_ns) {
      ns_per_tick_ = static_cast<long double>(h.tsc_latest_ns - h.tsc_base_ns) /
                     static_cast<long double>(h.tsc_latest - h.tsc_base);
    } else if (h.tsc_hz_estimate != 0) {
      ns_per_tick_ = 1e9L / static_cast<long double>(h.tsc_hz_estimate);
    }
  }
  for (const auto& o : reader.objects()) {
    if (o.opened_by != 0) new_objects_[o.opened_by].push_back(o.id);
    if (o.unload_seq) unloaded_by_[*o.unload_seq].push_back(o.id);
    by_load_.push_back(&o);
  }
  std::ranges::stable_sort(by_load_, {}, &ObjectRecord::load_seq);
}

std::span<const uint32_t> TraceModel::new_objects(uint64_t seq) const {
  auto it = new_objects_.find(seq);
  if (it == new_objects_.end()) return {};
  return it->second;
}

std::span<const uint32_t> TraceModel::unloaded_by(uint64_t seq) const {
  auto it = unloaded_by_.find(seq);
  if (it == unloaded_by_.end()) return {};
  return it->second;
}

uint64_t TraceModel::to_ns(uint64_t value, bool absolute) const {
  if (!tsc_) return value;
  const format::FileHeader& h = reader_.header();
  if (!absolute) return static_cast<uint64_t>(static_cast<long double>(value) * ns_per_tick_);
  const long double delta =
      (static_cast<long double>(value) - static_cast<long double>(h.tsc_base)) * ns_per_tick_;
  const long double ns = static_cast<long double>(h.tsc_base_ns) + delta;
  return ns <= 0 ? 0 : static_cast<uint64_t>(ns);
}

std::string_view TraceModel::path_of(const ObjectRecord& o) const {
  if (o.path.empty() && !(o.flags & format::kObjectVdso)) return reader_.process().exe;
  return o.path;
}

std::string TraceModel::absolute_path(std::string_view path) const {
  if (path.empty() || path.front() == '/') return std::string(path);
  const std::string& cwd = reader_.process().cwd;
  return std::filesystem::path(cwd.empty() ? "." : cwd).append(path).lexically_normal().string();
}

std::string TraceModel::name_of(const ObjectRecord& o) const {
  const std::string_view path = path_of(o);
  return path.empty() ? object_name(o) : std::string(basename_of(path));
}

bool TraceModel::is_main_program(const ObjectRecord& o) const {
  return o.cause == format::ObjectCause::kStartup && !(o.flags & format::kObjectVdso) &&
         (o.path.empty() || o.path == reader_.process().exe);
}

bool TraceModel::is_system_object(const ObjectRecord& o) const {
  return !is_main_program(o) && o.cause != format::ObjectCause::kDlopen &&
         ((o.flags & format::kObjectVdso) || is_system_path(path_of(o)));
}

double TraceModel::relative_ms(uint64_t time_ns) const {
  const uint64_t start = reader_.process().start_monotonic_ns;
  const double delta = time_ns >= start ? static_cast<double>(time_ns - start)
                                        : -static_cast<double>(start - time_ns);
  return delta / 1e6;
}

const ObjectRecord* TraceModel::object_for(uint64_t address, uint64_t seq, uint32_t hint) const {
  if (hint != format::kNoId) {
    if (const ObjectRecord* o = reader_.object(hint)) return o;
  }
  return address ? reader_.object_at(address, seq) : nullptr;
}

}  // namespace dltrace::viewer

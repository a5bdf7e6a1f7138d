#include "commands/run_summary.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <string_view>

#include "analysis/outcome.h"
#include "commands/explain_command.h"
#include "model/trace_model.h"

namespace dltrace::viewer {
namespace {

constexpr size_t kListed = 8;     // trace files listed one per line
constexpr size_t kNamed = 5;      // failed processes named in the closing line
constexpr size_t kExplained = 5;  // traces `--explain` prints findings for

bool has_failed_call(const TraceReader& reader) {
  bool failed = false;
  reader.for_each_event([&](const format::EventSlot& e) {
    failed = !(e.bits & format::kEventOk) && (is_open_call(e.call) || is_sym_call(e.call));
    return !failed;
  });
  return failed;
}

std::string plural(uint64_t n, std::string_view word) {
  return fmt::format("{} {}{}", n, word, n == 1 ? "" : "s");
}

std::string who(const TracedProcess& p) {
  return fmt::format("{} (pid {})", p.exe.empty() ? "?" : p.exe, p.pid);
}

std::string counts(const TracedProcess& p) {
  if (!p.readable) return "unreadable";
  std::string s = p.failures ? plural(p.failures, "failed call") : std::string();
  if (p.probes) s += fmt::format("{}{}", s.empty() ? "" : ", ", plural(p.probes, "probe"));
  return s;
}

}  // namespace

std::vector<TracedProcess> summarize_traces(const std::vector<std::string>& paths) {
  std::vector<TracedProcess> out;
  for (const std::string& path : paths) {
    TracedProcess p;
    p.path = path;
    auto reader = open_trace(path, /*note_version=*/false);  // written by our own recorder
    if (!reader.ok()) {
      p.readable = false;
      out.push_back(p);
      continue;
    }
    const ProcessInfo& info = (*reader)->process();
    p.pid = info.pid;
    p.exe = std::filesystem::path(info.exe).filename().string();
    if (has_failed_call(**reader)) {
      const OutcomeCounts c = count_outcomes(**reader);
      p.failures = c.failures;
      p.probes = c.probes;
    }
    out.push_back(p);
  }
  return out;
}

void print_explanations(const std::vector<TracedProcess>& processes, bool color, std::FILE* out) {
  size_t explained = 0;
  for (const TracedProcess& p : processes) {
    if (p.failures == 0) continue;
    if (++explained > kExplained) break;
    auto reader = open_trace(p.path, /*note_version=*/false);
    if (!reader.ok()) continue;
    fmt::print(out, "\ndltrace: explain {}\n", p.path);
    ExplainOptions options;
    options.trace = p.path;
    options.color = color;
    (void)explain_trace_to(**reader, options, out);  // its own problems count is not ours
  }
  if (explained) fmt::print(out, "\n");
}

void print_run_summary(const std::vector<TracedProcess>& processes, bool explained,
                       std::FILE* out) {
  if (processes.empty()) return;
  std::vector<const TracedProcess*> failed;
  for (const TracedProcess& p : processes)
    if (p.failures) failed.push_back(&p);

  if (processes.size() > 1) {
    // The run's own process first, then those with failed calls, then the others.
    std::vector<const TracedProcess*> rows;
    rows.push_back(&processes.front());
    for (const TracedProcess* p : failed)
      if (p != rows.front()) rows.push_back(p);
    for (const TracedProcess& p : processes)
      if (std::find(rows.begin(), rows.end(), &p) == rows.end()) rows.push_back(&p);
    size_t width = 0;
    for (size_t i = 0; i < rows.size() && i < kListed; ++i)
      width = std::max(width, rows[i]->path.size());
    fmt::print(out, "dltrace: {} trace files written:\n", processes.size());
    for (size_t i = 0; i < rows.size() && i < kListed; ++i) {
      const std::string c = counts(*rows[i]);
      fmt::print(out, "dltrace:   {:<{}}  {}{}{}\n", rows[i]->path, width, who(*rows[i]),
                 c.empty() ? "" : ": ", c);
    }
    if (rows.size() > kListed)
      fmt::print(out, "dltrace:   ... and {} more\n", rows.size() - kListed);
  }

  if (failed.empty()) {
    const TracedProcess& main = processes.front();
    const std::string probes =
        main.probes && processes.size() == 1
            ? fmt::format(" ({}: misses the program expected)", plural(main.probes, "probe"))
            : "";
    fmt::print(out, "dltrace: no failed calls{}; view the trace with: dltrace show {}\n", probes,
               main.path);
    return;
  }
  if (processes.size() == 1) {
    fmt::print(out, "dltrace: {} in {}\n", counts(*failed.front()), who(*failed.front()));
  } else {
    std::string names;
    for (size_t i = 0; i < failed.size() && i < kNamed; ++i)
      names += (i ? ", " : "") + who(*failed[i]);
    if (failed.size() > kNamed) names += fmt::format(" and {} more", failed.size() - kNamed);
    fmt::print(out, "dltrace: failed calls in {} of {} processes: {}\n", failed.size(),
               processes.size(), names);
  }
  if (!explained || failed.size() > kExplained)
    fmt::print(out, "dltrace: see why with: dltrace explain {}\n", failed.front()->path);
}

}  // namespace dltrace::viewer

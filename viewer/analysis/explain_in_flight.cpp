// A dlopen/dlmopen the process never returned from (model/in_flight.h): how the process ended,
// how far the load had got, and what the files ld.so would map look like on disk now — a file
// cut short after its headers is mapped by ld.so and kills the process with SIGBUS when touched.
#include <fmt/format.h>

#include <cctype>

#include "analysis/explain.h"
#include "analysis/file_kind.h"
#include "analysis/missing_dependency.h"
#include "model/in_flight.h"

namespace dltrace::viewer {
namespace {

constexpr size_t kMaxFilesChecked = 256;

Severity severity_of(const ProcessInfo& p) {
  switch (p.end) {
    case format::EndKind::kSignal:
      return Severity::kError;
    case format::EndKind::kExit:
      return p.end_code != 0 ? Severity::kError : Severity::kWarning;
    case format::EndKind::kExec:
      return Severity::kInfo;  // a constructor that exec's: unusual, not a failure
    case format::EndKind::kRunning:
      break;
  }
  return Severity::kWarning;  // no recorded end: it may still be running
}

std::string capitalized(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
  return text;
}

}  // namespace

void explain_in_flight(ExplainContext& ctx, const format::EventSlot& e, std::vector<Finding>& out) {
  const TraceModel& m = ctx.model();
  const ProcessInfo& p = ctx.reader().process();
  Finding f;
  f.kind = "died-in-call";
  f.severity = severity_of(p);
  f.seq = e.seq;
  f.title = capitalized(in_flight_text(m, e));
  const std::string requested(ctx.reader().string(e.name));
  f.fact("call", call_name(e.call).data());
  f.fact("file", requested);
  f.fact("end", std::string(end_name(p.end)));
  if (const double ms = ms_to_end(m, e); ms >= 0) f.fact("ms_inside", fmt::format("{:.3f}", ms));
  f.evidence.push_back(fmt::format("the call: {} from {}, started at {:.3f} ms; it never returned",
                                   ctx.call_text(e), ctx.call_site(e),
                                   m.relative_ms(m.time_ns(e))));
  if (std::string py = ctx.python_line(e); !py.empty())
    f.evidence.push_back(fmt::format("Python line: {}", py));
  for (const auto& line : ctx.stack_lines(e)) f.evidence.push_back("    at " + line);
  if (const auto added = m.new_objects(e.seq); !added.empty()) {
    std::string names;
    for (uint32_t id : added)
      if (const ObjectRecord* o = ctx.reader().object(id))
        names.append(names.empty() ? "" : ", ").append(m.name_of(*o));
    f.evidence.push_back(
        fmt::format("objects this call had added to the loader's list before the end: {} (their "
                    "constructors may have started)",
                    names));
  }

  // The files ld.so would map for this call, as they are on disk now.
  const ObjectRecord* caller = ctx.reader().object(e.caller_object);
  const uint16_t machine = trace_machine(m, ctx.elf());
  std::vector<std::string> checked;
  std::optional<std::pair<std::string, FileKind>> cut_short;
  DlopenWalkVisitor visit;
  visit.mapped = [&](const Loader& file) {
    FileKind k = classify_file(file.path, machine);
    checked.push_back(file.path);
    if (k.kind == FileKind::Kind::kTruncated) {
      cut_short.emplace(file.path, std::move(k));
      return false;
    }
    return checked.size() < kMaxFilesChecked;
  };
  const int64_t lmid = e.call == static_cast<uint16_t>(format::CallKind::kDlmopen) ? e.lmid : 0;
  if (!requested.empty()) walk_dlopen_on_disk(requested, caller, e.seq, lmid, m, ctx.elf(), visit);

  if (cut_short) {
    const auto& [path, kind] = *cut_short;
    f.fact("cut_short", path);
    f.fact("file_kind", file_kind_name(kind.kind));
    f.evidence.push_back(fmt::format("on disk now, {} is {}", path, kind.what));
    if (path != checked.front())
      f.evidence.push_back(fmt::format("ld.so maps it as a dependency of {} (DT_NEEDED)",
                                       basename_of(checked.front())));
    f.fixes.push_back({fmt::format("Replace {} with a complete copy: reinstall the package it "
                                   "comes from, or rebuild it. Install a new copy with a rename "
                                   "(`install`, `mv`), never by writing over a file that running "
                                   "programs may be mapping.",
                                   path),
                       ""});
  } else if (!checked.empty()) {
    f.evidence.push_back(fmt::format(
        "the {} file{} ld.so would map for this call look{} complete on disk now ({}{}): the "
        "process ended in the loader or in a constructor; the stack above is where it was called",
        checked.size(), checked.size() == 1 ? "" : "s", checked.size() == 1 ? "s" : "",
        basename_of(checked.front()), checked.size() > 1 ? ", ..." : ""));
  } else {
    f.evidence.push_back(
        fmt::format("no file of this name is on disk now where ld.so would look for it"));
  }
  out.push_back(std::move(f));
}

}  // namespace dltrace::viewer

#include "analysis/explain.h"

#include <algorithm>
#include <filesystem>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "analysis/python_imports.h"
#include "common/dlopen_flags.h"
#include "fmt/format.h"
#include "model/in_flight.h"

namespace dltrace::viewer {
namespace {

// Merging identical failures keeps a loop of 10,000 failed dlopens to one finding.
constexpr size_t kMaxDistinctFailures = 2000;

std::string fact_of(const Finding& f, std::string_view key) {
  for (const auto& [k, v] : f.facts)
    if (k == key) return v;
  return {};
}

// Several loads broken by one RTLD_LOCAL group (an embedded interpreter's _json, _decimal,
// ...) are one problem with one fix: the later ones become a line of the first.
void merge_same_cause(std::vector<Finding>& findings) {
  absl::flat_hash_map<std::string, size_t> first_by_cause;
  std::vector<Finding> kept;
  kept.reserve(findings.size());
  for (Finding& f : findings) {
    std::string cause = fact_of(f, "opened_by");
    if (f.kind != "undefined-symbol-local-scope" || cause.empty()) {
      kept.push_back(std::move(f));
      continue;
    }
    auto [it, inserted] = first_by_cause.try_emplace(cause, kept.size());
    if (inserted) {
      kept.push_back(std::move(f));
      continue;
    }
    Finding& first = kept[it->second];
    first.evidence.push_back(fmt::format("the same cause also broke #{}: {} needing {}", f.seq,
                                         basename_of(fact_of(f, "needed_by")),
                                         fact_of(f, "symbol")));
    first.repeats += 1 + f.repeats;
  }
  findings = std::move(kept);
}

// What the summary says after a probe's name: the convention, else the kind of evidence.
std::string probe_label(const Classification& c) {
  if (!c.convention.empty()) return std::string(c.convention);
  if (c.rule == "noload") return "RTLD_NOLOAD";
  if (c.rule == "obtained-later") return "found later";
  if (c.rule == "alternative") return "another library loaded instead";
  return "defined nowhere";
}

}  // namespace

ExplainContext::ExplainContext(const TraceModel& model, ElfCache& elf, const ScopeGraph& graph)
    : model_(model), elf_(elf), graph_(graph), symbolizer_(model.reader().process().exe) {}

std::string ExplainContext::call_site(const format::EventSlot& e) {
  const ObjectRecord* caller = reader().object(e.caller_object);
  if (!caller || !e.caller_ip) return "an unknown caller";
  std::string where = model_.name_of(*caller);
  const SymbolInfo& info = symbolizer_.lookup(*caller, e.caller_ip);
  if (info.function.empty()) return fmt::format("{}+{:#x}", where, e.caller_ip - caller->base);
  std::string text = fmt::format("{}()", info.function);
  if (!info.file.empty()) text += fmt::format(" at {}:{}", basename_of(info.file), info.line);
  return fmt::format("{} in {}", text, where);
}

std::string ExplainContext::python_line(const format::EventSlot& e) const {
  if (e.py_stack == format::kNoId) return {};
  // The statement that caused the call, past importlib's and ctypes' own frames (as tree and
  // stats attribute loads).
  PyAttribution where = attribute_python_stack(reader(), reader().py_stack(e.py_stack));
  return where.site ? py_line_text(*where.site) : std::string();
}

bool ExplainContext::python_ctypes_load(const format::EventSlot& e) const {
  if (e.py_stack == format::kNoId) return false;
  for (const auto& f : reader().py_stack(e.py_stack))
    if (reader().string(f.file).find("/ctypes/") != std::string_view::npos) return true;
  return false;
}

std::string ExplainContext::call_text(const format::EventSlot& e) const {
  std::string name(reader().string(e.name));
  switch (static_cast<format::CallKind>(e.call)) {
    case format::CallKind::kDlopen:
      return fmt::format("dlopen(\"{}\", {})", name, flags_to_string(e.flags));
    case format::CallKind::kDlmopen:
      return fmt::format("dlmopen({}, \"{}\", {})", e.lmid, name, flags_to_string(e.flags));
    case format::CallKind::kDlsym:
      return fmt::format("dlsym({}, \"{}\")",
                         e.handle == 0              ? "RTLD_DEFAULT"
                         : e.handle == uint64_t(-1) ? "RTLD_NEXT"
                                                    : "handle",
                         name);
    case format::CallKind::kDlvsym:
      return fmt::format("dlvsym(handle, \"{}\", \"{}\")", name, reader().string(e.version));
    case format::CallKind::kDlclose:
      return "dlclose(handle)";
  }
  return "an unknown call";
}

std::vector<std::string> ExplainContext::stack_lines(const format::EventSlot& e,
                                                     size_t max_frames) {
  std::vector<std::string> out;
  if (e.stack == format::kNoId) return out;
  for (uint64_t ip : reader().stack(e.stack)) {
    if (out.size() >= max_frames) break;
    const ObjectRecord* o = model_.object_for(ip, e.seq, format::kNoId);
    if (!o) {
      out.push_back(fmt::format("{:#x}", ip));
      continue;
    }
    if (o->flags & format::kObjectRecorder) continue;
    const SymbolInfo& info = symbolizer_.lookup(*o, ip);
    std::string line = info.function.empty()
                           ? fmt::format("{}+{:#x}", model_.name_of(*o), ip - o->base)
                           : fmt::format("{} in {}", info.function, model_.name_of(*o));
    if (!info.file.empty()) line += fmt::format(" ({}:{})", basename_of(info.file), info.line);
    out.push_back(std::move(line));
  }
  return out;
}

std::vector<const ObjectRecord*> ExplainContext::exporters(std::string_view symbol,
                                                           std::string_view version, uint64_t seq) {
  std::vector<const ObjectRecord*> out;
  for (const ObjectRecord* o : model_.objects_by_load()) {
    if (!o->alive_at(seq) || (o->flags & format::kObjectVdso)) continue;
    const ElfFile* f = file_of(*o);
    if (f && f->exported(symbol, version)) out.push_back(o);
  }
  return out;
}

const ObjectRecord* ExplainContext::object_by_path(std::string_view path, uint64_t seq) const {
  namespace fs = std::filesystem;
  const ObjectRecord* fallback = nullptr;
  std::string wanted = fs::path(path).lexically_normal().string();
  for (const ObjectRecord* o : model_.objects_by_load()) {
    std::string_view p = model_.path_of(*o);
    if (p != path && fs::path(p).lexically_normal().string() != wanted) continue;
    if (o->alive_at(seq)) return o;
    if (o->load_seq <= seq) fallback = o;
  }
  return fallback;
}

ExplainResult explain_trace(const TraceModel& model, ElfCache& elf, const ScopeGraph& graph) {
  OutcomeClassifier outcomes(model, elf);
  return explain_trace(model, elf, graph, outcomes);
}

ExplainResult explain_trace(const TraceModel& model, ElfCache& elf, const ScopeGraph& graph,
                            OutcomeClassifier& outcomes) {
  ExplainContext ctx(model, elf, graph);
  ExplainResult result;
  // (error text, call site object, caller ip, severity) -> index of the finding it merged into.
  absl::flat_hash_map<std::tuple<uint32_t, uint32_t, uint64_t, int>, size_t> seen_failures;
  // (error text, call site object, caller ip) -> index of the probe it merged into.
  absl::flat_hash_map<std::tuple<uint32_t, uint32_t, uint64_t>, size_t> seen_probes;
  // (name or pattern, label) -> index into probe_groups.
  absl::flat_hash_map<std::pair<std::string, std::string>, size_t> groups;
  size_t dropped = 0;
  size_t in_flight_calls = 0;
  model.reader().for_each_event([&](const format::EventSlot& e) {
    if (in_flight(e)) {
      if (is_open_call(e.call) && ++in_flight_calls <= 64)
        explain_in_flight(ctx, e, result.findings);
      return true;
    }
    if (!(e.bits & format::kEventOk) && !is_close_call(e.call)) {
      if (!is_open_call(e.call) && !is_sym_call(e.call)) return true;
      const Classification outcome = outcomes.classify(e);
      if (outcome.probe()) {
        ++result.probe_calls;
        std::string name = !outcome.pattern.empty() ? std::string(outcome.pattern)
                           : is_open_call(e.call)
                               ? std::string(basename_of(model.reader().string(e.name)))
                               : std::string(model.reader().string(e.name));
        auto [g, fresh] =
            groups.try_emplace({name, probe_label(outcome)}, result.probe_groups.size());
        if (fresh) result.probe_groups.push_back({name, probe_label(outcome), 0, e.seq});
        ++result.probe_groups[g->second].count;
        auto key = std::make_tuple(e.error, e.caller_object, e.caller_ip);
        if (auto it = seen_probes.find(key); it != seen_probes.end()) {
          ++result.probes[it->second].repeats;
        } else if (seen_probes.size() < kMaxDistinctFailures) {
          seen_probes.emplace(key, result.probes.size());
          result.probes.push_back(probe_finding(ctx, e, outcome));
        }
        return true;
      }
      ++result.failure_calls;
      auto key = std::make_tuple(e.error, e.caller_object, e.caller_ip,
                                 static_cast<int>(outcome.severity));
      if (auto it = seen_failures.find(key); it != seen_failures.end()) {
        ++result.findings[it->second].repeats;
        return true;
      }
      if (seen_failures.size() >= kMaxDistinctFailures) {
        ++dropped;
        return true;
      }
      size_t before = result.findings.size();
      explain_failed_call(ctx, e, outcome, result.findings);
      if (result.findings.size() > before) seen_failures.emplace(key, before);
      return true;
    }
    explain_call(ctx, e, result.findings);
    return true;
  });
  merge_same_cause(result.findings);
  explain_objects(ctx, result.findings);
  explain_copies(ctx, result.findings);
  explain_lazy_bindings(ctx, result.findings);
  if (dropped) {
    Finding f;
    f.kind = "more-failures";
    f.severity = Severity::kWarning;
    f.title = fmt::format("{} more distinct failures were not analysed (the first {} were)",
                          dropped, kMaxDistinctFailures);
    result.findings.push_back(std::move(f));
  }
  std::stable_sort(result.findings.begin(), result.findings.end(),
                   [](const Finding& a, const Finding& b) {
                     return std::tie(a.severity, a.seq) < std::tie(b.severity, b.seq);
                   });
  for (const auto& f : result.findings)
    if (f.severity != Severity::kInfo) ++result.problems;
  std::stable_sort(result.probe_groups.begin(), result.probe_groups.end(),
                   [](const ProbeGroup& a, const ProbeGroup& b) {
                     return a.count != b.count ? a.count > b.count : a.first_seq < b.first_seq;
                   });
  return result;
}

std::string probe_summary(const ExplainResult& result, size_t max_groups) {
  if (result.probe_calls == 0) return {};
  std::string text = fmt::format("{} optional lookup{} missed as {} expected: ", result.probe_calls,
                                 result.probe_calls == 1 ? "" : "s",
                                 result.probe_calls == 1 ? "its caller" : "their callers");
  for (size_t i = 0; i < result.probe_groups.size() && i < max_groups; ++i) {
    const ProbeGroup& g = result.probe_groups[i];
    text += fmt::format("{}{} \u00d7{} ({})", i ? ", " : "", g.name, g.count, g.label);
  }
  if (result.probe_groups.size() > max_groups)
    text += fmt::format(", and {} more name{}", result.probe_groups.size() - max_groups,
                        result.probe_groups.size() - max_groups == 1 ? "" : "s");
  return text;
}

}  // namespace dltrace::viewer

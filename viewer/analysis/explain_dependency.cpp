// A failed dlopen whose file was found but one of its dependencies was not: the needing chain,
// the search from the object that needs it, why the paths of the others did not help, and a
// fix applied to the right object.
#include <filesystem>

#include "analysis/explain.h"
#include "analysis/library_search.h"
#include "analysis/missing_dependency.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

namespace fs = std::filesystem;

std::string shell_word(std::string_view s) {
  if (s.find_first_of(" \t'\"$\\`!*?[]{}();&|<>~#") == std::string_view::npos)
    return std::string(s);
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// "$ORIGIN/../c" for a directory seen from an object's directory.
std::string origin_relative(const std::string& from_dir, const std::string& to_dir) {
  std::string rel = fs::path(to_dir).lexically_relative(from_dir).string();
  if (rel.empty() || rel == ".") return "$ORIGIN";
  return "$ORIGIN/" + rel;
}

}  // namespace

bool explain_missing_dependency(ExplainContext& ctx, const format::EventSlot& e,
                                std::string_view requested, std::string_view missing, Finding& f) {
  const TraceModel& m = ctx.model();
  const ObjectRecord* caller = ctx.reader().object(e.caller_object);
  const int64_t lmid = e.call == static_cast<uint16_t>(format::CallKind::kDlmopen) ? e.lmid
                       : caller                                                    ? caller->lmid
                                                                                   : 0;
  std::optional<MissingDependency> dep =
      find_missing_dependency(requested, missing, caller, e.seq, lmid, m, ctx.elf());
  if (!dep) return false;
  const Loader& needer = dep->needers.front();

  std::string chain;
  for (size_t i = dep->opened_files; i-- > 0;) chain += dep->needers[i].name + " → ";
  chain += dep->name + " (not found)";
  f.fact("needed_by", needer.path);
  f.fact("chain", chain);
  f.evidence.push_back(fmt::format("needed by: {}", chain));
  f.evidence.push_back(fmt::format(
      "the loader looked for {} as a DT_NEEDED entry of {}, in order:", dep->name, needer.name));
  for (const SearchStep& step : dep->search.steps) {
    if (step.candidate.empty())
      f.evidence.push_back(fmt::format("  {}: no entry for {}", step.source, dep->name));
    else
      f.evidence.push_back(fmt::format("  {}  ({}){}", step.candidate, step.source,
                                       step.exists ? " — exists now" : ""));
  }
  for (const std::string& note : dep->search.notes) f.evidence.push_back("note: " + note);
  // The trap: a RUNPATH further up the chain does not apply to this object's dependencies.
  for (size_t i = 1; i < dep->needers.size(); ++i) {
    const Loader& l = dep->needers[i];
    if (l.file && l.file->runpath)
      f.evidence.push_back(fmt::format(
          "note: {}'s DT_RUNPATH ({}) is not used for {}'s dependencies: ld.so uses only the "
          "RUNPATH of the object that needs a library, never the RUNPATH of the objects that "
          "loaded it",
          l.name, *l.file->runpath, needer.name));
  }

  std::vector<std::string> found = find_on_disk(dep->name, m);
  if (found.empty()) {
    f.evidence.push_back(
        fmt::format("no file named {} was found near the program, its libraries "
                    "or in the system directories",
                    dep->name));
    f.fixes.push_back(
        {fmt::format("install or build {}, then make it findable from {}", dep->name, needer.name),
         ""});
    return true;
  }
  for (const auto& path : found)
    f.evidence.push_back(fmt::format("a file with that name exists: {}", path));
  f.fact("candidate", found.front());
  const std::string dir = fs::path(found.front()).parent_path().string();
  const std::string needer_dir = fs::path(needer.path).parent_path().string();
  const std::string entry = origin_relative(needer_dir, dir);
  std::string runpath = needer.file && needer.file->runpath && !needer.file->runpath->empty()
                            ? *needer.file->runpath + ":" + entry
                            : entry;
  f.fixes.push_back(
      {fmt::format("give {} (the object whose DT_NEEDED names {}) a DT_RUNPATH entry {}: relink "
                   "it with -Wl,-rpath,{}, or edit the file: patchelf --set-rpath {} {}",
                   needer.name, dep->name, entry, shell_word(runpath), shell_word(runpath),
                   shell_word(needer.path)),
       ""});
  f.fixes.push_back({fmt::format("or run with LD_LIBRARY_PATH={}", shell_word(dir)), ""});
  return true;
}

}  // namespace dltrace::viewer

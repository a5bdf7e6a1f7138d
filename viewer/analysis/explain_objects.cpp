// Per-object and per-scope findings: one library loaded twice, one symbol defined by several
// objects of one scope (which one wins for whom), files that changed since the recording.
#include <elf.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "analysis/explain.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

namespace fs = std::filesystem;

bool overlap(const ObjectRecord& a, const ObjectRecord& b) {
  uint64_t a_end = a.unload_seq.value_or(UINT64_MAX), b_end = b.unload_seq.value_or(UINT64_MAX);
  return a.load_seq < b_end && b.load_seq < a_end;
}

std::string canonical(std::string_view path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::path(path), ec);
  return ec ? std::string(path) : p.string();
}

constexpr std::string_view kBuildIdKey = "build-id:";

void duplicate_libraries(ExplainContext& ctx, std::vector<Finding>& out) {
  const TraceModel& m = ctx.model();
  std::map<std::string, std::vector<const ObjectRecord*>> by_name;
  for (const ObjectRecord* o : m.objects_by_load()) {
    if (o->flags & (format::kObjectVdso)) continue;
    if (m.is_main_program(*o)) continue;
    by_name[o->soname.empty() ? std::string(basename_of(m.path_of(*o))) : o->soname].push_back(o);
    // The same file under another name (a copy renamed, without a soname): the same build-id.
    if (!o->build_id.empty()) by_name[std::string(kBuildIdKey) + o->build_id].push_back(o);
  }
  for (const auto& [name, objects] : by_name) {
    if (objects.size() < 2) continue;
    for (size_t i = 0; i < objects.size(); ++i) {
      for (size_t j = i + 1; j < objects.size(); ++j) {
        const ObjectRecord& a = *objects[i];
        const ObjectRecord& b = *objects[j];
        if (!overlap(a, b)) continue;  // reloaded after an unload: one at a time is fine
        const bool same_file = canonical(m.file_path(a)) == canonical(m.file_path(b));
        if (same_file && a.lmid == b.lmid) continue;
        if (!ctx.first_time(fmt::format("duplicate {} {}", a.id, b.id))) continue;
        const bool by_build_id = name.starts_with(kBuildIdKey);
        const std::string shown = by_build_id ? std::string(basename_of(m.path_of(a))) : name;
        Finding f;
        f.kind = "duplicate-library";
        f.severity = same_file ? Severity::kInfo : Severity::kWarning;
        f.seq = b.load_seq;
        f.fact("library", shown);
        if (by_build_id) f.fact("build_id", name.substr(kBuildIdKey.size()));
        f.fact("first", std::string(m.path_of(a)));
        f.fact("second", std::string(m.path_of(b)));
        if (same_file) {
          f.title = fmt::format("{} is loaded in namespaces {} and {}: two independent copies",
                                shown, a.lmid, b.lmid);
          f.evidence.push_back(
              "each namespace has its own copy with its own global state "
              "(that is what dlmopen is for)");
        } else {
          f.title = by_build_id ? fmt::format(
                                      "{} and {} are one library (the same build-id, {}) loaded "
                                      "twice",
                                      m.path_of(a), m.path_of(b), name.substr(kBuildIdKey.size()))
                                : fmt::format("{} is loaded twice, from {} and from {}", name,
                                              m.path_of(a), m.path_of(b));
          auto how = [&](const ObjectRecord& o) {
            if (o.cause == format::ObjectCause::kNeeded) {
              const ObjectRecord* p = ctx.reader().object(o.parent);
              return fmt::format("needed by {}", p ? m.name_of(*p) : "another object");
            }
            if (o.opened_by) {
              if (auto e = ctx.reader().event(o.opened_by))
                return fmt::format("{} from {}", ctx.call_text(*e), ctx.call_site(*e));
            }
            return std::string("at start-up");
          };
          f.evidence.push_back(
              fmt::format("#{}: {} ({}), namespace {}", a.load_seq, m.path_of(a), how(a), a.lmid));
          f.evidence.push_back(
              fmt::format("#{}: {} ({}), namespace {}", b.load_seq, m.path_of(b), how(b), b.lmid));
          f.evidence.push_back(
              "two copies have two sets of globals: state set through one is "
              "invisible to code bound to the other, and each symbol resolves "
              "to whichever copy comes first in the looking object's scope");
          f.fixes.push_back({fmt::format("load {} from one place only: open it by name (not by "
                                         "path) everywhere, or remove the stale copy",
                                         shown),
                             ""});
        }
        out.push_back(std::move(f));
      }
    }
  }
}

// glibc's own libraries share compatibility aliases (__finite in libc and libm, ...) by design.
bool is_glibc_part(const ObjectRecord& o) {
  static constexpr std::string_view kGlibc[] = {
      "libc.so.6",        "libm.so.6",   "libmvec.so.1",         "libpthread.so.0",
      "libdl.so.2",       "librt.so.1",  "libresolv.so.2",       "libutil.so.1",
      "libanl.so.1",      "libnsl.so.1", "ld-linux-x86-64.so.2", "libBrokenLocale.so.1",
      "libthread_db.so.1"};
  for (std::string_view name : kGlibc)
    if (o.soname == name) return true;
  return false;
}

// Names that every object may define by design, so two definitions are not a clash: _init and
// _fini (DT_INIT/DT_FINI code, called by address, never looked up), and the C++ ABI's vague
// linkage that is emitted in every object using it (typeinfo and its name, guard variables, TLS
// init/wrapper functions; inline functions and template instances are weak or unique already).
bool defined_everywhere_by_design(std::string_view name) {
  if (name == "_init" || name == "_fini") return true;
  for (std::string_view prefix : {"_ZTI", "_ZTS", "_ZGV", "_ZTH", "_ZTW"})
    if (name.starts_with(prefix)) return true;
  return false;
}

// Whether a reference to `symbol` binds to `winner`'s copy where `loser`'s was meant: `loser`
// itself refers to it through a dynamic relocation (its own uses go through the scope), or an
// object of the list that was linked against `loser` (not `winner`) refers to it. One sentence,
// or "" when no reference crosses (each copy is only used by its own object's code).
std::string crossing_reference(ExplainContext& ctx, const SearchList& list,
                               const ObjectRecord& winner, const ObjectRecord& loser,
                               std::string_view symbol) {
  const TraceModel& m = ctx.model();
  if (const ElfFile* lf = ctx.file_of(loser)) {
    for (const ElfSymbol* s : lf->dynamic_entries(symbol))
      if (s->defined && s->relocated)
        return fmt::format("{}'s own references to {} bind to {}'s copy", m.name_of(loser), symbol,
                           m.name_of(winner));
  }
  const ElfFile* wf = ctx.file_of(winner);
  const ElfFile* lf = ctx.file_of(loser);
  auto names = [](const ElfFile* f, const ObjectRecord& o) {
    std::vector<std::string> out{o.soname};
    if (f && !f->soname.empty()) out.push_back(f->soname);
    return out;
  };
  const auto winner_names = names(wf, winner), loser_names = names(lf, loser);
  auto needs_any = [](const ElfFile& f, const std::vector<std::string>& wanted) {
    for (const auto& n : f.needed)
      for (const auto& w : wanted)
        if (!w.empty() && n == w) return true;
    return false;
  };
  for (const auto& member : list.members) {
    if (member.object == winner.id || member.object == loser.id) continue;
    const ObjectRecord* o = ctx.reader().object(member.object);
    const ElfFile* f = o ? ctx.file_of(*o) : nullptr;
    if (!f || !needs_any(*f, loser_names) || needs_any(*f, winner_names)) continue;
    for (const ElfSymbol* s : f->dynamic_entries(symbol))
      if (!s->defined)
        return fmt::format("{} was linked against {}, but its reference to {} binds to {}'s copy",
                           m.name_of(*o), m.name_of(loser), symbol, m.name_of(winner));
  }
  return {};
}

// Strong definitions that compete in one search list; the first in the list wins.
void duplicate_symbols(ExplainContext& ctx, std::vector<Finding>& out) {
  const TraceModel& m = ctx.model();
  const auto& lists = ctx.graph().lists();
  for (size_t li = 0; li < lists.size(); ++li) {
    const SearchList& list = lists[li];
    absl::flat_hash_map<std::string, uint32_t> first;  // name@version -> winning object
    std::map<std::pair<uint32_t, uint32_t>, std::vector<std::string>> clashes;
    for (const auto& member : list.members) {
      const ObjectRecord* o = ctx.reader().object(member.object);
      if (!o || (o->flags & (format::kObjectVdso | format::kObjectRecorder))) continue;
      const ElfFile* file = ctx.file_of(*o);
      if (!file) continue;
      const bool exe = m.is_main_program(*o);
      for (const auto& s : file->dynamic_symbols) {
        if (!s.exported() || s.bind != STB_GLOBAL || !s.default_version) continue;
        if (s.type != STT_FUNC && s.type != STT_OBJECT && s.type != STT_GNU_IFUNC) continue;
        if (s.section == SHN_ABS || s.version == "GLIBC_PRIVATE")
          continue;  // version names, ld.so/libc internals
        if (defined_everywhere_by_design(s.name)) continue;
        // The executable's copies of library data (copy relocations) are meant to win.
        if (exe && s.type == STT_OBJECT) continue;
        std::string key = s.version.empty() ? s.name : s.name + "@" + s.version;
        auto [it, inserted] = first.try_emplace(key, o->id);
        if (inserted || it->second == o->id) continue;
        const ObjectRecord* winner = ctx.reader().object(it->second);
        if (winner && m.is_main_program(*winner) && s.type == STT_OBJECT) continue;
        clashes[{it->second, o->id}].push_back(s.name);
      }
    }
    for (const auto& [pair, symbols] : clashes) {
      const ObjectRecord* winner = ctx.reader().object(pair.first);
      const ObjectRecord* loser = ctx.reader().object(pair.second);
      if (!winner || !loser) continue;
      // Two namespaces' copies of one library are duplicate-library's business.
      if (winner->soname == loser->soname) continue;
      if (is_glibc_part(*winner) && is_glibc_part(*loser)) continue;
      if (!ctx.first_time(fmt::format("dupsym {} {}", pair.first, pair.second))) continue;
      Finding f;
      f.kind = "duplicate-symbol";
      std::string crossing;
      for (const auto& symbol : symbols)
        if (crossing = crossing_reference(ctx, list, *winner, *loser, symbol); !crossing.empty())
          break;
      // A shadowed copy that no reference crosses is only a note. A handful of clashes involving
      // a system library is usually deliberate (numpy's xerbla_ replaces BLAS's error handler);
      // many, or between the program's own libraries, is not.
      const bool deliberate_looking = symbols.size() <= 3 && (is_system_path(m.path_of(*winner)) ||
                                                              is_system_path(m.path_of(*loser)));
      f.severity = crossing.empty() || deliberate_looking ? Severity::kInfo : Severity::kWarning;
      f.seq = std::max(winner->load_seq, loser->load_seq);
      std::string scope = list.kind == SearchList::Kind::kGlobal
                              ? fmt::format("the global scope of namespace {}", list.lmid)
                              : fmt::format("the local scope of dlopen #{}", list.opened_by);
      std::string sample;
      for (size_t i = 0; i < symbols.size() && i < 5; ++i) sample += (i ? ", " : "") + symbols[i];
      if (symbols.size() > 5) sample += fmt::format(" and {} more", symbols.size() - 5);
      f.title = fmt::format("{} and {} both define {} in {}", m.name_of(*winner), m.name_of(*loser),
                            sample, scope);
      f.fact("symbol", symbols.front());
      f.fact("winner", std::string(m.path_of(*winner)));
      f.fact("loser", std::string(m.path_of(*loser)));
      f.evidence.push_back(fmt::format(
          "{} comes first in that scope, so every object whose lookups go through it binds to "
          "{}'s definitions — including {} itself, unless it was linked -Bsymbolic",
          m.name_of(*winner), m.name_of(*winner), m.name_of(*loser)));
      f.evidence.push_back(fmt::format("{} ({}) joined at #{}; {} ({}) at #{}", m.name_of(*winner),
                                       m.path_of(*winner), winner->load_seq, m.name_of(*loser),
                                       m.path_of(*loser), loser->load_seq));
      f.evidence.push_back(crossing.empty()
                               ? fmt::format("no reference crosses: {} refers to none of them "
                                             "through the scope, and no object linked against it "
                                             "does, so each copy is used only by its own code",
                                             m.name_of(*loser))
                               : "a reference crosses: " + crossing);
      // Only for a clash worth a warning: a note's copies may be deliberate, and changing what
      // a working program loads is not a fix.
      if (f.severity == Severity::kWarning)
        f.fixes.push_back({fmt::format("keep only one of them in that scope (open {} RTLD_LOCAL, "
                                       "or drop it), or rename/hide the clashing symbols",
                                       m.name_of(*loser)),
                           ""});
      out.push_back(std::move(f));
    }
  }
}

void changed_files(ExplainContext& ctx, std::vector<Finding>& out) {
  const TraceModel& m = ctx.model();
  for (const ObjectRecord* o : m.objects_by_load()) {
    if (o->flags & format::kObjectVdso) continue;
    const auto& entry = ctx.elf().for_object(*o, m.file_path(*o));
    if (entry.check != FileCheck::kDifferent && entry.check != FileCheck::kMissing &&
        entry.check != FileCheck::kUnreadable)
      continue;
    Finding f;
    f.kind = entry.check == FileCheck::kDifferent ? "file-changed" : "file-missing";
    f.severity = Severity::kInfo;
    f.seq = o->load_seq;
    f.fact("object", std::string(m.path_of(*o)));
    f.title = fmt::format("{}: its file cannot be used for the analysis", m.name_of(*o));
    f.evidence.push_back(entry.problem);
    f.evidence.push_back("findings that need its symbols or dependencies are incomplete");
    out.push_back(std::move(f));
  }
}

}  // namespace

void explain_objects(ExplainContext& ctx, std::vector<Finding>& out) {
  duplicate_libraries(ctx, out);
  duplicate_symbols(ctx, out);
  changed_files(ctx, out);
}

}  // namespace dltrace::viewer

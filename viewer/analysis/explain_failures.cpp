// Failed calls: why a dlopen/dlsym/dlvsym failed, from the exact dlerror text, the scopes at
// that moment and the ELF files, and what to change.
#include <dlfcn.h>
#include <elf.h>

#include <algorithm>
#include <filesystem>

#include "analysis/dlerror_text.h"
#include "analysis/explain.h"
#include "analysis/library_search.h"
#include "analysis/missing_dependency.h"
#include "common/dlopen_flags.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

namespace fs = std::filesystem;

std::string base_name(std::string_view path) {
  return std::string(basename_of(path));
}

std::string override_rule(std::string_view match, std::string_view flag) {
  return fmt::format("[[override]]\nmatch = \"{}\"\nadd = [\"{}\"]\n", match, flag);
}

// "-lfoo" for libfoo.so.1, else the file name.
std::string link_flag(std::string_view soname) {
  std::string_view name = basename_of(soname);
  if (name.rfind("lib", 0) == 0) {
    size_t so = name.find(".so");
    if (so != std::string_view::npos && so > 3) return fmt::format("-l{}", name.substr(3, so - 3));
  }
  return std::string(name);
}

std::string names_of(ExplainContext& ctx, const std::vector<uint32_t>& ids, size_t max = 12) {
  std::string out;
  for (size_t i = 0; i < ids.size() && i < max; ++i) {
    const ObjectRecord* o = ctx.reader().object(ids[i]);
    if (!o) continue;
    if (!out.empty()) out += ", ";
    out += ctx.model().name_of(*o);
  }
  if (ids.size() > max) out += fmt::format(", ... ({} in all)", ids.size());
  return out;
}

// The object whose code made the call: "libgmodule-2.0.so.0".
std::string caller_name(ExplainContext& ctx, const format::EventSlot& e) {
  const ObjectRecord* c = ctx.reader().object(e.caller_object);
  return c ? ctx.model().name_of(*c) : std::string("its caller");
}

void add_origin(ExplainContext& ctx, const format::EventSlot& e, Finding& f) {
  f.evidence.push_back(fmt::format("the call: {} from {}", ctx.call_text(e), ctx.call_site(e)));
  if (std::string py = ctx.python_line(e); !py.empty())
    f.evidence.push_back(fmt::format("Python line: {}", py));
  if (e.bits & format::kEventOverridden)
    f.evidence.push_back(fmt::format("a dltrace override (line {}) changed its flags to {}",
                                     e.override_line, flags_to_string(e.effective_flags)));
}

// The namespace a failed call's lookups ran in.
int64_t namespace_of(ExplainContext& ctx, const format::EventSlot& e) {
  if (e.call == static_cast<uint16_t>(format::CallKind::kDlmopen)) return e.lmid;
  if (const ObjectRecord* c = ctx.reader().object(e.caller_object)) return c->lmid;
  return 0;
}

// The search list the failing lookup used: for a dlopen, the global scope then the new group
// (the failing object and its DT_NEEDED closure); for dlsym, the handle's group.
struct LookupScope {
  std::vector<uint32_t> global;
  std::vector<uint32_t> group;
  std::string group_label;
  bool self_in_group = false;  // the failing file heads the group but is not in the trace
};

// "the global scope (a, b), then its own group (x.so and its dependencies: c, d)".
std::string scope_text(ExplainContext& ctx, const LookupScope& s) {
  std::string text = fmt::format("the global scope ({})", names_of(ctx, s.global));
  if (s.group_label.empty()) return text;
  text += ", then " + s.group_label;
  if (!s.group.empty()) text += ": " + names_of(ctx, s.group);
  return text;
}

LookupScope scope_for_open(ExplainContext& ctx, const format::EventSlot& e, const ElfFile* failing,
                           int64_t lmid) {
  LookupScope s;
  if (auto g = ctx.graph().global_list(lmid)) s.global = ctx.graph().lists()[*g].objects_at(e.seq);
  if (failing) s.group = ctx.graph().closure_of_file(*failing, lmid, e.seq, nullptr);
  s.group_label =
      failing ? fmt::format("its own group ({} and its dependencies)", basename_of(failing->path))
              : std::string("its own group");
  s.self_in_group = failing != nullptr;
  return s;
}

bool in(const std::vector<uint32_t>& ids, uint32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

// The local search list `object` came in with (its dlopen group), if any.
const SearchList* group_of(ExplainContext& ctx, const ObjectRecord& object) {
  for (const auto& list : ctx.graph().lists()) {
    if (list.kind == SearchList::Kind::kLocal && list.opened_by == object.opened_by &&
        list.contains_at(object.id, object.load_seq))
      return &list;
  }
  for (const auto& list : ctx.graph().lists())
    if (list.kind == SearchList::Kind::kLocal && list.contains_at(object.id, UINT64_MAX))
      return &list;
  return nullptr;
}

// "needs SYM, defined only in D, which a group opened RTLD_LOCAL keeps out of sight".
bool explain_hidden_definition(ExplainContext& ctx, const format::EventSlot& e,
                               const std::string& symbol, const std::string& needer,
                               const std::vector<const ObjectRecord*>& definers,
                               const LookupScope& scope, Finding& f) {
  const ObjectRecord* d = nullptr;
  for (const ObjectRecord* o : definers)
    if (!in(scope.global, o->id) && !in(scope.group, o->id)) {
      d = o;
      break;
    }
  if (!d) return false;
  const TraceModel& m = ctx.model();
  int64_t lmid = namespace_of(ctx, e);
  f.fact("symbol", symbol);
  f.fact("needed_by", needer);
  f.fact("defined_in", std::string(m.path_of(*d)));
  if (d->lmid != lmid) {
    f.kind = "undefined-symbol-other-namespace";
    f.title = fmt::format("{} needs {}, which is defined only in {} in another namespace ({})",
                          base_name(needer), symbol, m.name_of(*d), d->lmid);
    f.evidence.push_back(
        fmt::format("{} ({}) is in namespace {}, the lookup ran in namespace {}: "
                    "namespaces never share symbols",
                    m.name_of(*d), m.path_of(*d), d->lmid, lmid));
    f.fixes.push_back(
        {fmt::format("load {} in the same namespace (dlmopen it into namespace {}, or "
                     "link {} against it)",
                     m.name_of(*d), lmid, base_name(needer)),
         ""});
    return true;
  }
  const SearchList* group = group_of(ctx, *d);
  auto opener = group ? ctx.reader().event(group->opened_by) : std::nullopt;
  const ObjectRecord* root = group ? ctx.reader().object(group->root) : nullptr;
  f.kind = "undefined-symbol-local-scope";
  f.title =
      fmt::format("{} needs {}, defined in {}, which was loaded RTLD_LOCAL{}", base_name(needer),
                  symbol, m.name_of(*d),
                  root && root != d ? fmt::format(" as a dependency of {}", m.name_of(*root)) : "");
  f.evidence.push_back(fmt::format("{} is defined in {} ({}), loaded at #{}", symbol, m.name_of(*d),
                                   m.path_of(*d), d->load_seq));
  if (opener && root) {
    f.fact("opened_by", std::to_string(opener->seq));
    f.fact("scope_root", std::string(m.path_of(*root)));
    f.evidence.push_back(fmt::format(
        "{} came in with #{}: {} from {}, without RTLD_GLOBAL, so its group ({}) is searched only "
        "by the group's own objects",
        m.name_of(*d), opener->seq, ctx.call_text(*opener), ctx.call_site(*opener),
        names_of(ctx, group->objects_at(opener->seq))));
    if (std::string py = ctx.python_line(*opener); !py.empty())
      f.evidence.push_back(fmt::format("that dlopen was made by Python at {}", py));
    for (const auto& line : ctx.stack_lines(*opener)) f.evidence.push_back("    at " + line);
  }
  f.evidence.push_back(fmt::format("{}'s lookups searched {}; {} is in none of them",
                                   base_name(needer), scope_text(ctx, scope), m.name_of(*d)));
  if (d->soname.find("libpython") != std::string::npos || m.name_of(*d).find("libpython") == 0)
    f.evidence.push_back(
        "this is the embedded-interpreter situation: libpython's C API is in a local scope, so "
        "extension modules (which do not link libpython) cannot see it");
  if (opener && root) {
    int fixed = (opener->flags & ~RTLD_LOCAL) | RTLD_GLOBAL;
    std::string call = opener->call == static_cast<uint16_t>(format::CallKind::kDlmopen)
                           ? fmt::format("dlmopen(..., \"{}\", {})",
                                         ctx.reader().string(opener->name), flags_to_string(fixed))
                           : fmt::format("dlopen(\"{}\", {})", ctx.reader().string(opener->name),
                                         flags_to_string(fixed));
    if (std::string py = ctx.python_line(*opener); !py.empty()) {
      // Python made the call: the fix is in Python, not in the interpreter's C code.
      f.fixes.push_back(
          {ctx.python_ctypes_load(*opener)
               ? fmt::format("load it with ctypes.CDLL(\"{}\", mode=ctypes.RTLD_GLOBAL) at {}",
                             ctx.reader().string(opener->name), py)
               : fmt::format("import it with RTLD_GLOBAL: sys.setdlopenflags(sys.getdlopenflags() "
                             "| os.RTLD_GLOBAL) before the import at {}",
                             py),
           ""});
    } else {
      f.fixes.push_back({fmt::format("open {} with RTLD_GLOBAL at that call: {} in {}",
                                     m.name_of(*root), call, ctx.call_site(*opener)),
                         ""});
    }
    f.fixes.push_back({fmt::format("without rebuilding: run with this dltrace override rule "
                                   "(dltrace run -c dltrace.toml, or DLTRACE_CONFIG=dltrace.toml "
                                   "with the preload)"),
                       override_rule(base_name(m.path_of(*root)), "RTLD_GLOBAL")});
  }
  std::string soname = d->soname.empty() ? m.name_of(*d) : d->soname;
  if (soname.find("libpython") != std::string::npos) {
    f.evidence.push_back(
        fmt::format("note: linking {} against {} is not the fix: Python "
                    "extension modules must not link libpython",
                    base_name(needer), soname));
  } else {
    f.fixes.push_back({fmt::format("or link {} against {} ({} when linking it), so that its own "
                                   "group brings the definition in",
                                   base_name(needer), soname, link_flag(soname)),
                       ""});
  }
  return true;
}

// The shared libraries in `owner`'s directory and its RUNPATH/RPATH directories that are not
// places already (bounded: a few hundred files).
void add_neighbours(ExplainContext& ctx, const Loader& owner, std::vector<NearMissPlace>& places) {
  const std::string origin = owner.path.substr(0, owner.path.rfind('/'));
  std::vector<std::string> dirs{origin};
  if (owner.file)
    for (const auto& list : {owner.file->runpath, owner.file->rpath}) {
      if (!list) continue;
      for (size_t at = 0; at <= list->size();) {
        const size_t end = std::min(list->find(':', at), list->size());
        std::string dir = expand_search_dir(std::string_view(*list).substr(at, end - at), origin);
        if (!dir.empty() && !is_system_path(dir) &&
            std::find(dirs.begin(), dirs.end(), dir) == dirs.end())
          dirs.push_back(std::move(dir));
        at = end + 1;
      }
    }
  size_t looked = 0;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    std::vector<std::string> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      if (it->path().filename().string().find(".so") != std::string::npos)
        files.push_back(it->path().string());
    std::sort(files.begin(), files.end());
    for (const std::string& path : files) {
      if (++looked > 300) return;
      if (std::any_of(places.begin(), places.end(),
                      [&](const NearMissPlace& p) { return p.path == path; }))
        continue;
      const ElfFile* f = ctx.elf().file(path);
      if (!f || f->elf_type != ET_DYN) continue;
      places.push_back({f, nullptr, base_name(path), path, false, owner.name});
    }
  }
}

// Where a near miss of a failed lookup is looked for: the objects it searched, in its order;
// for a dlopen, the files of its group the loader mapped and unmapped again; then every other
// loaded object.
std::vector<NearMissPlace> near_miss_places(ExplainContext& ctx, const format::EventSlot& e,
                                            const LookupScope& scope, int64_t lmid) {
  const TraceModel& m = ctx.model();
  std::vector<NearMissPlace> places;
  std::vector<uint32_t> seen;
  auto add_object = [&](const ObjectRecord* o, bool in_scope) {
    if (!o || (o->flags & format::kObjectVdso) || in(seen, o->id)) return;
    seen.push_back(o->id);
    places.push_back({ctx.file_of(*o), o, m.name_of(*o), m.file_path(*o), in_scope, ""});
  };
  for (uint32_t id : scope.global) add_object(ctx.reader().object(id), true);
  for (uint32_t id : scope.group) add_object(ctx.reader().object(id), true);
  if (is_open_call(e.call)) {
    DlopenReplay replay =
        replay_dlopen(ctx.reader().string(e.name), ctx.reader().object(e.caller_object), e.seq,
                      lmid, m, ctx.elf());
    for (Loader& file : replay.files)
      places.push_back({file.file, nullptr, file.name, file.path, true, ""});
    // A library the failing object was meant to use may not even be its dependency: the
    // linker drops (--as-needed) one that defines nothing under the names the object uses.
    for (const Loader& file : replay.files)
      if (!is_system_path(file.path)) add_neighbours(ctx, file, places);
  }
  for (const ObjectRecord* o : m.objects_by_load())
    if (o->alive_at(e.seq)) add_object(o, false);
  return places;
}

void explain_undefined(ExplainContext& ctx, const format::EventSlot& e, const DlerrorText& err,
                       const Classification& outcome, Finding& f) {
  const TraceModel& m = ctx.model();
  const bool is_open = is_open_call(e.call);
  int64_t lmid = namespace_of(ctx, e);
  std::string needer = err.object;
  LookupScope scope;
  if (is_open) {
    const ElfFile* failing = needer.empty() ? nullptr : ctx.elf().file(needer);
    scope = scope_for_open(ctx, e, failing, lmid);
  } else {
    const ObjectRecord* h = ctx.reader().object(e.handle_object);
    if (h && e.handle != 0 && e.handle != uint64_t(-1)) {
      scope.group.push_back(h->id);
      if (const ElfFile* hf = ctx.file_of(*h)) {
        auto rest = ctx.graph().closure_of_file(*hf, h->lmid, e.seq, nullptr);
        scope.group.insert(scope.group.end(), rest.begin(), rest.end());
      }
      scope.group_label =
          fmt::format("the handle's search list ({} and its dependencies)", m.name_of(*h));
      if (needer.empty()) needer = std::string(m.path_of(*h));
    } else if (const ObjectRecord* c = ctx.reader().object(e.caller_object)) {
      scope.global = ctx.graph().search_order(c->id, e.seq);
      scope.group_label = "";
      if (needer.empty()) needer = std::string(m.path_of(*c));
    }
  }
  if (needer.empty()) needer = ctx.reader().process().exe;
  f.fact("symbol", err.symbol);
  if (!err.version.empty()) f.fact("version", err.version);

  auto definers = ctx.exporters(err.symbol, err.version, e.seq);
  if (outcome.per_module) {
    // The caller asks each module it opens for this name: other modules' definitions are theirs,
    // and making them visible here (RTLD_GLOBAL, linking) is not what the caller wants.
    f.evidence.push_back(
        fmt::format("{} looks {} up in each module it opens, by that module's "
                    "handle: definitions in other modules are theirs",
                    caller_name(ctx, e), err.symbol));
    definers.clear();
  }
  if (explain_hidden_definition(ctx, e, err.symbol, needer, definers, scope, f)) {
    if (!is_open && f.kind == "undefined-symbol-local-scope") {
      f.title = fmt::format("{} found nothing: {} is defined in {}, which was loaded RTLD_LOCAL",
                            ctx.call_text(e), err.symbol, m.name_of(*definers.front()));
      f.fixes.insert(f.fixes.end() - 1,
                     {fmt::format("or look it up where it is: dlsym() on a handle of {} "
                                  "(dlopen(\"{}\", RTLD_NOW|RTLD_NOLOAD) returns one)",
                                  m.name_of(*definers.front()), m.name_of(*definers.front())),
                      ""});
    }
    return;
  }
  if (!outcome.per_module || is_open) {
    if (explain_near_miss(ctx, e, err.symbol, err.version, needer,
                          near_miss_places(ctx, e, scope, lmid), f))
      return;
  } else if (const ObjectRecord* h = ctx.reader().object(e.handle_object)) {
    // A per-module lookup: only the module's own file can hold its near miss.
    std::vector<NearMissPlace> own{{ctx.file_of(*h), h, m.name_of(*h), m.file_path(*h), true, ""}};
    if (explain_near_miss(ctx, e, err.symbol, err.version, needer, own, f)) return;
  }
  if (explain_python_abi(ctx, e, err.symbol, needer, f)) return;
  f.kind = "undefined-symbol";
  f.title = fmt::format("{} needs {}{}, which no loaded object defines", base_name(needer),
                        err.symbol, err.version.empty() ? "" : "@" + err.version);
  if (!is_open && e.handle != 0 && e.handle != uint64_t(-1)) {
    // A lookup by handle: the caller asked that object, which needs nothing.
    if (const ObjectRecord* h = ctx.reader().object(e.handle_object))
      f.title = fmt::format(
          "{} looked up {}{} through the handle of {}: no loaded object "
          "defines it",
          caller_name(ctx, e), err.symbol, err.version.empty() ? "" : "@" + err.version,
          m.name_of(*h));
  }
  if (!err.version.empty()) {
    for (const ObjectRecord* o : ctx.model().objects_by_load()) {
      if (!o->alive_at(e.seq)) continue;
      const ElfFile* file = ctx.file_of(*o);
      if (!file) continue;
      for (const auto& s : file->dynamic_symbols)
        if (s.name == err.symbol && s.exported())
          f.evidence.push_back(fmt::format("{} defines {}@{} (another version)", m.name_of(*o),
                                           s.name,
                                           s.version.empty() ? "<unversioned>" : s.version));
    }
  }
  f.evidence.push_back(fmt::format("searched: {}", scope_text(ctx, scope)));
  // No fix: which library should have brought the definition in is not in the trace, and
  // linking against a library is only advised when that library is known to export it.
  f.evidence.push_back(
      fmt::format("no loaded object defines {} (nor a hidden, versioned or C++ "
                  "spelling of it): the library meant to provide it was not "
                  "loaded, or does not define it",
                  err.symbol));
}

void explain_not_found(ExplainContext& ctx, const format::EventSlot& e, const DlerrorText& err,
                       Finding& f) {
  const TraceModel& m = ctx.model();
  std::string requested(ctx.reader().string(e.name));
  std::string missing = err.object.empty() ? requested : err.object;
  const bool dependency =
      !requested.empty() && missing != requested && basename_of(requested) != basename_of(missing);
  f.kind = "library-not-found";
  f.fact("library", missing);
  f.title = dependency ? fmt::format("{} was found, but its dependency {} was not",
                                     base_name(requested), missing)
                       : fmt::format("{} was not found", missing);
  if (dependency && explain_missing_dependency(ctx, e, requested, missing, f)) return;
  // A path that exists: ld.so said "cannot open" because it skipped the file (another CPU).
  if (!dependency && missing.find('/') != std::string::npos &&
      (explain_relative_name(ctx, e, requested, f) || explain_unloadable_file(ctx, e, missing, f)))
    return;
  const ObjectRecord* caller = ctx.reader().object(e.caller_object);
  LibrarySearch search = plan_search(missing, dependency ? nullptr : caller, m, ctx.elf());
  f.evidence.push_back(fmt::format("the loader tried, in order ({}):",
                                   dependency
                                       ? "as a DT_NEEDED entry, from the executable's point of view"
                                   : caller ? "as dlopen'ed from " + m.name_of(*caller)
                                            : "as dlopen'ed"));
  for (const auto& step : search.steps) {
    if (step.candidate.empty()) {
      f.evidence.push_back(fmt::format("  {}: no entry for {}", step.source, missing));
    } else {
      f.evidence.push_back(fmt::format("  {}  ({}){}", step.candidate, step.source,
                                       step.exists ? " — exists now" : ""));
    }
  }
  for (const auto& note : search.notes) f.evidence.push_back("note: " + note);
  auto found = find_on_disk(basename_of(missing), m);
  if (found.empty()) {
    f.evidence.push_back(
        fmt::format("no file named {} was found near the program, its libraries "
                    "or in the system directories",
                    base_name(missing)));
    f.fixes.push_back(
        {fmt::format("install or build {}, then make it findable (below)", base_name(missing)),
         ""});
  } else {
    for (const auto& path : found)
      f.evidence.push_back(fmt::format("a file with that name exists: {}", path));
    f.fact("candidate", found.front());
    std::string dir = fs::path(found.front()).parent_path().string();
    std::string owner = caller && !dependency ? m.name_of(*caller) : "the executable";
    f.fixes.push_back({fmt::format("add {} to {}'s DT_RUNPATH when linking it "
                                   "(-Wl,-rpath,{} or an $ORIGIN-relative path)",
                                   dir, owner, dir),
                       ""});
    f.fixes.push_back({fmt::format("or run with LD_LIBRARY_PATH={}", dir), ""});
    if (!dependency)
      f.fixes.push_back(
          {fmt::format("or dlopen the full path: dlopen(\"{}\", ...)", found.front()), ""});
  }
  f.evidence.push_back(
      "note: a dltrace override cannot fix this: rules change flags, not where "
      "files are searched");
}

void explain_version(ExplainContext& ctx, const format::EventSlot& e, const DlerrorText& err,
                     Finding& f) {
  const TraceModel& m = ctx.model();
  f.kind = "version-not-found";
  f.fact("version", err.version);
  f.fact("provider", err.object);
  f.fact("needed_by", err.needed_by);
  f.title = fmt::format(
      "{} needs version {} of {}, but the copy that was loaded ({}) does not "
      "have it",
      base_name(err.needed_by), err.version, base_name(err.object), err.object);
  const ObjectRecord* loaded = ctx.object_by_path(err.object, e.seq);
  if (loaded) {
    std::string how;
    if (loaded->cause == format::ObjectCause::kNeeded) {
      const ObjectRecord* p = ctx.reader().object(loaded->parent);
      how = fmt::format("as a DT_NEEDED dependency of {}", p ? m.name_of(*p) : "another object");
    } else if (loaded->cause != format::ObjectCause::kDlopen) {
      how = "at start-up";
    }
    if (loaded->opened_by) {
      if (auto opener = ctx.reader().event(loaded->opened_by))
        how += fmt::format("{}by #{}: {} from {}", how.empty() ? "" : ", pulled in ", opener->seq,
                           ctx.call_text(*opener), ctx.call_site(*opener));
    }
    f.evidence.push_back(fmt::format(
        "that copy was loaded {} {}",
        loaded->load_seq ? fmt::format("at #{}", loaded->load_seq) : std::string("at start-up"),
        how));
  }
  if (const ElfFile* have = ctx.elf().file(err.object)) {
    std::string versions;
    for (size_t i = 1; i < have->version_definitions.size(); ++i) {
      if (!versions.empty()) versions += ", ";
      versions += have->version_definitions[i];
    }
    f.evidence.push_back(fmt::format("that copy defines: {}",
                                     versions.empty() ? std::string("no versions") : versions));
  }
  std::vector<std::string> names{base_name(err.object)};
  if (loaded && !loaded->soname.empty() && loaded->soname != names.front())
    names.push_back(loaded->soname);
  std::string good;
  for (const auto& name : names) {
    for (const auto& path : find_on_disk(name, m)) {
      if (fs::path(path).lexically_normal() == fs::path(err.object).lexically_normal()) continue;
      const ElfFile* other = ctx.elf().file(path);
      if (!other) continue;
      bool has = other->defines_version(err.version);
      f.evidence.push_back(fmt::format("another copy: {} {}", path,
                                       has ? "has " + err.version : "does not have it either"));
      if (has && good.empty()) good = path;
    }
  }
  if (!good.empty()) {
    f.fact("candidate", good);
    std::string dir = fs::path(good).parent_path().string();
    f.fixes.push_back({fmt::format("make {} the copy that is loaded: it must be found before {} "
                                   "(whoever loads it first decides, and later loads reuse it by "
                                   "soname) — e.g. LD_LIBRARY_PATH={} or an RPATH/RUNPATH to {}",
                                   good, err.object, dir, dir),
                       ""});
  } else {
    f.fixes.push_back(
        {fmt::format("install a newer {} that defines {}", base_name(err.object), err.version),
         ""});
  }
  f.fixes.push_back({fmt::format("or rebuild {} against the {} that is actually deployed",
                                 base_name(err.needed_by), base_name(err.object)),
                     ""});
}

}  // namespace

void explain_failed_call(ExplainContext& ctx, const format::EventSlot& e,
                         const Classification& outcome, std::vector<Finding>& out) {
  if (!is_open_call(e.call) && !is_sym_call(e.call)) return;
  Finding f;
  f.seq = e.seq;
  f.severity = outcome.severity;
  std::string error(ctx.reader().string(e.error));
  f.fact("call", std::string(call_name(e.call)));
  f.fact("error", error);
  f.fact("outcome", outcome_name(outcome.outcome));
  f.fact("outcome_rule", std::string(outcome.rule));
  f.evidence.push_back(fmt::format("dlerror: {}", error.empty() ? "(not recorded)" : error));
  add_origin(ctx, e, f);
  f.evidence.push_back(fmt::format("{}: {}",
                                   outcome.severity == Severity::kInfo
                                       ? "why this is only a note"
                                       : "why this is a failure, not a probe",
                                   outcome.reason));
  DlerrorText err = parse_dlerror(error);
  switch (err.kind) {
    case DlerrorText::Kind::kUndefinedSymbol:
      explain_undefined(ctx, e, err, outcome, f);
      break;
    case DlerrorText::Kind::kNotFound:
      explain_not_found(ctx, e, err, f);
      break;
    case DlerrorText::Kind::kVersionNotFound:
      explain_version(ctx, e, err, f);
      break;
    case DlerrorText::Kind::kOther:
      // "FILE: invalid ELF header", "FILE: file too short", ...: the file itself was refused.
      if (is_open_call(e.call) && error.find(": ") != std::string::npos) {
        const std::string file = error.substr(0, error.find(": "));
        if (error.find("cannot allocate memory in static TLS block") != std::string::npos
                ? explain_static_tls(ctx, e, file, f)
                : explain_unloadable_file(ctx, e, file, f))
          break;
      }
      f.kind = is_open_call(e.call) ? "load-failed" : "lookup-failed";
      f.title =
          fmt::format("{} failed: {}", ctx.call_text(e), error.empty() ? "(no error text)" : error);
      if (is_open_call(e.call)) {
        LibrarySearch search =
            plan_search(ctx.reader().string(e.name), ctx.reader().object(e.caller_object),
                        ctx.model(), ctx.elf());
        for (const auto& step : search.steps)
          if (step.exists) {
            f.evidence.push_back(fmt::format("the loader found {} ({}) and could not load it",
                                             step.candidate, step.source));
            break;
          }
      }
      break;
  }
  if (is_open_call(e.call) && (outcome.rule == "not-installed" || outcome.rule == "end-unknown")) {
    // A library that exists nowhere, in a program that carried on (or whose end says nothing):
    // where it was searched, and no fix (installing it would change what a working program
    // does).
    f.title =
        fmt::format("{} is not installed{}", basename_of(ctx.reader().string(e.name)),
                    outcome.rule == "not-installed" ? "; the program carried on without it" : "");
    f.fixes.clear();
  }
  out.push_back(std::move(f));
}

Finding probe_finding(ExplainContext& ctx, const format::EventSlot& e,
                      const Classification& outcome) {
  Finding f;
  f.kind = "probe";
  f.severity = Severity::kInfo;
  f.seq = e.seq;
  std::string error(ctx.reader().string(e.error));
  std::string_view name = ctx.reader().string(e.name);
  std::string asked = ctx.call_text(e);
  if (is_sym_call(e.call) && e.handle != 0 && e.handle != uint64_t(-1)) {
    if (const ObjectRecord* h = ctx.reader().object(e.handle_object)) {
      std::string handle = "handle of " + ctx.model().name_of(*h);
      asked = e.call == static_cast<uint16_t>(format::CallKind::kDlvsym)
                  ? fmt::format("dlvsym({}, \"{}\", \"{}\")", handle, name,
                                ctx.reader().string(e.version))
                  : fmt::format("dlsym({}, \"{}\")", handle, name);
    }
  }
  std::string why = outcome.rule == "noload"           ? "RTLD_NOLOAD asks, it does not load"
                    : outcome.rule == "obtained-later" ? "found by a later call"
                    : outcome.rule == "alternative"    ? "another library was loaded instead"
                    : outcome.rule == "optional-hook"
                        ? fmt::format("an optional hook of {}", outcome.convention)
                        : "defined nowhere, and the program went on";
  f.title = fmt::format("{} found nothing: {}", asked, why);
  f.fact("call", std::string(call_name(e.call)));
  f.fact(is_open_call(e.call) ? "library" : "symbol", std::string(name));
  f.fact("error", error);
  f.fact("outcome", outcome_name(outcome.outcome));
  f.fact("outcome_rule", std::string(outcome.rule));
  if (!outcome.convention.empty()) f.fact("convention", std::string(outcome.convention));
  f.evidence.push_back(fmt::format("dlerror: {}", error.empty() ? "(none)" : error));
  f.evidence.push_back(fmt::format("the call: {} from {}", ctx.call_text(e), ctx.call_site(e)));
  if (std::string py = ctx.python_line(e); !py.empty())
    f.evidence.push_back(fmt::format("Python line: {}", py));
  f.evidence.push_back(fmt::format("why this is a probe: {}", outcome.reason));
  return f;
}

}  // namespace dltrace::viewer

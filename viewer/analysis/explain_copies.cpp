// Two copies of one API (analysis/symbol_copies.h) turned into findings: which two objects, which
// references bind to which copy, why that splits state, and the fix for how the second copy came
// in: an extension module linked against libpython, an executable exporting what a library also
// defines (-rdynamic), a module carrying its own static C++ runtime or C library.
#include <algorithm>
#include <map>

#include "analysis/cxx_names.h"
#include "analysis/explain.h"
#include "analysis/symbol_bindings.h"
#include "analysis/symbol_copies.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

// "a, b, c and 4 more", demangled; transactional-memory clones (_ZGTt, "transaction clone
// for ...") of functions are shown after the functions themselves.
std::string sample(std::vector<std::string> names, size_t max = 4) {
  std::stable_partition(names.begin(), names.end(),
                        [](const std::string& n) { return !n.starts_with("_ZGTt"); });
  std::string out;
  for (size_t i = 0; i < names.size() && i < max; ++i) out += (i ? ", " : "") + demangle(names[i]);
  if (names.size() > max) out += fmt::format(" and {} more", names.size() - max);
  return out;
}

std::string count_of(size_t n, std::string_view what) {
  return fmt::format("{} {}{}", n, what, n == 1 ? "" : "s");
}

// How an object came in: "needed by ext.so, which dlopen #5 opened from main() at ..." .
std::string how_loaded(ExplainContext& ctx, const ObjectRecord& o) {
  const TraceModel& m = ctx.model();
  if (m.is_main_program(o)) return "the executable";
  std::string text;
  if (o.cause == format::ObjectCause::kNeeded) {
    const ObjectRecord* p = ctx.reader().object(o.parent);
    text = fmt::format("needed by {}", p ? m.name_of(*p) : "another object");
  }
  if (o.opened_by) {
    if (auto e = ctx.reader().event(o.opened_by)) {
      std::string call = fmt::format("#{} {}", e->seq, ctx.call_text(*e));
      if (std::string py = ctx.python_line(*e); !py.empty())
        call += " from " + py;
      else
        call += " from " + ctx.call_site(*e);
      text += text.empty() ? call : ", brought in by " + call;
    }
  } else if (text.empty()) {
    text = "at start-up";
  }
  return text;
}

bool is_libpython(const ObjectRecord& o, std::string_view path) {
  const std::string_view name = o.soname.empty() ? basename_of(path) : std::string_view(o.soname);
  return name.starts_with("libpython");
}

// The object of `copy`'s group that was linked against the second copy (DT_NEEDED), when the
// second copy came in as a dependency; null when it was opened itself.
const ObjectRecord* needer_of(ExplainContext& ctx, const ApiCopy& copy) {
  const ObjectRecord* second = ctx.reader().object(copy.second);
  if (!second || second->cause != format::ObjectCause::kNeeded) return nullptr;
  return ctx.reader().object(second->parent);
}

// Whether dropping `second` from `needer`'s link leaves every reference of `needer` that binds
// to `second` a definition in `first`: then the fix works.
bool first_covers(ExplainContext& ctx, const ObjectRecord& needer, const ObjectRecord& first,
                  const ObjectRecord& second) {
  const ElfFile* ffile = ctx.file_of(first);
  if (!ffile) return false;
  for (const SymbolBinding& b : bind_object(ctx.graph(), needer, relocation_seq(needer)))
    if (b.to == second.id && !ffile->exported(b.symbol, b.version)) return false;
  return true;
}

void add_reference_evidence(ExplainContext& ctx, const ApiCopy& c, Finding& f) {
  const TraceModel& m = ctx.model();
  // (from, to) -> symbols, in the order of the references.
  std::map<std::pair<uint32_t, uint32_t>, std::vector<std::string>> groups;
  for (const CopyReference& r : c.references) groups[{r.from, r.to}].push_back(r.symbol);
  for (const auto& [key, symbols] : groups) {
    const ObjectRecord* from = ctx.reader().object(key.first);
    const ObjectRecord* to = ctx.reader().object(key.second);
    if (!from || !to) continue;
    const bool own = key.first == key.second;
    f.evidence.push_back(fmt::format("{}'s {} to them ({}) bind{} to {}", m.name_of(*from),
                                     count_of(symbols.size(), "reference"), sample(symbols),
                                     symbols.size() == 1 ? "s" : "",
                                     own ? "its own copy" : m.name_of(*to) + "'s copy"));
  }
  if (!c.direct.empty()) {
    const ObjectRecord* second = ctx.reader().object(c.second);
    f.evidence.push_back(fmt::format(
        "no dynamic relocation of {} names {} of them ({}): whatever of its own code uses them "
        "reaches its own copy directly, not through the scope",
        second ? m.name_of(*second) : "the second copy", c.direct.size(), sample(c.direct, 3)));
  }
  size_t shown = 0;
  for (const CopyLookup& l : c.lookups) {
    if (shown++ == 3) {
      f.evidence.push_back(fmt::format("… and {} more dlsym results", c.lookups.size() - 3));
      break;
    }
    const ObjectRecord* to = ctx.reader().object(l.to);
    std::string call = fmt::format("#{} dlsym(\"{}\")", l.seq, l.symbol);
    if (auto e = ctx.reader().event(l.seq)) call += " from " + ctx.call_site(*e);
    f.evidence.push_back(
        fmt::format("{} returned {}'s copy", call, to ? m.name_of(*to) : "an unknown object"));
  }
}

Finding runtime_copy(ExplainContext& ctx, const ApiCopy& c, const ObjectRecord& first,
                     const ObjectRecord& second) {
  const TraceModel& m = ctx.model();
  Finding f;
  f.kind = "runtime-copy";
  f.severity = Severity::kWarning;
  f.seq = c.seq;
  f.title = fmt::format(
      "{} carries its own copy of {}: {} of its exported definitions ({}) are also defined by {}",
      m.name_of(second), c.runtime, c.symbols.size(), sample(c.symbols, 3), m.path_of(first));
  f.fact("object", std::string(m.path_of(second)));
  f.fact("runtime", c.runtime);
  f.fact("first", std::string(m.path_of(first)));
  f.fact("second", std::string(m.path_of(second)));
  f.fact("copies", std::to_string(c.symbols.size()));
  f.fact("symbol", c.symbols.front());
  f.evidence.push_back(fmt::format("{}: {}", m.path_of(second), how_loaded(ctx, second)));
  f.evidence.push_back(fmt::format("{}: {}", m.path_of(first), how_loaded(ctx, first)));
  add_reference_evidence(ctx, c, f);
  f.evidence.push_back(
      c.runtime == "the C library"
          ? "two C libraries in one process have two malloc heaps, two stdio buffers and two "
            "errno and locale states: memory, FILEs and errors that cross between code bound to "
            "one and code bound to the other are handled by the wrong one"
          : fmt::format("two copies of {} in one process: two exception-handling runtimes (each "
                        "with its own per-thread exception state and emergency pool), two sets of "
                        "type_info and locale/iostream state; an exception or a std:: object "
                        "that crosses between code bound to one copy and code bound to the other "
                        "is handled by a copy that did not make it",
                        c.runtime));
  if (c.runtime == "the C library") {
    // Hiding a static C library (--exclude-libs) is no fix: nothing runs its start-up code, and
    // its own malloc then fails where the system's had been doing the work.
    f.fixes.push_back({fmt::format("build {} against this system's C library (cc -shared, not "
                                   "musl-gcc or -static with another libc)",
                                   m.name_of(second)),
                       ""});
  } else {
    const std::string flag = c.runtime == "libgcc" ? "-static-libgcc" : "-static-libstdc++";
    f.fixes.push_back({fmt::format("link {} with {} -Wl,--exclude-libs,ALL so that its copy stays "
                                   "private, or link it against the shared {} (drop {})",
                                   m.name_of(second), flag, first.soname, flag),
                       ""});
  }
  return f;
}

Finding api_copy(ExplainContext& ctx, const ApiCopy& c, const ObjectRecord& first,
                 const ObjectRecord& second) {
  const TraceModel& m = ctx.model();
  const bool exe = m.is_main_program(first);
  Finding f;
  f.kind = "api-copy";
  f.severity = Severity::kWarning;
  f.seq = c.seq;
  f.title = fmt::format(
      "{} is a second copy of {} that {} {} already has ({}): the process's "
      "references are split between the two copies",
      m.path_of(second), count_of(c.symbols.size(), "exported definition"),
      exe ? "the executable" : "the library", m.path_of(first), sample(c.symbols, 3));
  f.fact("object", std::string(m.path_of(second)));
  f.fact("first", std::string(m.path_of(first)));
  f.fact("second", std::string(m.path_of(second)));
  f.fact("copies", std::to_string(c.symbols.size()));
  f.fact("symbol", c.symbols.front());
  f.fact("bound_to_first", std::to_string(c.bound_to(first.id)));
  f.fact("bound_to_second", std::to_string(c.bound_to(second.id)));
  f.fact("direct_in_second", std::to_string(c.direct.size()));
  f.fact("dlsym_first", std::to_string(c.returned_from(first.id)));
  f.fact("dlsym_second", std::to_string(c.returned_from(second.id)));
  f.evidence.push_back(fmt::format("{}: {}", m.path_of(first), how_loaded(ctx, first)));
  f.evidence.push_back(fmt::format("{}: {}", m.path_of(second), how_loaded(ctx, second)));
  f.evidence.push_back(fmt::format(
      "in {}'s lookup scope {} comes first (an earlier search list: the global scope is searched "
      "before a dlopen group's own), so every reference to these names that goes through the "
      "scope binds to {}'s copy; {}'s copy is what its own direct calls and a dlsym on its "
      "handle reach",
      m.name_of(second), m.name_of(first), m.name_of(first), m.name_of(second)));
  add_reference_evidence(ctx, c, f);
  f.evidence.push_back(fmt::format(
      "two copies are two sets of state: what code bound to {}'s copy sets (its globals, "
      "registries, caches, locks) is invisible to code bound to {}'s",
      m.name_of(first), m.name_of(second)));
  const ObjectRecord* needer = needer_of(ctx, c);
  if (needer) f.fact("needed_by", std::string(m.path_of(*needer)));
  if (needer && first_covers(ctx, *needer, first, second)) {
    if (is_libpython(second, m.path_of(second)) && exe) {
      const std::string lib =
          second.soname.empty() ? std::string(basename_of(m.path_of(second))) : second.soname;
      std::string flag = lib.substr(3, lib.find(".so") - 3);  // libpython3.11.so.1.0 → python3.11
      f.fixes.push_back(
          {fmt::format("do not link the extension module {} against {}: drop -l{} (build it with "
                       "`python3-config --ldflags` without --embed, or with setuptools); the "
                       "interpreter that imports it provides the C API",
                       m.name_of(*needer), lib, flag),
           ""});
    } else {
      f.fixes.push_back({fmt::format("do not link {} against {}: {} already provides every "
                                     "symbol it uses from it",
                                     m.name_of(*needer), m.name_of(second), m.name_of(first)),
                         ""});
    }
  } else if (exe) {
    f.fixes.push_back(
        {fmt::format("stop exporting {} from {}: link it without -rdynamic (--export-dynamic), "
                     "or export only what plugins need (-Wl,--dynamic-list, a version script, "
                     "-fvisibility=hidden); {} then binds to its own copy",
                     sample(c.symbols, 3), m.name_of(first), m.name_of(second)),
         ""});
  }
  return f;
}

}  // namespace

void explain_copies(ExplainContext& ctx, std::vector<Finding>& out) {
  for (const ApiCopy& c : find_api_copies(ctx.graph())) {
    if (!c.reported()) continue;
    const ObjectRecord* first = ctx.reader().object(c.first);
    const ObjectRecord* second = ctx.reader().object(c.second);
    if (!first || !second) continue;
    out.push_back(c.runtime.empty() ? api_copy(ctx, c, *first, *second)
                                    : runtime_copy(ctx, c, *first, *second));
  }
}

}  // namespace dltrace::viewer

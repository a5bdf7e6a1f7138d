// Successful calls worth knowing about: a dlsym that returned someone else's definition, a
// load with RTLD_DEEPBIND, flags a dltrace override changed. Informational: the program worked,
// but this is where "it silently calls the wrong copy" starts.
#include <dlfcn.h>

#include "analysis/explain.h"
#include "common/dlopen_flags.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

void note_dlsym(ExplainContext& ctx, const format::EventSlot& e, std::vector<Finding>& out) {
  const TraceModel& m = ctx.model();
  const ObjectRecord* got = ctx.reader().object(e.object);
  if (!got) return;
  std::string symbol(ctx.reader().string(e.name));
  const bool pseudo = e.handle == 0 || e.handle == uint64_t(-1);
  if (pseudo) {
    if (e.handle != 0) return;  // RTLD_NEXT skips the caller by design
    const ObjectRecord* caller = ctx.reader().object(e.caller_object);
    if (!caller || caller->id == got->id) return;
    const ElfFile* own = ctx.file_of(*caller);
    if (!own || !own->exported(symbol)) return;
    if (!ctx.first_time(fmt::format("interposed {} {} {}", caller->id, got->id, symbol))) return;
    Finding f;
    f.kind = "dlsym-interposed";
    f.severity = Severity::kInfo;
    f.seq = e.seq;
    f.title = fmt::format(
        "{} defines {} itself, but dlsym(RTLD_DEFAULT, \"{}\") from it returned "
        "{}'s definition",
        m.name_of(*caller), symbol, symbol, m.name_of(*got));
    f.fact("symbol", symbol);
    f.fact("object", std::string(m.path_of(*caller)));
    f.fact("defined_in", std::string(m.path_of(*got)));
    f.evidence.push_back(fmt::format("the call: {} from {}", ctx.call_text(e), ctx.call_site(e)));
    auto order = ctx.graph().search_order(caller->id, e.seq);
    std::string names;
    for (uint32_t id : order) {
      const ObjectRecord* o = ctx.reader().object(id);
      if (!o) continue;
      if (!names.empty()) names += ", ";
      names += m.name_of(*o);
      if (id == caller->id) break;
    }
    f.evidence.push_back(
        fmt::format("RTLD_DEFAULT searches the caller's scopes in order: {} — {} "
                    "comes first",
                    names, m.name_of(*got)));
    f.fixes.push_back({fmt::format("if {} wants its own {}: look it up through its own handle, or "
                                   "link it with -Wl,-Bsymbolic / give the symbol protected "
                                   "visibility, or open it RTLD_DEEPBIND",
                                   m.name_of(*caller), symbol),
                       ""});
    out.push_back(std::move(f));
    return;
  }
  const ObjectRecord* handle = ctx.reader().object(e.handle_object);
  if (!handle || handle->id == got->id || m.is_main_program(*handle)) return;
  if (!ctx.first_time(fmt::format("dependency {} {} {}", handle->id, got->id, symbol))) return;
  Finding f;
  f.kind = "dlsym-from-dependency";
  f.severity = Severity::kInfo;
  f.seq = e.seq;
  f.title = fmt::format("dlsym(handle of {}, \"{}\") returned the definition in {}, not in {}",
                        m.name_of(*handle), symbol, m.name_of(*got), m.name_of(*handle));
  f.fact("symbol", symbol);
  f.fact("object", std::string(m.path_of(*handle)));
  f.fact("defined_in", std::string(m.path_of(*got)));
  const ElfFile* own = ctx.file_of(*handle);
  f.evidence.push_back(fmt::format("the call: {} from {}", ctx.call_text(e), ctx.call_site(e)));
  f.evidence.push_back(
      own && own->exported(symbol)
          ? fmt::format("{} defines it too, yet {}'s definition was found first",
                        m.name_of(*handle), m.name_of(*got))
          : fmt::format("{} does not define it; a handle's lookup also searches its dependencies, "
                        "where {} has it",
                        m.name_of(*handle), m.name_of(*got)));
  out.push_back(std::move(f));
}

void note_open(ExplainContext& ctx, const format::EventSlot& e, std::vector<Finding>& out) {
  const TraceModel& m = ctx.model();
  std::string name(ctx.reader().string(e.name));
  if (e.effective_flags & RTLD_DEEPBIND) {
    if (ctx.first_time(fmt::format("deepbind {}", e.object))) {
      Finding f;
      f.kind = "deepbind";
      f.severity = Severity::kInfo;
      f.seq = e.seq;
      const ObjectRecord* o = ctx.reader().object(e.object);
      std::string opened = o ? m.name_of(*o) : name;
      f.title = fmt::format(
          "{} was opened with RTLD_DEEPBIND: its group's own definitions come "
          "before the global scope",
          opened);
      f.fact("object", o ? std::string(m.path_of(*o)) : name);
      f.evidence.push_back(fmt::format("the call: {} from {}", ctx.call_text(e), ctx.call_site(e)));
      f.evidence.push_back(
          "symbols it and its dependencies define (malloc, operator new, a bundled library's "
          "API) bind to their own copies, while the rest of the process uses others: memory "
          "allocated by one copy and freed by another is a classic crash");
      out.push_back(std::move(f));
    }
  }
  if ((e.bits & format::kEventOverridden) &&
      ctx.first_time(fmt::format("override {} {}", e.override_line, name))) {
    Finding f;
    f.kind = "override-applied";
    f.severity = Severity::kInfo;
    f.seq = e.seq;
    const std::string& config = ctx.reader().process().config;
    f.title =
        fmt::format("a dltrace override is in effect: {} ran with {} instead of {}",
                    ctx.call_text(e), flags_to_string(e.effective_flags), flags_to_string(e.flags));
    f.fact("config", config);
    f.fact("line", std::to_string(e.override_line));
    for (const auto& r : ctx.reader().overrides_for(e.seq))
      f.evidence.push_back(
          fmt::format("rule at {}:{}: {} -> {}", config.empty() ? "config" : config, r.line,
                      flags_to_string(r.flags_before), flags_to_string(r.flags_after)));
    f.evidence.push_back(
        "without the preload and this config, the program would use the "
        "requested flags: make the fix permanent in the code or the build");
    out.push_back(std::move(f));
  }
}

}  // namespace

void explain_call(ExplainContext& ctx, const format::EventSlot& e, std::vector<Finding>& out) {
  if (!(e.bits & format::kEventOk)) return;
  if (is_sym_call(e.call)) note_dlsym(ctx, e, out);
  if (is_open_call(e.call)) note_open(ctx, e, out);
}

}  // namespace dltrace::viewer

// Lazy-binding deaths: an object dlopen'ed with RTLD_LAZY loads even when a function it calls is
// defined nowhere in its scope; ld.so binds the PLT slot at the first call (_dl_fixup), and when
// nothing defines it prints "symbol lookup error: OBJ: undefined symbol: f" and _exit(127)s, with
// no atexit handler and no signal (loader-rules.md §3). Predicted offline from the bindings.
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>

#include <algorithm>

#include "analysis/explain.h"
#include "analysis/symbol_bindings.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

// Whether the object's own file asks for eager binding (-z now): then RTLD_LAZY changes nothing.
bool binds_now(const ElfFile& file) {
  return (file.flags & DF_BIND_NOW) || (file.flags_1 & DF_1_NOW);
}

// A shared object on disk, near the program's own objects, that exports `symbol`: what the
// object should have been linked against. Bounded: the directories of the non-system objects
// of the trace, a few hundred files at most.
std::string provider_on_disk(ExplainContext& ctx, std::string_view symbol) {
  const TraceModel& m = ctx.model();
  std::vector<std::string> dirs;
  for (const ObjectRecord* o : m.objects_by_load()) {
    const std::string path = m.file_path(*o);
    if (path.empty() || is_system_path(path)) continue;
    std::string dir = path.substr(0, path.rfind('/'));
    if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
  }
  size_t looked = 0;
  for (const std::string& dir : dirs) {
    DIR* d = opendir(dir.c_str());
    if (!d) continue;
    std::vector<std::string> names;
    while (dirent* entry = readdir(d)) {
      std::string_view name = entry->d_name;
      if (name.find(".so") != std::string_view::npos) names.emplace_back(name);
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      if (++looked > 400) return {};
      const std::string path = fmt::format("{}/{}", dir, name);
      if (const ElfFile* f = ctx.elf().file(path);
          f && f->elf_type == ET_DYN && f->exported(symbol))
        return path;
    }
  }
  return {};
}

}  // namespace

void explain_lazy_bindings(ExplainContext& ctx, std::vector<Finding>& out) {
  const TraceModel& m = ctx.model();
  const ProcessInfo& p = ctx.reader().process();
  const bool no_end = p.end == format::EndKind::kRunning;
  const bool exit_127 =
      p.end == format::EndKind::kExit && p.end_code == 127 && p.end_via == format::kEndViaObserved;
  for (const ObjectRecord* o : m.objects_by_load()) {
    if (!o->opened_by) continue;
    auto opener = ctx.reader().event(o->opened_by);
    if (!opener || !is_open_call(opener->call) || (opener->effective_flags & RTLD_NOW)) continue;
    const ElfFile* file = ctx.file_of(*o);
    if (!file || binds_now(*file)) continue;
    // The scope as it was last: a later RTLD_GLOBAL load could still have provided it.
    const uint64_t last = o->unload_seq ? *o->unload_seq - 1 : UINT64_MAX;
    for (const SymbolBinding& b : bind_object(ctx.graph(), *o, last)) {
      if (b.to != format::kNoId || b.weak || b.relocations != ElfSymbol::kRelocJumpSlot) continue;
      Finding f;
      f.kind = "lazy-undefined-function";
      f.seq = opener->seq;
      f.severity = no_end || exit_127 ? Severity::kError : Severity::kWarning;
      f.fact("symbol", b.symbol);
      if (!b.version.empty()) f.fact("version", b.version);
      f.fact("object", std::string(m.path_of(*o)));
      f.title = fmt::format(
          "{} was opened with RTLD_LAZY and calls {}, which nothing in its "
          "scope defines: it will fail at the first call of {}",
          m.name_of(*o), b.symbol, b.symbol);
      f.evidence.push_back(fmt::format("opened by #{}: {} from {}", opener->seq,
                                       ctx.call_text(*opener), ctx.call_site(*opener)));
      f.evidence.push_back(fmt::format(
          "{} reaches {} through its PLT (a JUMP_SLOT relocation): under RTLD_LAZY ld.so binds it "
          "at the first call, and no object of {}'s scope exports it (dltrace bindings --for {} "
          "--symbol {})",
          m.name_of(*o), b.symbol, m.name_of(*o), m.name_of(*o), b.symbol));
      f.evidence.push_back(fmt::format(
          "at that call ld.so prints \"symbol lookup error: {}: undefined symbol: {}\" and ends "
          "the process with _exit(127): no atexit handler, no signal",
          m.path_of(*o), b.symbol));
      if (no_end)
        f.evidence.push_back(
            "the process ended without a recorded exit — consistent with ld.so's exit 127");
      else if (exit_127)
        f.evidence.push_back("the process exited with status 127 (observed by dltrace run)");
      else
        f.evidence.push_back(
            fmt::format("the process {}: the function was not called this time", end_text(p)));
      if (std::string provider = provider_on_disk(ctx, b.symbol); !provider.empty()) {
        f.fact("provider", provider);
        f.evidence.push_back(fmt::format("{} exports {}", provider, b.symbol));
        f.fixes.push_back({fmt::format("link {} against {} (it then comes in with {}'s group)",
                                       m.name_of(*o), basename_of(provider), m.name_of(*o)),
                           ""});
      } else {
        f.fixes.push_back(
            {fmt::format("link {} against the library that defines {}", m.name_of(*o), b.symbol),
             ""});
      }
      f.fixes.push_back({fmt::format("open it with RTLD_NOW (or link it with -Wl,-z,now) so that "
                                     "the missing symbol fails the dlopen, where it can be "
                                     "handled, instead of killing the process later"),
                         ""});
      out.push_back(std::move(f));
    }
  }
}

}  // namespace dltrace::viewer

// An undefined symbol whose definition exists under another spelling or out of ld.so's sight:
// the other C++ ABI, C++ mangling instead of extern "C" (and the reverse), another symbol
// version, hidden or local. Each cause has its own fix; none of them is RTLD_GLOBAL, since no
// object exports the name that was asked for.
#include <elf.h>

#include <algorithm>

#include "analysis/cxx_names.h"
#include "analysis/explain.h"
#include "analysis/library_search.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

std::string base_name(std::string_view path) {
  return std::string(basename_of(path));
}

// "greet(std::string const&) (_Z5greetRKSs)" for a C++ name, the name itself otherwise.
std::string shown(std::string_view symbol) {
  std::string readable = demangle(symbol);
  return readable == symbol ? std::string(symbol) : fmt::format("{} ({})", readable, symbol);
}

// A dynamic-list glob for a C API: "lua_pushinteger" -> "lua_*".
std::string api_glob(std::string_view symbol) {
  size_t underscore = symbol.find('_', 1);
  if (underscore == std::string_view::npos || underscore > 12) return std::string(symbol);
  return fmt::format("{}*", symbol.substr(0, underscore + 1));
}

const char* kNoFlagFix =
    "note: RTLD_GLOBAL or a dltrace override cannot fix this: no loaded object exports the name "
    "that was asked for, and flags do not change what an object exports";

// "plugin.so needs" for a dlopen's relocation, "host looked up ... through the handle of" for
// dlsym: who asked.
std::string asker(ExplainContext& ctx, const format::EventSlot& e, std::string_view needer) {
  if (is_sym_call(e.call)) {
    const ObjectRecord* c = ctx.reader().object(e.caller_object);
    return fmt::format("{} looked up", c ? ctx.model().name_of(*c) : std::string("the caller"));
  }
  return fmt::format("{} needs", base_name(needer));
}

void explain_cxx_abi(ExplainContext& ctx, const format::EventSlot& e, std::string_view symbol,
                     std::string_view needer, const NearMiss& miss, const NearMissPlace& place,
                     Finding& f) {
  const std::string wanted = demangle(symbol);
  const std::string defined = demangle(miss.symbol);
  const bool library_abi = uses_cxx11_abi(wanted) != uses_cxx11_abi(defined);
  f.kind = "undefined-symbol-cxx-abi";
  f.title = fmt::format(
      "{} {}, which {} defines only under {}", asker(ctx, e, needer), wanted, place.name,
      library_abi ? "the other C++ library ABI (_GLIBCXX_USE_CXX11_ABI)" : "another ABI tag");
  f.evidence.push_back(fmt::format("asked for: {}", shown(symbol)));
  f.evidence.push_back(
      fmt::format("{} ({}) exports: {}", place.name, place.path, shown(miss.symbol)));
  const std::string user = is_sym_call(e.call) ? std::string("the caller") : base_name(needer);
  if (library_abi) {
    const bool user_old = !uses_cxx11_abi(wanted);
    f.fact("abi_asked", user_old ? "old" : "cxx11");
    f.fact("abi_defined", user_old ? "cxx11" : "old");
    f.evidence.push_back(fmt::format(
        "the two names are the same function; they differ only in libstdc++'s dual ABI: {} was "
        "compiled with {} and {} with {}",
        user,
        user_old ? "_GLIBCXX_USE_CXX11_ABI=0 (the old std::string)"
                 : "the new std::string (std::__cxx11, the default since GCC 5)",
        place.name,
        user_old ? "the new std::string (std::__cxx11, the default since GCC 5)"
                 : "_GLIBCXX_USE_CXX11_ABI=0 (the old std::string)"));
    f.fixes.push_back(
        {user_old ? fmt::format("rebuild {} without -D_GLIBCXX_USE_CXX11_ABI=0 (or with =1), as "
                                "{} was built: both sides of a C++ interface must use the same "
                                "setting",
                                user, place.name)
                  : fmt::format("rebuild {} with -D_GLIBCXX_USE_CXX11_ABI=0, as {} was built: "
                                "both sides of a C++ interface must use the same setting",
                                user, place.name),
         ""});
    f.fixes.push_back({fmt::format("or rebuild {} with {}", place.name,
                                   user_old ? "-D_GLIBCXX_USE_CXX11_ABI=0"
                                            : "the default _GLIBCXX_USE_CXX11_ABI=1"),
                       ""});
  } else {
    f.evidence.push_back(
        "the two names are the same function and differ only in an ABI tag ([abi:...]): the two "
        "sides were compiled with different compilers, headers or ABI settings");
    f.fixes.push_back({fmt::format("rebuild {} and {} with the same compiler, C++ library "
                                   "headers and ABI flags",
                                   user, place.name),
                       ""});
  }
}

void explain_not_extern_c(ExplainContext& ctx, const format::EventSlot& e, std::string_view symbol,
                          std::string_view needer, const NearMiss& miss, const NearMissPlace& place,
                          Finding& f) {
  const std::string defined = demangle(miss.symbol);
  f.kind = "undefined-symbol-not-extern-c";
  f.title = fmt::format("{} the C name {}, but {} exports it only as the C++ function {}",
                        asker(ctx, e, needer), symbol, place.name, defined);
  f.evidence.push_back(
      fmt::format("{} ({}) exports {}: {} was compiled as C++ without extern \"C\", so its name is "
                  "mangled and a lookup of the plain name cannot find it",
                  place.name, place.path, shown(miss.symbol), symbol));
  f.fixes.push_back({fmt::format("declare {} extern \"C\" where {} defines it (extern \"C\" on the "
                                 "definition, or its declaration inside extern \"C\" {{ }} in "
                                 "the header the definition sees), and rebuild {}",
                                 symbol, place.name, place.name),
                     ""});
  if (is_sym_call(e.call))
    f.fixes.push_back(
        {fmt::format("or look up the mangled name: dlsym(handle, \"{}\")", miss.symbol), ""});
}

void explain_extern_c(ExplainContext& ctx, const format::EventSlot& e, std::string_view symbol,
                      std::string_view needer, const NearMiss& miss, const NearMissPlace& place,
                      Finding& f) {
  const std::string user = is_sym_call(e.call) ? std::string("the caller") : base_name(needer);
  f.kind = "undefined-symbol-extern-c";
  f.title = fmt::format("{} the C++ function {}, but {} defines {} as a C function (extern \"C\")",
                        asker(ctx, e, needer), demangle(symbol), place.name, miss.symbol);
  f.evidence.push_back(fmt::format("asked for: {}", shown(symbol)));
  f.evidence.push_back(fmt::format(
      "{} ({}) exports the plain name {}: it was compiled with extern \"C\", and {} was "
      "compiled with a declaration without it",
      place.name, place.path, miss.symbol, user));
  f.fixes.push_back(
      {fmt::format("declare {} extern \"C\" where {} uses it (the declaration inside extern \"C\" "
                   "{{ }}, as in the library's header), and rebuild {}",
                   miss.symbol, user, user),
       ""});
}

void explain_other_version(ExplainContext& ctx, const format::EventSlot& e, std::string_view symbol,
                           std::string_view version, std::string_view needer, const NearMiss& miss,
                           const NearMissPlace& place, Finding& f) {
  const std::string asked =
      version.empty() ? std::string(symbol) : fmt::format("{}@{}", symbol, version);
  const std::string has = miss.version.empty() ? std::string("without a version")
                                               : fmt::format("only as {}@{}", symbol, miss.version);
  f.kind = "undefined-symbol-other-version";
  f.fact("defined_version", miss.version);
  f.title =
      fmt::format("{} {}, which {} exports {}", asker(ctx, e, needer), asked, place.name, has);
  std::string versions;
  for (size_t i = 1; i < place.file->version_definitions.size(); ++i)
    versions += (versions.empty() ? "" : ", ") + place.file->version_definitions[i];
  f.evidence.push_back(fmt::format("{} ({}) defines the versions: {}", place.name, place.path,
                                   versions.empty() ? std::string("none") : versions));
  if (version.empty())
    f.evidence.push_back(fmt::format(
        "{}@{} is not the default version (name@VER, not name@@VER): it is kept for programs "
        "linked against an older {}, and an unversioned lookup does not bind to it",
        symbol, miss.version, place.name));
  else
    f.evidence.push_back(
        fmt::format("{} was built against a {} that defined {}@{}; the one that "
                    "was loaded does not",
                    is_sym_call(e.call) ? std::string("the caller") : base_name(needer), place.name,
                    symbol, version));
  // A copy on disk that has the version asked for.
  std::string good;
  for (const auto& path : find_on_disk(place.name, ctx.model())) {
    if (path == place.path) continue;
    if (const ElfFile* other = ctx.elf().file(path); other && other->exported(symbol, version)) {
      good = path;
      break;
    }
  }
  if (!good.empty()) {
    f.fact("candidate", good);
    f.evidence.push_back(fmt::format("another copy, {}, exports {}", good, asked));
    const std::string dir = good.substr(0, good.rfind('/'));
    // A DT_RPATH without DT_RUNPATH is searched before LD_LIBRARY_PATH.
    const ElfFile* user = is_sym_call(e.call) ? nullptr : ctx.elf().file(std::string(needer));
    const bool rpath_first = user && user->rpath && !user->runpath;
    f.fixes.push_back(
        {rpath_first ? fmt::format("make {} the copy that is loaded: {} finds the other one "
                                   "through its DT_RPATH first, so point that at {}",
                                   good, base_name(needer), dir)
                     : fmt::format("make {} the copy that is loaded: LD_LIBRARY_PATH={} (or an "
                                   "RPATH/RUNPATH to that directory)",
                                   good, dir),
         ""});
  }
  f.fixes.push_back(
      {fmt::format("{}rebuild {} against the {} that is deployed ({}), so that it "
                   "asks for the version that file has",
                   good.empty() ? "" : "or ",
                   is_sym_call(e.call) ? std::string("the caller") : base_name(needer), place.name,
                   place.path),
       ""});
}

// Defined, but out of .dynsym or not exported from it: hidden, static, or an executable
// without --export-dynamic.
void explain_not_exported(ExplainContext& ctx, std::string_view symbol, std::string_view needer,
                          const NearMiss& miss, const NearMissPlace& place, Finding& f) {
  const bool exe = place.object && ctx.model().is_main_program(*place.object);
  f.kind = "symbol-not-exported";
  f.title = fmt::format("{} needs {}, which {} {} defines but does not export", base_name(needer),
                        shown(symbol), exe ? "the executable" : "the library", place.name);
  const char* what = miss.type == STT_FUNC || miss.type == STT_GNU_IFUNC ? "function" : "object";
  if (miss.kind == NearMissKind::kLinkerLocal && place.file->exported(symbol) == nullptr &&
      !place.file->dynamic_entries(symbol).empty())
    f.evidence.push_back(
        fmt::format("{} is in {}'s dynamic symbol table, but hidden or local", symbol, place.name));
  else
    f.evidence.push_back(fmt::format(
        "{} is in {}'s static symbol table (.symtab, {} at {:#x}) but not in its dynamic symbol "
        "table (.dynsym), the only one ld.so searches",
        symbol, place.name, what, miss.value));
  if (miss.kind == NearMissKind::kNotInDynamic && exe) {
    f.fact("visibility", "not-exported");
    f.evidence.push_back(
        "the executable was linked without -Wl,--export-dynamic: a program that links a "
        "library statically (e.g. Lua) must export its API for the modules it loads");
    f.fixes.push_back({fmt::format("link {} with -Wl,--export-dynamic (gcc -rdynamic; CMake: "
                                   "set_target_properties({} PROPERTIES ENABLE_EXPORTS ON))",
                                   place.name, place.name),
                       ""});
    // ld.so stops at the first missing symbol; the module may need more of the same API.
    std::vector<std::string> hidden{std::string(symbol)};
    std::vector<std::string> globs{api_glob(symbol)};
    if (const ElfFile* module = ctx.elf().file(std::string(needer))) {
      for (const auto& u : module->dynamic_symbols) {
        if (u.defined || u.name == symbol || !place.file->static_definition(u.name) ||
            place.file->exported(u.name))
          continue;
        hidden.push_back(u.name);
        std::string glob = api_glob(u.name);
        if (std::find(globs.begin(), globs.end(), glob) == globs.end()) globs.push_back(glob);
      }
    }
    if (hidden.size() > 1) {
      std::string list;
      for (size_t i = 0; i < hidden.size() && i < 8; ++i) list += (i ? ", " : "") + hidden[i];
      if (hidden.size() > 8) list += fmt::format(", ... ({} in all)", hidden.size());
      f.evidence.push_back(fmt::format("{} needs {} symbols the executable hides: {}",
                                       base_name(needer), hidden.size(), list));
    }
    std::string entries;
    for (const auto& g : globs) entries += g + "; ";
    f.fixes.push_back({fmt::format("or export only the API the modules use: "
                                   "-Wl,--dynamic-list=api.list with api.list containing "
                                   "{{ {}}};",
                                   entries),
                       ""});
  } else if (miss.kind == NearMissKind::kSourceLocal) {
    f.fact("visibility", "static");
    f.evidence.push_back(fmt::format(
        "{} is local to the source file that defines it (declared static, or in an anonymous "
        "namespace): it has internal linkage and never leaves that file",
        symbol));
    f.fixes.push_back({fmt::format("give {} external linkage in {}'s source (remove static, or "
                                   "move it out of the anonymous namespace), and rebuild {}",
                                   symbol, place.name, place.name),
                       ""});
  } else {
    f.fact("visibility", "hidden");
    f.evidence.push_back(
        fmt::format("{} made it local when it was linked: hidden visibility (-fvisibility=hidden, "
                    "__attribute__((visibility(\"hidden\")))) or a version script's local:",
                    place.name));
    f.fixes.push_back({fmt::format("export {} from {}: mark its declaration "
                                   "__attribute__((visibility(\"default\"))) and rebuild {}",
                                   symbol, place.name, place.name),
                       ""});
    f.fixes.push_back({fmt::format("if {} is linked with a version script "
                                   "(-Wl,--version-script), list {} under global: there",
                                   place.name, symbol),
                       ""});
  }
}

}  // namespace

bool explain_near_miss(ExplainContext& ctx, const format::EventSlot& e, std::string_view symbol,
                       std::string_view version, std::string_view needer,
                       const std::vector<NearMissPlace>& places, Finding& f) {
  const NearMissPlace* place = nullptr;
  std::vector<NearMiss> misses;
  for (const NearMissPlace& p : places) {
    if (!p.file) continue;
    misses = ctx.near_misses().find(*p.file, symbol, version);
    if (!misses.empty()) {
      place = &p;
      break;
    }
  }
  if (!place) return false;
  const NearMiss& miss = misses.front();
  f.fact("needed_by", std::string(needer));
  f.fact("defined_in", place->path);
  f.fact("near_miss", std::string(near_miss_kind_name(miss.kind)));
  f.fact("definition", miss.symbol);
  if (is_cxx_name(symbol)) f.fact("symbol_demangled", demangle(symbol));
  if (is_cxx_name(miss.symbol)) f.fact("definition_demangled", demangle(miss.symbol));
  switch (miss.kind) {
    case NearMissKind::kCxxAbi:
      explain_cxx_abi(ctx, e, symbol, needer, miss, *place, f);
      break;
    case NearMissKind::kNotExternC:
      explain_not_extern_c(ctx, e, symbol, needer, miss, *place, f);
      break;
    case NearMissKind::kExternC:
      explain_extern_c(ctx, e, symbol, needer, miss, *place, f);
      break;
    case NearMissKind::kOtherVersion:
      explain_other_version(ctx, e, symbol, version, needer, miss, *place, f);
      break;
    case NearMissKind::kLinkerLocal:
    case NearMissKind::kSourceLocal:
    case NearMissKind::kNotInDynamic:
      explain_not_exported(ctx, symbol, needer, miss, *place, f);
      break;
  }
  if (!place->neighbour_of.empty()) {
    // Once the names agree, the object must also name the library again.
    for (Fix& fix : f.fixes)
      fix.text += fmt::format("; then relink {} with {} so that it is loaded with it again",
                              place->neighbour_of, place->path);
  }
  if (!place->neighbour_of.empty())
    f.evidence.push_back(fmt::format(
        "{} is not loaded and not a dependency of {}: it sits next to it ({}), and the linker "
        "drops (--as-needed) a library that defines none of the names the object asks for",
        place->name, place->neighbour_of, place->path));
  else if (!place->object)
    f.evidence.push_back(fmt::format(
        "{} was loaded by this dlopen and unloaded again when it failed, so the trace does not "
        "list it; it was read from {}",
        place->name, place->path));
  else if (!place->in_scope)
    f.evidence.push_back(fmt::format("{} is not in the scope of this lookup either", place->name));
  for (size_t i = 1; i < misses.size() && i < 4; ++i)
    f.evidence.push_back("also: " + near_miss_sentence(misses[i], place->name, symbol));
  f.evidence.push_back(kNoFlagFix);
  return true;
}

}  // namespace dltrace::viewer

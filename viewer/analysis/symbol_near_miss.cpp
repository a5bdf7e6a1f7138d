#include "analysis/symbol_near_miss.h"

#include <elf.h>

#include "analysis/cxx_names.h"
#include "fmt/format.h"

namespace dltrace::viewer {

std::string_view near_miss_kind_name(NearMissKind kind) {
  switch (kind) {
    case NearMissKind::kCxxAbi:
      return "cxx-abi";
    case NearMissKind::kNotExternC:
      return "not-extern-c";
    case NearMissKind::kExternC:
      return "extern-c";
    case NearMissKind::kOtherVersion:
      return "other-version";
    case NearMissKind::kLinkerLocal:
      return "hidden";
    case NearMissKind::kSourceLocal:
      return "static";
    case NearMissKind::kNotInDynamic:
      return "not-in-dynsym";
  }
  return "unknown";
}

const NearMissFinder::Index& NearMissFinder::index_of(const ElfFile& file) {
  auto [it, fresh] = indexes_.try_emplace(&file);
  if (!fresh) return it->second;
  // Demangling every exported C++ name once per file: only files a failed lookup looks into.
  for (const ElfSymbol& s : file.dynamic_symbols) {
    if (!s.exported() || !is_cxx_name(s.name)) continue;
    const std::string demangled = demangle(s.name);
    if (demangled == s.name) continue;
    it->second.by_abi_neutral.try_emplace(abi_neutral(demangled), s.name);
    if (std::string c = plain_function_name(demangled); !c.empty())
      it->second.by_c_name.try_emplace(std::move(c), s.name);
  }
  return it->second;
}

std::vector<NearMiss> NearMissFinder::find(const ElfFile& file, std::string_view name,
                                           std::string_view version) {
  std::vector<NearMiss> out;
  if (file.exported(name, version)) return out;
  auto add = [&](NearMissKind kind, const ElfSymbol& s) {
    out.push_back({kind, &file, s.name, s.version, s.type, s.value});
  };
  // The same name: another version, or defined and not exported.
  bool in_dynamic = false;
  for (const ElfSymbol* s : file.dynamic_entries(name)) {
    if (!s->defined) continue;
    in_dynamic = true;
    if (!s->exported())
      add(NearMissKind::kLinkerLocal, *s);
    else if (version.empty() ? !s->default_version : s->version != version)
      add(NearMissKind::kOtherVersion, *s);
  }
  if (const ElfSymbol* s = file.static_definition(name); s && !in_dynamic) {
    add(s->bind != STB_LOCAL ? NearMissKind::kNotInDynamic
        : s->source_local    ? NearMissKind::kSourceLocal
                             : NearMissKind::kLinkerLocal,
        *s);
  }
  // Another spelling of the same function.
  const Index& index = index_of(file);
  if (is_cxx_name(name)) {
    const std::string demangled = demangle(name);
    if (demangled != name) {
      if (auto it = index.by_abi_neutral.find(abi_neutral(demangled));
          it != index.by_abi_neutral.end() && it->second != name) {
        if (const ElfSymbol* s = file.exported(it->second)) add(NearMissKind::kCxxAbi, *s);
      }
      if (std::string c = plain_function_name(demangled); !c.empty())
        if (const ElfSymbol* s = file.exported(c)) add(NearMissKind::kExternC, *s);
    }
  } else if (auto it = index.by_c_name.find(std::string(name)); it != index.by_c_name.end()) {
    if (const ElfSymbol* s = file.exported(it->second)) add(NearMissKind::kNotExternC, *s);
  }
  return out;
}

std::string near_miss_sentence(const NearMiss& miss, std::string_view who,
                               std::string_view wanted) {
  switch (miss.kind) {
    case NearMissKind::kCxxAbi:
      return fmt::format("{} defines {} as {} ({}): the same function under another C++ ABI", who,
                         demangle(wanted), demangle(miss.symbol), miss.symbol);
    case NearMissKind::kNotExternC:
      return fmt::format("{} exports {}: {} compiled as C++ (mangled), not extern \"C\"", who,
                         miss.symbol, wanted);
    case NearMissKind::kExternC:
      return fmt::format(
          "{} exports {} as a C name (extern \"C\"), the lookup asked for the C++ "
          "name {}",
          who, miss.symbol, wanted);
    case NearMissKind::kOtherVersion:
      return fmt::format("{} defines {}@{} (another version)", who, miss.symbol,
                         miss.version.empty() ? "<unversioned>" : miss.version);
    case NearMissKind::kLinkerLocal:
      return fmt::format("{} defines {} but does not export it (hidden or local)", who, wanted);
    case NearMissKind::kSourceLocal:
      return fmt::format("{} defines {} as a static (file-local) symbol", who, wanted);
    case NearMissKind::kNotInDynamic:
      return fmt::format(
          "{} defines {} in its static symbol table only (.symtab), not in the "
          "dynamic one that lookups search",
          who, wanted);
  }
  return {};
}

}  // namespace dltrace::viewer

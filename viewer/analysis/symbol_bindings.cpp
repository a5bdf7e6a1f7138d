#include "analysis/symbol_bindings.h"

#include <elf.h>

namespace dltrace::viewer {
namespace {

// check_match's filter (dl-lookup.c): the symbol kinds a lookup can return.
bool allowed_type(uint8_t type) {
  return type == STT_NOTYPE || type == STT_OBJECT || type == STT_FUNC || type == STT_COMMON ||
         type == STT_TLS || type == STT_GNU_IFUNC;
}

// Whether `def` (an entry of `file`'s .dynsym) satisfies a reference to `version` (of a
// relocation of kinds `relocations`), as check_match decides.
bool matches(const ElfFile& file, const ElfSymbol& def, std::string_view version,
             uint8_t relocations) {
  if (def.bind != STB_GLOBAL && def.bind != STB_WEAK && def.bind != STB_GNU_UNIQUE) return false;
  if (!allowed_type(def.type)) return false;
  // An undefined symbol with a value is the executable's canonical PLT address of a function:
  // a definition for data references (pointer equality), not for the PLT's own calls.
  if (!def.defined && (def.value == 0 || relocations == ElfSymbol::kRelocJumpSlot)) return false;
  if (def.value == 0 && def.section != SHN_ABS && def.type != STT_TLS) return false;
  if (file.version_definitions.empty()) return true;  // no versions: any reference matches
  if (version.empty()) return def.default_version;
  // A versioned reference: that version, or an unversioned (base) definition.
  return def.version == version || (def.version.empty() && def.default_version);
}

}  // namespace

uint64_t relocation_seq(const ObjectRecord& object) {
  return object.opened_by ? object.opened_by : object.load_seq;
}

std::vector<SymbolBinding> bind_object(const ScopeGraph& graph, const ObjectRecord& object,
                                       uint64_t seq) {
  std::vector<SymbolBinding> out;
  const TraceModel& model = graph.model();
  const ElfFile* file = graph.elf().for_object(object, model.file_path(object)).file;
  if (!file) return out;
  const std::vector<uint32_t> order = graph.search_order(object.id, seq);
  std::vector<std::pair<uint32_t, const ElfFile*>> scope;
  scope.reserve(order.size());
  for (uint32_t id : order) {
    const ObjectRecord* o = model.reader().object(id);
    if (!o || (o->flags & format::kObjectVdso)) continue;
    if (const ElfFile* f = graph.elf().for_object(*o, model.file_path(*o)).file)
      scope.emplace_back(id, f);
  }
  const bool executable = model.is_main_program(object);
  for (const ElfSymbol& ref : file->dynamic_symbols) {
    if (!ref.relocations || ref.bind == STB_LOCAL) continue;
    SymbolBinding b;
    b.from = object.id;
    b.symbol = ref.name;
    b.version = ref.version;
    b.relocations = ref.relocations;
    b.weak = ref.bind == STB_WEAK && !ref.defined;
    // A protected definition binds the object's own references to itself.
    if (ref.defined && ref.visibility == STV_PROTECTED) {
      b.to = object.id;
      b.to_version = ref.version;
      b.protected_symbol = true;
      out.push_back(std::move(b));
      continue;
    }
    // A copy relocation looks past the executable for the data it copies.
    const bool copy = executable && (ref.relocations & ElfSymbol::kRelocCopy);
    for (const auto& [id, f] : scope) {
      if (copy && id == object.id) continue;
      for (const ElfSymbol* def : f->dynamic_entries(ref.name)) {
        if (!matches(*f, *def, ref.version, ref.relocations)) continue;
        b.to = id;
        b.to_version = def->version;
        break;
      }
      if (b.to != format::kNoId) break;
    }
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace dltrace::viewer

#include "analysis/symbolizer.h"

#include <elfutils/libdwfl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <utility>

#include "analysis/cxx_names.h"
#include "analysis/file_kind.h"

namespace dltrace::viewer {
namespace {

// The function's name as a user wrote it; dynamic symbols carry their version
// ("__libc_start_main@@GLIBC_2.34"), which is dropped.
std::string function_name(const char* raw) {
  if (raw == nullptr) return {};
  const std::string_view versioned(raw);
  return demangle(versioned.substr(0, versioned.find('@')));
}

std::string to_hex(const unsigned char* bytes, int n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) {
    s += kDigits[bytes[i] >> 4];
    s += kDigits[bytes[i] & 15];
  }
  return s;
}

// elfutils' ranking of bindings (dwfl_module_addrsym.c): higher wins among equals.
uint8_t binding_rank(const GElf_Sym& sym) {
  switch (GELF_ST_BIND(sym.st_info)) {
    case STB_GLOBAL:
      return 3;
    case STB_WEAK:
      return 2;
    case STB_LOCAL:
      return 1;
    default:
      return 0;
  }
}

}  // namespace

Dwfl* begin_offline_session() {
  static char* debuginfo_path = nullptr;
  static const Dwfl_Callbacks callbacks = {
      .find_elf = dwfl_build_id_find_elf,
      .find_debuginfo = dwfl_standard_find_debuginfo,
      .section_address = dwfl_offline_section_address,
      .debuginfo_path = &debuginfo_path,
  };
  return dwfl_begin(&callbacks);
}

// The rules below are those of elfutils' __libdwfl_addrsym (dwfl_module_addrsym.c) restated
// for a sorted table: it scans the global symbols in table order, then, only if none of them
// matched (and no global label sits exactly at the address), the locals. A sized symbol
// containing the address beats any sizeless one (an assembly label); among sized ones the one
// starting closest wins, then the better binding, then the smaller size, then the first in the
// table. Without a sized match, the answer is the last label in scan order at the highest end
// of all the symbols scanned at or below the address, if it lies in the address's section.
FunctionTable::FunctionTable(Dwfl_Module* mod) : mod_(mod) {
  const int count = dwfl_module_getsymtab(mod);
  const int first_global = count < 0 ? -1 : dwfl_module_getsymtab_first_global(mod);
  if (first_global < 0) {  // no symbol table: no address has a function
    exact_ = true;
    return;
  }
  GElf_Addr main_bias = 0;
  Elf* elf = dwfl_module_getelf(mod, &main_bias);
  GElf_Ehdr ehdr_mem;
  const GElf_Ehdr* ehdr = elf ? gelf_getehdr(elf, &ehdr_mem) : nullptr;
  // Elsewhere elfutils may resolve function descriptors or mask address bits, and relocates
  // ET_REL sections one by one: leave those to it.
  if (ehdr == nullptr || (ehdr->e_type != ET_DYN && ehdr->e_type != ET_EXEC) ||
      (ehdr->e_machine != EM_X86_64 && ehdr->e_machine != EM_386 && ehdr->e_machine != EM_AARCH64))
    return;

  // Sections as elfutils' find_section sees them (a label must be in the address's section):
  // the main file's allocated ones by start, ties in section order; none if any is unreadable.
  size_t shstrndx = 0;
  if (elf_getshdrstrndx(elf, &shstrndx) == 0) {
    for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn != nullptr; scn = elf_nextscn(elf, scn)) {
      GElf_Shdr shdr_mem;
      const GElf_Shdr* shdr = gelf_getshdr(scn, &shdr_mem);
      if (shdr == nullptr ||
          ((shdr->sh_flags & SHF_ALLOC) && elf_strptr(elf, shstrndx, shdr->sh_name) == nullptr)) {
        sections_.clear();
        break;
      }
      if (shdr->sh_flags & SHF_ALLOC) {
        const uint64_t start = shdr->sh_addr + main_bias;
        sections_.push_back({start, start + shdr->sh_size, elf_ndxscn(scn)});
      }
    }
    std::stable_sort(sections_.begin(), sections_.end(),
                     [](const Section& a, const Section& b) { return a.start < b.start; });
  }

  const int global_start = first_global == 0 ? 1 : first_global;
  has_locals_ = first_global > 1;
  for (int i = 1; i < count; ++i) {
    GElf_Sym sym;
    GElf_Addr value = 0;
    GElf_Word shndx = 0;
    Elf* sym_elf = nullptr;
    Dwarf_Addr bias = 0;
    const char* name = dwfl_module_getsym_info(mod, i, &sym, &value, &shndx, &sym_elf, &bias);
    const int type = name ? GELF_ST_TYPE(sym.st_info) : STT_NOTYPE;
    if (name == nullptr || name[0] == '\0' || sym.st_shndx == SHN_UNDEF || type == STT_SECTION ||
        type == STT_FILE || type == STT_TLS)
      continue;
    // Absolute and common symbols and those of non-allocated sections (shndx -1) keep their
    // value; any other difference means elfutils rewrote it, and its rules then differ.
    const bool unbiased =
        sym.st_shndx == SHN_ABS || sym.st_shndx == SHN_COMMON || shndx == GElf_Word(-1);
    if (value != (unbiased ? sym.st_value : sym.st_value + bias) || value + sym.st_size < value)
      return;  // exact_ stays false
    Symbol s{.value = value,
             .size = sym.st_size,
             .name = name,
             .index = i,
             .binding = binding_rank(sym),
             .local_pass = i < global_start,
             .special = shndx >= SHN_LORESERVE};
    reach_[s.local_pass].emplace_back(s.value, s.end());
    (s.size != 0 ? sized_ : sizeless_).push_back(s);
  }
  std::sort(sized_.begin(), sized_.end(), [](const Symbol& a, const Symbol& b) {
    return std::pair{a.value, a.index} < std::pair{b.value, b.index};
  });
  uint64_t reach = 0;
  for (const Symbol& s : sized_) sized_reach_.push_back(reach = std::max(reach, s.end()));
  std::sort(sizeless_.begin(), sizeless_.end(), [](const Symbol& a, const Symbol& b) {
    return std::tuple{a.value, a.local_pass, a.index} < std::tuple{b.value, b.local_pass, b.index};
  });
  for (auto& pass : reach_) {
    std::sort(pass.begin(), pass.end());
    uint64_t max_end = 0;
    for (auto& [value, end] : pass) end = max_end = std::max(max_end, end);
  }
  exact_ = true;
}

const FunctionTable::Symbol* FunctionTable::closest_containing(
    const std::vector<const Symbol*>& containing, bool local) {
  const Symbol* best = nullptr;
  for (const Symbol* s : containing) {
    if (s->local_pass != local) continue;
    if (best == nullptr || best->value < s->value || best->binding < s->binding ||
        (best->value == s->value && ((best->size > s->size && best->binding <= s->binding) ||
                                     (best->size >= s->size && best->binding < s->binding))))
      best = s;
  }
  return best;
}

uint64_t FunctionTable::reach(bool local, uint64_t addr) const {
  const auto& pass = reach_[local];
  auto it = std::upper_bound(pass.begin(), pass.end(), addr,
                             [](uint64_t a, const auto& entry) { return a < entry.first; });
  return it == pass.begin() ? 0 : std::prev(it)->second;
}

size_t FunctionTable::section_of(uint64_t addr) const {
  // elfutils' binary search, kept as is: sections may overlap (.tbss), and a section's end
  // counts as inside it unless the next one starts there.
  size_t lo = 0, hi = sections_.size();
  while (lo < hi) {
    const size_t mid = (lo + hi) / 2;
    if (addr < sections_[mid].start) {
      hi = mid;
    } else if (addr > sections_[mid].end) {
      lo = mid + 1;
    } else {
      const bool next = addr == sections_[mid].end && mid + 1 < sections_.size() &&
                        addr == sections_[mid + 1].start;
      return sections_[mid + (next ? 1 : 0)].index;
    }
  }
  return SHN_UNDEF;
}

FunctionTable::Match FunctionTable::find(uint64_t addr) const {
  if (!exact_) {
    GElf_Off offset = 0;
    GElf_Sym sym;
    const char* name = dwfl_module_addrinfo(mod_, addr, &offset, &sym, nullptr, nullptr, nullptr);
    return {name, name ? offset : 0};
  }
  // Sized symbols containing addr, in table order: walk down from the last one starting at or
  // below it while an earlier one could still reach past it.
  std::vector<const Symbol*> containing;
  auto it = std::upper_bound(sized_.begin(), sized_.end(), addr,
                             [](uint64_t a, const Symbol& s) { return a < s.value; });
  for (size_t k = size_t(it - sized_.begin()); k-- > 0 && sized_reach_[k] > addr;)
    if (sized_[k].end() > addr) containing.push_back(&sized_[k]);
  std::sort(containing.begin(), containing.end(),
            [](const Symbol* a, const Symbol* b) { return a->index < b->index; });
  if (const Symbol* s = closest_containing(containing, false)) return {s->name, addr - s->value};

  auto by_value = [](const Symbol& s, uint64_t v) { return s.value < v; };
  auto at = [&](uint64_t v) {
    auto first = std::lower_bound(sizeless_.begin(), sizeless_.end(), v, by_value);
    auto last = first;
    while (last != sizeless_.end() && last->value == v) ++last;
    return std::pair{first, last};
  };
  const auto [exact_first, exact_last] = at(addr);
  const bool global_label_at_addr =
      std::any_of(exact_first, exact_last, [](const Symbol& s) { return !s.local_pass; });
  const bool locals = has_locals_ && !global_label_at_addr;
  if (locals) {
    if (const Symbol* s = closest_containing(containing, true)) return {s->name, addr - s->value};
  }

  const uint64_t label = std::max(reach(false, addr), locals ? reach(true, addr) : 0);
  const auto [first, last] = at(label);
  for (auto s = last; s != first;) {
    --s;
    if (s->local_pass && !locals) continue;
    if (s->special ? label == addr : section_of(label) == section_of(addr))
      return {s->name, addr - label};
  }
  return {};
}

struct Symbolizer::Module {
  Dwfl* dwfl = nullptr;
  Dwfl_Module* mod = nullptr;
  std::unique_ptr<FunctionTable> functions;  // built on the first lookup
  std::string problem;
  ~Module() {
    if (dwfl) dwfl_end(dwfl);
  }
};

Symbolizer::Symbolizer(std::string main_program) : main_program_(std::move(main_program)) {}
Symbolizer::~Symbolizer() = default;

Symbolizer::Module& Symbolizer::module_for(const ObjectRecord& object) {
  auto [it, inserted] = modules_.try_emplace(object.id);
  if (!inserted) return *it->second;
  it->second = std::make_unique<Module>();
  Module& m = *it->second;
  if (object.flags & format::kObjectVdso) {
    m.problem = "the vDSO has no file on disk";
    return m;
  }
  const std::string& path = object.path.empty() ? main_program_ : object.path;
  if (path.empty() || path[0] != '/') {
    m.problem = "no absolute path recorded";
    return m;
  }
  m.dwfl = begin_offline_session();
  if (m.dwfl == nullptr) {
    m.problem = dwfl_errmsg(-1);
    return m;
  }
  // The path comes from the trace: elfutils gets a descriptor of a regular ELF file only (a
  // FIFO or a device named by a hostile trace must not block or feed it).
  auto opened = open_regular_file(path);
  if (!opened.ok()) {
    m.problem = std::string(opened.status().message());
    return m;
  }
  unsigned char magic[SELFMAG] = {};
  if (opened->size > kMaxReadFileBytes ||
      pread(opened->fd, magic, sizeof magic, 0) != static_cast<ssize_t>(sizeof magic) ||
      memcmp(magic, ELFMAG, SELFMAG) != 0) {
    close(opened->fd);
    m.problem = fmt::format("{} is not an ELF file", path);
    return m;
  }
  dwfl_report_begin(m.dwfl);
  // base = l_addr with add_p_vaddr: the module's addresses are its file vaddrs + l_addr, as in
  // the traced process. On success elfutils owns the descriptor.
  m.mod = dwfl_report_elf(m.dwfl, path.c_str(), path.c_str(), opened->fd, object.base, true);
  dwfl_report_end(m.dwfl, nullptr, nullptr);
  if (m.mod == nullptr) {
    close(opened->fd);
    m.problem = fmt::format("cannot read {}: {}", path, dwfl_errmsg(-1));
    return m;
  }
  if (!object.build_id.empty()) {
    const unsigned char* bits = nullptr;
    GElf_Addr vaddr = 0;
    const int n = dwfl_module_build_id(m.mod, &bits, &vaddr);
    if (n > 0 && to_hex(bits, n) != object.build_id) {
      m.problem = fmt::format("{} changed since the trace was recorded (build-id {}, recorded {})",
                              path, to_hex(bits, n), object.build_id);
      m.mod = nullptr;
    }
  }
  return m;
}

const SymbolInfo& Symbolizer::lookup(const ObjectRecord& object, uint64_t ip, bool return_address) {
  const uint64_t addr = (return_address && ip > 0) ? ip - 1 : ip;
  auto [it, inserted] = cache_.try_emplace(std::pair{object.id, addr});
  if (!inserted) return it->second;
  SymbolInfo& info = it->second;
  Module& m = module_for(object);
  if (m.mod == nullptr) return info;
  if (!m.functions) m.functions = std::make_unique<FunctionTable>(m.mod);
  if (const FunctionTable::Match match = m.functions->find(addr); match.name != nullptr) {
    info.function = function_name(match.name);
    // Report the offset of the return address itself, as backtraces conventionally do.
    info.function_offset = match.offset + (addr != ip ? 1 : 0);
  }
  if (Dwfl_Line* line = dwfl_module_getsrc(m.mod, addr)) {
    int lineno = 0;
    if (const char* file = dwfl_lineinfo(line, nullptr, &lineno, nullptr, nullptr, nullptr)) {
      info.file = file;
      info.line = lineno;
    }
  }
  return info;
}

std::string Symbolizer::problem(uint32_t object_id) const {
  auto it = modules_.find(object_id);
  return it == modules_.end() ? std::string() : it->second->problem;
}

}  // namespace dltrace::viewer

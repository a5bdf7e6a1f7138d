#include "analysis/elf_file.h"

#include <elfutils/libdwelf.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "analysis/file_kind.h"
#include "fmt/format.h"

namespace dltrace::viewer {
namespace {

// Version index -> name, from SHT_GNU_verdef (definitions) and SHT_GNU_verneed (references).
struct VersionNames {
  absl::flat_hash_map<uint16_t, std::string> defined;
  absl::flat_hash_map<uint16_t, std::string> needed;
};

void read_dynamic(Elf* elf, Elf_Scn* scn, const GElf_Shdr& shdr, ElfFile& out) {
  Elf_Data* data = elf_getdata(scn, nullptr);
  if (!data || shdr.sh_entsize == 0) return;
  size_t count = shdr.sh_size / shdr.sh_entsize;
  for (size_t i = 0; i < count; ++i) {
    GElf_Dyn dyn;
    if (!gelf_getdyn(data, static_cast<int>(i), &dyn)) break;
    if (dyn.d_tag == DT_NULL) break;
    auto str = [&]() -> std::string_view {
      const char* s = elf_strptr(elf, shdr.sh_link, dyn.d_un.d_val);
      return s ? s : "";
    };
    switch (dyn.d_tag) {
      case DT_NEEDED:
        out.needed.emplace_back(str());
        break;
      case DT_SONAME:
        out.soname = std::string(str());
        break;
      case DT_RPATH:
        out.rpath = std::string(str());
        break;
      case DT_RUNPATH:
        out.runpath = std::string(str());
        break;
      case DT_FLAGS_1:
        out.flags_1 = dyn.d_un.d_val;
        break;
      case DT_FLAGS:
        out.flags = dyn.d_un.d_val;
        break;
      default:
        break;
    }
  }
}

void read_verdef(Elf* elf, Elf_Scn* scn, const GElf_Shdr& shdr, ElfFile& out, VersionNames& names) {
  Elf_Data* data = elf_getdata(scn, nullptr);
  if (!data) return;
  size_t offset = 0;
  for (size_t n = 0; n < shdr.sh_info && offset < data->d_size; ++n) {
    GElf_Verdef def;
    if (!gelf_getverdef(data, static_cast<int>(offset), &def)) break;
    GElf_Verdaux aux;
    if (def.vd_cnt > 0 && gelf_getverdaux(data, static_cast<int>(offset + def.vd_aux), &aux)) {
      const char* s = elf_strptr(elf, shdr.sh_link, aux.vda_name);
      std::string name = s ? s : "";
      names.defined[def.vd_ndx] = name;
      out.version_definitions.push_back(std::move(name));
    }
    if (def.vd_next == 0) break;
    offset += def.vd_next;
  }
}

void read_verneed(Elf* elf, Elf_Scn* scn, const GElf_Shdr& shdr, ElfFile& out,
                  VersionNames& names) {
  Elf_Data* data = elf_getdata(scn, nullptr);
  if (!data) return;
  size_t offset = 0;
  for (size_t n = 0; n < shdr.sh_info && offset < data->d_size; ++n) {
    GElf_Verneed need;
    if (!gelf_getverneed(data, static_cast<int>(offset), &need)) break;
    ElfVersionNeed entry;
    const char* file = elf_strptr(elf, shdr.sh_link, need.vn_file);
    entry.file = file ? file : "";
    size_t aux_offset = offset + need.vn_aux;
    for (size_t k = 0; k < need.vn_cnt; ++k) {
      GElf_Vernaux aux;
      if (!gelf_getvernaux(data, static_cast<int>(aux_offset), &aux)) break;
      const char* s = elf_strptr(elf, shdr.sh_link, aux.vna_name);
      std::string name = s ? s : "";
      names.needed[aux.vna_other] = name;
      entry.versions.push_back(std::move(name));
      if (aux.vna_next == 0) break;
      aux_offset += aux.vna_next;
    }
    out.version_needs.push_back(std::move(entry));
    if (need.vn_next == 0) break;
    offset += need.vn_next;
  }
}

// The relocation type that makes ld.so copy a definition into the executable (R_*_COPY).
uint32_t copy_relocation_type(uint16_t machine) {
  switch (machine) {
    case EM_X86_64:
      return R_X86_64_COPY;
    case EM_386:
      return R_386_COPY;
    case EM_AARCH64:
      return R_AARCH64_COPY;
    default:
      return UINT32_MAX;
  }
}

// The .dynsym indexes that the dynamic relocation sections (SHT_RELA/SHT_REL linked to the
// dynamic symbol table `dynsym_index`) refer to, with the kinds of their relocations
// (ElfSymbol::kReloc*). The PLT's section (.rela.plt, DT_JMPREL) holds the JUMP_SLOTs.
absl::flat_hash_map<uint32_t, uint8_t> relocated_symbols(Elf* elf, size_t dynsym_index,
                                                         uint16_t machine) {
  absl::flat_hash_map<uint32_t, uint8_t> out;
  size_t names = 0;
  elf_getshdrstrndx(elf, &names);
  const uint32_t copy_type = copy_relocation_type(machine);
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr) || (shdr.sh_type != SHT_RELA && shdr.sh_type != SHT_REL) ||
        shdr.sh_link != dynsym_index || shdr.sh_entsize == 0)
      continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data) continue;
    const char* section = elf_strptr(elf, names, shdr.sh_name);
    const bool plt = section && std::string_view(section).ends_with(".plt");
    const size_t count = shdr.sh_size / shdr.sh_entsize;
    for (size_t i = 0; i < count; ++i) {
      uint64_t info = 0;
      if (shdr.sh_type == SHT_RELA) {
        GElf_Rela rela;
        if (!gelf_getrela(data, static_cast<int>(i), &rela)) break;
        info = rela.r_info;
      } else {
        GElf_Rel rel;
        if (!gelf_getrel(data, static_cast<int>(i), &rel)) break;
        info = rel.r_info;
      }
      const uint32_t sym = static_cast<uint32_t>(GELF_R_SYM(info));
      if (sym == 0) continue;
      out[sym] |= plt                              ? ElfSymbol::kRelocJumpSlot
                  : GELF_R_TYPE(info) == copy_type ? ElfSymbol::kRelocCopy
                                                   : ElfSymbol::kRelocOther;
    }
  }
  return out;
}

void read_symbols(Elf* elf, Elf_Scn* scn, const GElf_Shdr& shdr, Elf_Data* versym,
                  const VersionNames& names, bool defined_only, std::vector<ElfSymbol>& out,
                  const absl::flat_hash_map<uint32_t, uint8_t>* relocated = nullptr) {
  Elf_Data* data = elf_getdata(scn, nullptr);
  if (!data || shdr.sh_entsize == 0) return;
  size_t count = shdr.sh_size / shdr.sh_entsize;
  out.reserve(count);
  // .symtab lists each source file's locals after an STT_FILE of its name; GNU ld puts the
  // symbols it made local itself (hidden visibility, a version script's local:) after an
  // STT_FILE with no name.
  bool in_source_file = false;
  for (size_t i = 1; i < count; ++i) {  // entry 0 is the null symbol
    GElf_Sym sym;
    if (!gelf_getsym(data, static_cast<int>(i), &sym)) break;
    uint8_t type = GELF_ST_TYPE(sym.st_info);
    if (type == STT_FILE) {
      const char* file = elf_strptr(elf, shdr.sh_link, sym.st_name);
      in_source_file = file && *file;
    }
    if (type == STT_SECTION || type == STT_FILE) continue;
    bool defined = sym.st_shndx != SHN_UNDEF;
    if (defined_only && (!defined || (type != STT_FUNC && type != STT_OBJECT &&
                                      type != STT_GNU_IFUNC && type != STT_TLS)))
      continue;
    const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
    if (!name || !*name) continue;
    ElfSymbol s;
    s.name = name;
    s.defined = defined;
    s.type = type;
    s.bind = GELF_ST_BIND(sym.st_info);
    s.visibility = GELF_ST_VISIBILITY(sym.st_other);
    s.section = sym.st_shndx;
    s.value = sym.st_value;
    s.size = sym.st_size;
    if (relocated)
      if (auto it = relocated->find(static_cast<uint32_t>(i)); it != relocated->end())
        s.relocations = it->second;
    s.relocated = s.relocations != 0;
    s.source_local = s.bind == STB_LOCAL && in_source_file;
    GElf_Versym index;
    if (versym && gelf_getversym(versym, static_cast<int>(i), &index)) {
      s.default_version = (index & 0x8000) == 0;
      uint16_t v = index & 0x7fff;
      if (v > 1) {  // 0: local, 1: global (the base version)
        const auto& table = defined ? names.defined : names.needed;
        if (auto it = table.find(v); it != table.end()) s.version = it->second;
      }
    }
    out.push_back(std::move(s));
  }
}

}  // namespace

bool ElfSymbol::exported() const {
  return defined && (bind == STB_GLOBAL || bind == STB_WEAK || bind == STB_GNU_UNIQUE) &&
         (visibility == STV_DEFAULT || visibility == STV_PROTECTED);
}

bool ElfSymbol::weak() const {
  return bind == STB_WEAK;
}

const ElfSymbol* ElfFile::exported(std::string_view name, std::string_view version) const {
  auto it = dynamic_index_.find(name);
  if (it == dynamic_index_.end()) return nullptr;
  for (uint32_t i : it->second) {
    const ElfSymbol& s = dynamic_symbols[i];
    if (!s.exported()) continue;
    if (version.empty() ? s.default_version : s.version == version) return &s;
  }
  return nullptr;
}

std::vector<const ElfSymbol*> ElfFile::dynamic_entries(std::string_view name) const {
  std::vector<const ElfSymbol*> out;
  if (auto it = dynamic_index_.find(name); it != dynamic_index_.end())
    for (uint32_t i : it->second) out.push_back(&dynamic_symbols[i]);
  return out;
}

const ElfSymbol* ElfFile::static_definition(std::string_view name) const {
  auto it = static_index_.find(name);
  return it == static_index_.end() ? nullptr : &static_symbols[it->second];
}

bool ElfFile::defines_version(std::string_view version) const {
  for (const auto& v : version_definitions)
    if (v == version) return true;
  return false;
}

void ElfFile::build_indexes() {
  dynamic_index_.clear();
  static_index_.clear();
  for (uint32_t i = 0; i < dynamic_symbols.size(); ++i)
    dynamic_index_[dynamic_symbols[i].name].push_back(i);
  for (uint32_t i = 0; i < static_symbols.size(); ++i)
    static_index_.try_emplace(static_symbols[i].name, i);
}

absl::StatusOr<std::unique_ptr<const ElfFile>> read_elf_file(const std::string& path) {
  static const bool version_ok = elf_version(EV_CURRENT) != EV_NONE;
  if (!version_ok) return absl::InternalError("libelf is unusable (elf_version failed)");
  auto opened = open_regular_file(path);
  if (!opened.ok()) return opened.status();
  const int fd = opened->fd;
  unsigned char magic[SELFMAG] = {};
  if (opened->size > kMaxReadFileBytes) {
    close(fd);
    return absl::FailedPreconditionError(
        fmt::format("{} is too large to read ({} bytes)", path, opened->size));
  }
  if (pread(fd, magic, sizeof magic, 0) != static_cast<ssize_t>(sizeof magic) ||
      memcmp(magic, ELFMAG, SELFMAG) != 0) {
    close(fd);
    return absl::FailedPreconditionError(fmt::format("{} is not an ELF file", path));
  }
  Elf* elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
  auto cleanup = [&] {
    if (elf) elf_end(elf);
    close(fd);
  };
  GElf_Ehdr ehdr;
  if (!elf || elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &ehdr)) {
    cleanup();
    return absl::FailedPreconditionError(fmt::format("{} is not an ELF file", path));
  }
  auto file = std::make_unique<ElfFile>();
  file->path = path;
  file->elf_type = ehdr.e_type;
  file->machine = ehdr.e_machine;
  size_t phnum = 0;
  if (elf_getphdrnum(elf, &phnum) == 0) {
    for (size_t i = 0; i < phnum; ++i) {
      GElf_Phdr ph;
      if (gelf_getphdr(elf, static_cast<int>(i), &ph) && ph.p_type == PT_TLS) {
        file->tls_size = ph.p_memsz;
        file->tls_align = ph.p_align;
      }
    }
  }

  VersionNames names;
  Elf_Scn *dynsym = nullptr, *symtab = nullptr;
  GElf_Shdr dynsym_shdr{}, symtab_shdr{};
  Elf_Data* versym = nullptr;
  // Version tables first: symbols name their version by index.
  for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn; scn = elf_nextscn(elf, scn)) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr)) continue;
    switch (shdr.sh_type) {
      case SHT_DYNAMIC:
        read_dynamic(elf, scn, shdr, *file);
        break;
      case SHT_GNU_verdef:
        read_verdef(elf, scn, shdr, *file, names);
        break;
      case SHT_GNU_verneed:
        read_verneed(elf, scn, shdr, *file, names);
        break;
      case SHT_GNU_versym:
        versym = elf_getdata(scn, nullptr);
        break;
      case SHT_DYNSYM:
        dynsym = scn;
        dynsym_shdr = shdr;
        break;
      case SHT_SYMTAB:
        symtab = scn;
        symtab_shdr = shdr;
        break;
      default:
        break;
    }
  }
  if (dynsym) {
    const auto relocated = relocated_symbols(elf, elf_ndxscn(dynsym), ehdr.e_machine);
    read_symbols(elf, dynsym, dynsym_shdr, versym, names, false, file->dynamic_symbols, &relocated);
  }
  if (symtab) {
    file->has_static_symbols = true;
    read_symbols(elf, symtab, symtab_shdr, nullptr, names, true, file->static_symbols);
  }
  const void* id = nullptr;
  ssize_t id_len = dwelf_elf_gnu_build_id(elf, &id);
  if (id_len > 0) {
    const auto* bytes = static_cast<const unsigned char*>(id);
    for (ssize_t i = 0; i < id_len; ++i)
      fmt::format_to(std::back_inserter(file->build_id), "{:02x}", bytes[i]);
  }
  cleanup();
  file->build_indexes();
  return std::unique_ptr<const ElfFile>(std::move(file));
}

const ElfFile* ElfCache::file(const std::string& path) {
  if (auto it = files_.find(path); it != files_.end()) return it->second.get();
  if (errors_.contains(path)) return nullptr;
  auto read = read_elf_file(path);
  if (!read.ok()) {
    errors_.emplace(path, std::string(read.status().message()));
    return nullptr;
  }
  return files_.emplace(path, *std::move(read)).first->second.get();
}

const ElfCache::Entry& ElfCache::for_object(const ObjectRecord& object, std::string_view path) {
  if (auto it = objects_.find(object.id); it != objects_.end()) return it->second;
  Entry entry;
  if ((object.flags & format::kObjectVdso) || path.empty()) {
    entry.check = FileCheck::kNoFile;
    entry.problem = "it has no file (the vDSO)";
  } else {
    std::string p(path);
    const ElfFile* f = file(p);
    if (!f) {
      std::string error = errors_[p];
      bool missing = access(p.c_str(), F_OK) != 0;
      entry.check = missing ? FileCheck::kMissing : FileCheck::kUnreadable;
      entry.problem =
          missing ? fmt::format("{} is gone (it was deleted or moved since the run)", p) : error;
    } else if (!object.build_id.empty() && !f->build_id.empty() && object.build_id != f->build_id) {
      entry.check = FileCheck::kDifferent;
      entry.problem = fmt::format(
          "{} on disk is not the file that was loaded (build-id {} now, {} in the trace)", p,
          f->build_id, object.build_id);
    } else {
      entry.file = f;
      entry.check = (object.build_id.empty() || f->build_id.empty()) ? FileCheck::kUnverified
                                                                     : FileCheck::kSame;
    }
  }
  return objects_.emplace(object.id, std::move(entry)).first->second;
}

}  // namespace dltrace::viewer

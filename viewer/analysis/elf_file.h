// What the dynamic linker reads from an object's file, read offline with elfutils' libelf:
// DT_NEEDED, DT_SONAME, DT_RPATH/DT_RUNPATH, DT_FLAGS_1, the dynamic symbol table with its
// symbol versions (verdef/verneed), the static symbol table when present, and the build-id.
// ElfCache reads each file once and checks that the file on disk is the one that was loaded.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

struct ElfSymbol {
  std::string name;
  std::string version;  // "" when unversioned (or the base version)
  bool defined = false;
  bool default_version = true;  // false for a hidden "name@VER" (not the "name@@VER" default)
  uint8_t type = 0;             // STT_*
  uint8_t bind = 0;             // STB_*
  uint8_t visibility = 0;       // STV_*
  uint16_t section = 0;         // st_shndx (SHN_ABS for version-name symbols)
  uint64_t value = 0;
  uint64_t size = 0;
  // .dynsym only: a dynamic relocation of this file names it, so the file's own uses of it go
  // through ld.so's lookup (and bind to the first definition in scope, not necessarily its own).
  bool relocated = false;
  // Which kinds of dynamic relocation name it (.dynsym only): a PLT slot bound at the first call
  // under RTLD_LAZY, a copy into the executable (R_*_COPY), any other (bound at load time).
  static constexpr uint8_t kRelocJumpSlot = 1, kRelocCopy = 2, kRelocOther = 4;
  uint8_t relocations = 0;
  // .symtab only: local to its source file (static, an anonymous namespace), as opposed to made
  // local at link time (hidden visibility, a version script's local:).
  bool source_local = false;

  // What ld.so can bind a reference to: defined, global/weak/unique, default or protected.
  bool exported() const;
  bool weak() const;
};

struct ElfVersionNeed {
  std::string file;                   // the DT_NEEDED name the versions are required from
  std::vector<std::string> versions;  // e.g. "GLIBCXX_3.4.30"
};

class ElfFile {
 public:
  std::string path;
  uint16_t elf_type = 0;  // ET_EXEC / ET_DYN
  uint16_t machine = 0;   // e_machine
  std::string soname;
  std::vector<std::string> needed;
  std::optional<std::string> rpath;              // DT_RPATH as written (unexpanded: $ORIGIN stays)
  std::optional<std::string> runpath;            // DT_RUNPATH as written
  uint64_t flags_1 = 0;                          // DT_FLAGS_1
  uint64_t flags = 0;                            // DT_FLAGS (DF_STATIC_TLS: initial-exec TLS)
  uint64_t tls_size = 0;                         // PT_TLS p_memsz, 0 without thread-locals
  uint64_t tls_align = 0;                        // PT_TLS p_align
  std::vector<std::string> version_definitions;  // DT_VERDEF names, base (file) version first
  std::vector<ElfVersionNeed> version_needs;
  std::vector<ElfSymbol> dynamic_symbols;
  std::vector<ElfSymbol> static_symbols;  // defined .symtab entries only (names, kinds)
  bool has_static_symbols = false;        // a .symtab exists (the file is not stripped)
  std::string build_id;                   // lowercase hex, "" if none

  // The exported definition of `name` ld.so would bind an unversioned reference to (its
  // default version), or the one of exactly `version` when given; nullptr if none.
  const ElfSymbol* exported(std::string_view name, std::string_view version = {}) const;
  // A defined function/object of that name in .symtab, nullptr if none (or stripped).
  const ElfSymbol* static_definition(std::string_view name) const;
  // Every .dynsym entry of that name (definitions of any version or visibility, references).
  std::vector<const ElfSymbol*> dynamic_entries(std::string_view name) const;
  bool defines_version(std::string_view version) const;

  void build_indexes();  // after the vectors are filled; called by read_elf_file

 private:
  absl::flat_hash_map<std::string_view, std::vector<uint32_t>> dynamic_index_;
  absl::flat_hash_map<std::string_view, uint32_t> static_index_;
};

// Reads `path`. Errors: cannot open, not ELF, unsupported (e.g. a linker script).
absl::StatusOr<std::unique_ptr<const ElfFile>> read_elf_file(const std::string& path);

// Whether the file on disk is the object the trace recorded.
enum class FileCheck {
  kSame,        // same build-id
  kUnverified,  // readable, but no build-id to compare (neither recorded nor in the file)
  kDifferent,   // the build-id differs: the file was replaced since the recording
  kMissing,     // no such file any more
  kUnreadable,  // exists but cannot be read as ELF
  kNoFile,      // the object has no file (the vDSO)
};

// Files read once per path; objects checked against their recorded build-id.
class ElfCache {
 public:
  struct Entry {
    const ElfFile* file = nullptr;  // null unless kSame / kUnverified
    FileCheck check = FileCheck::kNoFile;
    std::string problem;  // one sentence when the file cannot be used
  };

  // `path` is the file to read for the object (TraceModel::path_of).
  const Entry& for_object(const ObjectRecord& object, std::string_view path);
  // Any file by path (candidates on disk, a failed dlopen's object); null if unreadable.
  const ElfFile* file(const std::string& path);

 private:
  absl::flat_hash_map<std::string, std::unique_ptr<const ElfFile>> files_;
  absl::flat_hash_map<std::string, std::string> errors_;
  absl::flat_hash_map<uint32_t, Entry> objects_;
};

}  // namespace dltrace::viewer

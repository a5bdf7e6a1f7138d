// A definition that a failed symbol lookup could have meant: the name it asked for, spelled
// otherwise or kept out of the dynamic symbol table ld.so searches. Each kind has one cause and
// one fix (explain_near_miss.cpp says them); the outcome classifier counts any near miss as proof
// that the miss was a bug, not a probe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "analysis/elf_file.h"

namespace dltrace::viewer {

enum class NearMissKind {
  kCxxAbi,        // the same C++ function under the other std::string ABI or another ABI tag
  kNotExternC,    // a C name was asked for; the file exports it only C++-mangled
  kExternC,       // a C++ name was asked for; the file exports the function as extern "C"
  kOtherVersion,  // the same name, exported under another symbol version
  kLinkerLocal,   // defined, but made local at link time (hidden visibility, version script)
  kSourceLocal,   // defined, but local to its source file (static, anonymous namespace)
  kNotInDynamic,  // a global in .symtab that is not in .dynsym (an executable without -rdynamic)
};

// Stable ids for --json ("cxx-abi", "not-extern-c", ...).
std::string_view near_miss_kind_name(NearMissKind kind);

struct NearMiss {
  NearMissKind kind;
  const ElfFile* file = nullptr;
  std::string symbol;   // the definition's name as the file spells it
  std::string version;  // kOtherVersion: its version ("" unversioned)
  uint8_t type = 0;     // STT_*
  uint64_t value = 0;
};

class NearMissFinder {
 public:
  // The near misses of a reference to `name` (of exactly `version` when given) in `file`, most
  // telling first; none when the file exports the name itself.
  std::vector<NearMiss> find(const ElfFile& file, std::string_view name, std::string_view version);

 private:
  // Exported C++ names of one file by abi_neutral() key and by plain C name.
  struct Index {
    absl::flat_hash_map<std::string, std::string_view> by_abi_neutral;
    absl::flat_hash_map<std::string, std::string_view> by_c_name;
  };
  const Index& index_of(const ElfFile& file);

  absl::flat_hash_map<const ElfFile*, Index> indexes_;
};

// One sentence for the outcome classifier's reason: "libgreet.so defines greet(...) ...".
std::string near_miss_sentence(const NearMiss& miss, std::string_view who, std::string_view wanted);

}  // namespace dltrace::viewer

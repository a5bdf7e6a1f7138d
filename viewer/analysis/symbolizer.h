// Address -> function, file:line, offline (heaptrack-style: all interpretation after the fact).
// Each object is opened with elfutils at the base it had in the traced process, one Dwfl per
// object (objects loaded and unloaded at the same address must not collide), cached by object
// id; results are cached by (object, address). When the trace recorded a build-id and the file
// on disk has a different one, the file changed since the recording: it is not used.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "dltrace/reader.h"

struct Dwfl_Module;  // elfutils' libdwfl.h: typedef struct Dwfl_Module Dwfl_Module
struct Dwfl;         // typedef struct Dwfl Dwfl

namespace dltrace::viewer {

// A new elfutils session set up as the symbolizer opens each object: offline, the file on disk,
// debug info via .gnu_debuglink / build-id directories. The caller ends it with dwfl_end.
Dwfl* begin_offline_session();

// One module's symbols sorted by address: address -> function as elfutils'
// dwfl_module_addrinfo answers it (the same symbol among aliases, nested and sizeless ones,
// globals before locals), by binary search instead of a scan of the whole table per address.
// Modules whose symbol values elfutils may rewrite (function descriptors, Thumb bits) or
// relocatable files are answered by dwfl_module_addrinfo itself.
class FunctionTable {
 public:
  // Reads the symbol table once; `mod` must outlive the table.
  explicit FunctionTable(Dwfl_Module* mod);

  struct Match {
    const char* name = nullptr;  // as in the symbol table (versioned, mangled); null if none
    uint64_t offset = 0;         // from the symbol's address
  };
  Match find(uint64_t addr) const;

 private:
  struct Symbol {
    uint64_t value = 0;
    uint64_t size = 0;
    const char* name = nullptr;
    int index = 0;            // in elfutils' symbol table order: which of equals wins
    uint8_t binding = 0;      // elfutils' preference: global 3, weak 2, local 1, other 0
    bool local_pass = false;  // searched only when no global symbol matches
    bool special = false;     // absolute, common, or in a non-allocated section
    uint64_t end() const { return value + size; }
  };
  // An allocated section of the main file, as elfutils' find_section sees it.
  struct Section {
    uint64_t start = 0, end = 0;
    size_t index = 0;
  };

  static const Symbol* closest_containing(const std::vector<const Symbol*>& containing, bool local);
  uint64_t reach(bool local, uint64_t addr) const;
  size_t section_of(uint64_t addr) const;

  Dwfl_Module* mod_;
  bool exact_ = false;  // false: ask dwfl_module_addrinfo
  bool has_locals_ = false;
  std::vector<Symbol> sized_;                            // size > 0, by value
  std::vector<uint64_t> sized_reach_;                    // max end over sized_[0..i]
  std::vector<Symbol> sizeless_;                         // size 0, by (value, pass, index)
  std::vector<std::pair<uint64_t, uint64_t>> reach_[2];  // (value, max end so far) per pass
  std::vector<Section> sections_;
};

struct SymbolInfo {
  std::string function;  // demangled; empty when unknown
  uint64_t function_offset = 0;
  std::string file;  // source file; empty without debug info
  int line = 0;
};

class Symbolizer {
 public:
  // `main_program`: the file of the object with an empty path (the executable's link_map name
  // is ""), usually ProcessInfo::exe.
  explicit Symbolizer(std::string main_program = {});
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // Symbolizes `ip` inside `object`. A return address (every stack frame, the caller) points
  // after the call instruction, so the call site ip-1 is looked up instead.
  const SymbolInfo& lookup(const ObjectRecord& object, uint64_t ip, bool return_address = true);

  // Why an object could not be symbolized ("" if it could, or was not tried yet).
  std::string problem(uint32_t object_id) const;

 private:
  struct Module;
  Module& module_for(const ObjectRecord& object);

  std::string main_program_;
  absl::flat_hash_map<uint32_t, std::unique_ptr<Module>> modules_;
  absl::flat_hash_map<std::pair<uint32_t, uint64_t>, SymbolInfo> cache_;
};

}  // namespace dltrace::viewer

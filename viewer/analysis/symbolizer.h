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

#include "absl/container/flat_hash_map.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

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

// How deep each traced call is nested in other traced calls on its thread (a dlopen made by a
// constructor that another dlopen ran), from parent_seq, for the indentation of `show` and the
// HTML report's event table.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "dltrace/format.h"

namespace dltrace::viewer {

// Per-thread stacks of enclosing calls. Events must come in seq order (a parent's seq is
// reserved before its children's); `show --follow` keeps one across re-reads of the trace.
class CallNesting {
 public:
  // 0 for a call made outside any traced call.
  int depth_of(const format::EventSlot& e);

 private:
  absl::flat_hash_map<uint32_t, std::vector<std::pair<uint64_t, int>>>
      open_;  // tid -> (seq, depth)
};

}  // namespace dltrace::viewer

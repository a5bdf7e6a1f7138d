// How far `show --follow` got in a trace that is still being written: which events it has
// handed out across re-reads of the growing file, and which reserved seqs it is waiting for.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <set>

#include "dltrace/format.h"
#include "dltrace/reader.h"

namespace dltrace::viewer {

// Events are handed out in seq order. A seq that is reserved but not committed yet (a dlopen
// still running commits after its nested calls) holds back the ones after it for at most
// `hold_back`, then is skipped, and handed out late if it ever shows up.
class FollowCursor {
 public:
  explicit FollowCursor(std::chrono::milliseconds hold_back) : hold_back_(hold_back) {}

  // Calls `emit` for each event of `reader` not handed out yet; `ended`: the process is gone,
  // nothing missing will ever be committed.
  void read_new(const TraceReader& reader, bool ended,
                const std::function<void(const format::EventSlot&)>& emit);

 private:
  static constexpr size_t kMaxSkipped = 4096;

  std::chrono::milliseconds hold_back_;
  uint64_t done_ = 0;  // every seq up to here was handed out or given up on
  uint64_t stall_seq_ = 0;
  uint64_t stall_last_ = 0;
  std::chrono::steady_clock::time_point stall_since_;
  std::set<uint64_t> skipped_;
};

}  // namespace dltrace::viewer

#include "model/follow_cursor.h"

#include <algorithm>

namespace dltrace::viewer {

void FollowCursor::read_new(const TraceReader& reader, bool ended,
                            const std::function<void(const format::EventSlot&)>& emit) {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = skipped_.begin(); it != skipped_.end();) {
    if (auto e = reader.event(*it)) {
      emit(*e);
      it = skipped_.erase(it);
    } else {
      ++it;
    }
  }
  const uint64_t last = reader.last_seq();
  while (done_ < last) {
    const uint64_t seq = done_ + 1;
    if (auto e = reader.event(seq)) {
      emit(*e);
      done_ = seq;
      stall_seq_ = 0;
      continue;
    }
    // Missing: torn, overwritten by the ring, or still running.
    if (const uint64_t slots = reader.header().slot_count; slots && last - seq >= slots) {
      done_ = seq;  // a newer event has taken its slot: it is gone for good
      continue;
    }
    if (stall_seq_ != seq) {
      stall_seq_ = seq;
      stall_since_ = now;
      stall_last_ = last;
    }
    if (!ended && now - stall_since_ < hold_back_) break;
    // Everything reserved before the stall began had hold_back to commit: skip what is still
    // missing among those, remembering a bounded number to hand out late.
    const uint64_t give_up_to = ended ? last : stall_last_;
    for (uint64_t s = seq; s <= give_up_to; ++s) {
      if (auto e = reader.event(s)) {
        emit(*e);
      } else if (!ended && skipped_.size() < kMaxSkipped) {
        skipped_.insert(s);
      }
    }
    done_ = std::max(done_, give_up_to);
    stall_seq_ = 0;
  }
}

}  // namespace dltrace::viewer

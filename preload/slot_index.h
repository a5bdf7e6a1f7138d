// A fixed-size hash index of table slots by a 64-bit key the owner derives from each slot:
// linear probing with backward-shift deletion (no tombstones), so lookups stay short however
// many inserts and erases a long-running process makes. Plain static storage, no allocation:
// usable before any constructor ran. Not thread-safe: the owner serialises changes.
#pragma once

#include <cstdint>

namespace dltrace::preload {

template <uint32_t kSlots>
class SlotIndex {
  static_assert(kSlots >= 2 && (kSlots & (kSlots - 1)) == 0 && kSlots <= 0x10000);

 public:
  using KeyOf = uint64_t (*)(uint32_t slot);
  static constexpr uint32_t kMaxEntries = kSlots / 2;  // the owner keeps it at most half full

  constexpr explicit SlotIndex(KeyOf key_of) : key_of_(key_of) {}

  // `slot` < kSlots - 1, not already in the index, its key readable through key_of.
  void insert(uint32_t slot) {
    uint32_t at = home(key_of_(slot));
    while (entries_[at] != 0) at = next(at);
    entries_[at] = static_cast<uint16_t>(slot + 1);
  }

  // Call while key_of(slot) still gives the key it was inserted with. No-op when absent.
  void erase(uint32_t slot) {
    uint32_t hole = home(key_of_(slot));
    while (entries_[hole] != slot + 1) {
      if (entries_[hole] == 0) return;
      hole = next(hole);
    }
    // Pull later entries of the run back over the hole, unless that would put one before its home.
    for (uint32_t j = next(hole); entries_[j] != 0; j = next(j)) {
      const uint32_t h = home(key_of_(entries_[j] - 1u));
      if (((j - h) & (kSlots - 1)) >= ((j - hole) & (kSlots - 1))) {
        entries_[hole] = entries_[j];
        hole = j;
      }
    }
    entries_[hole] = 0;
  }

  // The first slot with this key for which match(slot) is true, or -1.
  template <class Match>
  int find(uint64_t key, Match&& match) const {
    for (uint32_t at = home(key); entries_[at] != 0; at = next(at)) {
      const uint32_t slot = entries_[at] - 1u;
      if (key_of_(slot) == key && match(slot)) return static_cast<int>(slot);
    }
    return -1;
  }

 private:
  static uint32_t home(uint64_t key) {
    return static_cast<uint32_t>((key * 0x9E3779B97F4A7C15ull) >> 40) & (kSlots - 1);
  }
  static uint32_t next(uint32_t at) { return (at + 1) & (kSlots - 1); }

  KeyOf key_of_;
  uint16_t entries_[kSlots] = {};  // slot + 1; 0 = empty
};

}  // namespace dltrace::preload

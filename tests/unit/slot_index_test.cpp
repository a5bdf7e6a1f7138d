// SlotIndex: the object table's link_map index. A tiny table forces long runs, wrap-around and
// shared keys, where backward-shift deletion goes wrong if it is going to.
#include "slot_index.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

using dltrace::preload::SlotIndex;

namespace {

uint64_t g_keys[64];
uint64_t key_of(uint32_t slot) {
  return g_keys[slot];
}

// Every slot in `live` is found under its key; no other slot is.
template <uint32_t N>
void check_index(const SlotIndex<N>& index, const std::set<uint32_t>& live, uint32_t slots) {
  for (uint32_t s = 0; s < slots; ++s) {
    const int found = index.find(g_keys[s], [s](uint32_t slot) { return slot == s; });
    INFO("slot " << s);
    CHECK(found == (live.count(s) ? static_cast<int>(s) : -1));
  }
}

}  // namespace

TEST_CASE("SlotIndex finds every live slot after random inserts and erases", "[preload][index]") {
  std::mt19937 rng(12345);
  for (int round = 0; round < 50; ++round) {
    constexpr uint32_t kSlots = 16;  // table of 16: at most 8 live entries
    // Few distinct keys (random homes), so that slots share keys and runs overlap and wrap.
    uint64_t pool[5];
    for (uint64_t& k : pool) k = (uint64_t{rng()} << 32) | rng();
    for (uint32_t s = 0; s < kSlots; ++s) g_keys[s] = pool[rng() % 5];
    SlotIndex<kSlots> index(key_of);
    std::set<uint32_t> live;
    for (int step = 0; step < 200; ++step) {
      const uint32_t s = rng() % (kSlots - 1);
      if (live.count(s)) {
        index.erase(s);
        live.erase(s);
      } else if (live.size() < SlotIndex<kSlots>::kMaxEntries) {
        index.insert(s);
        live.insert(s);
      }
      check_index(index, live, kSlots - 1);
    }
  }
}

TEST_CASE("SlotIndex find asks the match for slots sharing a key", "[preload][index]") {
  for (uint32_t s = 0; s < 6; ++s) g_keys[s] = 42;  // one key for all
  SlotIndex<32> index(key_of);
  for (uint32_t s = 0; s < 6; ++s) index.insert(s);
  CHECK(index.find(42, [](uint32_t slot) { return slot == 4; }) == 4);
  CHECK(index.find(43, [](uint32_t) { return true; }) == -1);
  index.erase(2);
  CHECK(index.find(42, [](uint32_t slot) { return slot == 2; }) == -1);
  std::vector<uint32_t> asked;
  index.find(42, [&](uint32_t slot) {
    asked.push_back(slot);
    return false;
  });
  CHECK(std::set<uint32_t>(asked.begin(), asked.end()) == std::set<uint32_t>{0, 1, 3, 4, 5});
  index.erase(7);  // never inserted: nothing happens
  CHECK(index.find(42, [](uint32_t slot) { return slot == 5; }) == 5);
}

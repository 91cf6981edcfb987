// A hashed timing wheel of expiry deadlines: what the engine uses to find the instance buckets
// whose oldest instance has passed its node's DUR bound, without a scan and without a heap.
//
// A deadline lands in slot (deadline >> kSlotBits) % kSlots, whatever its round, so adding is
// O(1). take_until(t) visits the slots between the previous call's time and t (each at most
// once, however far t jumps) and, in each, only when the slot's earliest deadline has passed;
// entries not due yet (a later round, or later in the current slot) stay. Entries come out in
// no particular order. Single-threaded.
#pragma once

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <vector>

namespace cayuga {

class ExpiryWheel {
 public:
  struct Entry {
    int64_t deadline;
    uint32_t node, bucket;
  };

  void add(int64_t deadline, uint32_t node, uint32_t bucket) {
    Slot& s = slots_[index(deadline)];
    s.entries.push_back(Entry{deadline, node, bucket});
    s.earliest = std::min(s.earliest, deadline);
    ++size_;
  }

  // Appends every entry with deadline <= t to `due` and removes it.
  void take_until(int64_t t, std::vector<Entry>& due) {
    const int64_t last = t >> kSlotBits;
    if (size_ == 0 || cursor_ == kNone) {
      if (size_ == 0) {
        cursor_ = last;
        return;
      }
      cursor_ = last - kRound + 1;  // first call: every slot once
    }
    if (last < cursor_) return;  // time did not move past the slot already visited
    const int64_t first = std::max(cursor_, last - kRound + 1);
    for (int64_t i = first; i <= last && size_ > 0; ++i) {
      Slot& s = slots_[static_cast<size_t>(i) & (kSlots - 1)];
      if (s.earliest > t) continue;
      int64_t earliest = INT64_MAX;
      size_t keep = 0;
      for (const Entry& e : s.entries) {
        if (e.deadline <= t) {
          due.push_back(e);
        } else {
          earliest = std::min(earliest, e.deadline);
          s.entries[keep++] = e;
        }
      }
      size_ -= s.entries.size() - keep;
      s.entries.resize(keep);
      s.earliest = earliest;
    }
    cursor_ = last;  // the last slot may still hold entries due later: visit it again
  }

  size_t size() const { return size_; }

 private:
  static constexpr int kSlotBits = 10;    // 1024 time units per slot
  static constexpr size_t kSlots = 4096;  // a power of two
  static constexpr int64_t kRound = static_cast<int64_t>(kSlots);
  static constexpr int64_t kNone = INT64_MIN;
  struct Slot {
    std::vector<Entry> entries;
    int64_t earliest = INT64_MAX;
  };
  static size_t index(int64_t deadline) {
    return static_cast<size_t>(deadline >> kSlotBits) & (kSlots - 1);
  }

  std::array<Slot, kSlots> slots_{};
  int64_t cursor_ = kNone;  // the slot number (time >> kSlotBits) take_until reached
  size_t size_ = 0;
};

}  // namespace cayuga

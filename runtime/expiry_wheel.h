// A hashed timing wheel of expiry deadlines: what the engine uses to find the instance buckets
// whose oldest instance has passed its node's DUR bound, without a scan and without a heap.
//
// A deadline lands in slot (deadline >> kSlotBits) % kSlots, whatever its round, so adding is
// O(1). take_until(t) visits the slots between the previous call's time and t (each at most
// once, however far t jumps) and, in each, only when the slot's earliest deadline has passed;
// entries not due yet (a later round, or later in the current slot) stay. A bitmap of the
// slots that hold entries lets it skip empty ones 64 at a time, so slots can be narrow: a slot
// that is not yet wholly past is scanned again by every call until it is, so a wide slot
// (an epoch is often far shorter) would be rescanned many times over. Entries come out in no
// particular order. Single-threaded.
#pragma once

#include <algorithm>
#include <bit>
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
    if (slots_.empty()) {  // (allocated on first use: most engines never expire anything)
      slots_.resize(kSlots);
      occupied_.resize(kSlots / 64);
    }
    const size_t i = index(deadline);
    Slot& s = slots_[i];
    s.entries.push_back(Entry{deadline, node, bucket});
    s.earliest = std::min(s.earliest, deadline);
    occupied_[i / 64] |= uint64_t{1} << (i % 64);
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
    for (int64_t i = std::max(cursor_, last - kRound + 1); i <= last && size_ > 0;) {
      // The next occupied slot from i on, within i's word of the bitmap.
      const size_t at = static_cast<size_t>(i) & (kSlots - 1);
      const uint64_t bits = occupied_[at / 64] >> (at % 64);
      if (bits == 0) {
        i += 64 - static_cast<int64_t>(at % 64);
        continue;
      }
      i += std::countr_zero(bits);
      if (i > last) break;
      take_slot(static_cast<size_t>(i) & (kSlots - 1), t, due);
      ++i;
    }
    cursor_ = last;  // the last slot may still hold entries due later: visit it again
    // Calls come at every epoch's close, and epochs are usually shorter than a slot: the next
    // call visits this slot again or the next one. Its entries are cold (they were queued a
    // DUR bound ago), so ask for them now (all of them: a slot often holds a few lines), and
    // for the header of the one after (read by the next call's prefetch).
    const size_t next = static_cast<size_t>(last + 1) & (kSlots - 1);
    const std::vector<Entry>& entries = slots_[next].entries;
    const char* bytes = reinterpret_cast<const char*>(entries.data());
    const size_t size = entries.size() * sizeof(Entry);
    for (size_t at = 0; at < size; at += 64) __builtin_prefetch(bytes + at);
    if (size > 0) __builtin_prefetch(bytes + size - 1);  // (the entries need not start a line)
    __builtin_prefetch(&slots_[(next + 1) & (kSlots - 1)]);
  }

  size_t size() const { return size_; }

 private:
  // 128 time units per slot, 4096 slots: a round of 2^19 units (8.7 minutes in milliseconds).
  static constexpr int kSlotBits = 7;
  static constexpr size_t kSlots = size_t{1} << 12;
  static constexpr int64_t kRound = static_cast<int64_t>(kSlots);
  static constexpr int64_t kNone = INT64_MIN;
  struct Slot {
    std::vector<Entry> entries;
    int64_t earliest = INT64_MAX;
  };
  static size_t index(int64_t deadline) {
    return static_cast<size_t>(deadline >> kSlotBits) & (kSlots - 1);
  }
  void take_slot(size_t i, int64_t t, std::vector<Entry>& due) {
    Slot& s = slots_[i];
    if (s.earliest > t) return;
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
    if (keep == 0) occupied_[i / 64] &= ~(uint64_t{1} << (i % 64));
  }

  std::vector<Slot> slots_;         // kSlots, once the first entry is added
  std::vector<uint64_t> occupied_;  // bit i: slots_[i] holds entries
  int64_t cursor_ = kNone;  // the slot number (time >> kSlotBits) take_until reached
  size_t size_ = 0;
};

}  // namespace cayuga

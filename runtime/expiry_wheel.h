// A two-level hashed timing wheel of expiry deadlines: what the engine uses to find the
// instance buckets whose oldest instance has passed its node's DUR bound, without a scan and
// without a heap.
//
// The fine level has narrow slots (128 time units) and holds the deadlines of the current and
// the next coarse period; the coarse level has wide slots (one period, 32,768 units) and holds
// the later ones. A deadline lands in its level's slot (deadline >> bits) % slots, whatever
// its round, so adding is O(1). Deadlines are mostly a DUR bound past the current time, so
// the adds of a run fall into the few coarse slots that its bounds reach (about 55 of them for
// bounds of up to 30 minutes in milliseconds) rather than thousands of fine ones: the slots'
// headers stay cached, where one fine slot per add was a cache miss per add. When time
// reaches a period, its coarse slot's entries move to the fine level in one pass (their fine
// slots are few and get many entries each).
//
// take_until(t) visits the fine slots between the previous call's time and t (each at most
// once, however far t jumps) and, in each, only when the slot's earliest deadline has passed;
// entries not due yet (a later round, or later in the current slot) stay. Bitmaps of the slots
// that hold entries let both levels skip empty ones 64 at a time, so fine slots can be narrow:
// a slot that is not yet wholly past is scanned again by every call until it is, so a wide
// slot (an epoch is often far shorter) would be rescanned many times over. Entries come out in
// no particular order. Single-threaded.
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
    if (fine_.slots.empty()) {  // (allocated on first use: most engines never expire anything)
      fine_.allocate();
      coarse_.allocate();
    }
    const Entry e{deadline, node, bucket};
    if (period(deadline) <= open_)
      put_fine(e);
    else
      put_coarse(static_cast<size_t>(period(deadline)) & (kCoarseSlots - 1), e);
    ++size_;
  }

  // Appends every entry with deadline <= t to `due` and removes it.
  void take_until(int64_t t, std::vector<Entry>& due) {
    const int64_t last = t >> kFineBits;
    if (size_ == 0) {
      cursor_ = last;
      open_ = std::max(open_, period(t) + 1);  // (nothing to move)
      return;
    }
    open_until(period(t) + 1);
    if (cursor_ == kNone) cursor_ = last - kFineRound + 1;  // first call: every slot once
    if (last < cursor_) return;  // time did not move past the slot already visited
    fine_.visit(std::max(cursor_, last - kFineRound + 1), last,
                [&](Level<kFineSlots>& level, size_t i) {
                  Slot& s = level.slots[i];
                  if (s.earliest > t) return;
                  size_ -= level.sift(i, [&](const Entry& e) {
                    if (e.deadline > t) return false;
                    due.push_back(e);
                    return true;
                  });
                });
    cursor_ = last;  // the last slot may still hold entries due later: visit it again
    // Calls come at every epoch's close, and epochs are usually shorter than a slot: the next
    // call visits this slot again or the next one. Its entries are cold (they were queued a
    // while ago), so ask for them now (all of them: a slot often holds a few lines), and for
    // the header of the one after (read by the next call's prefetch).
    const size_t next = static_cast<size_t>(last + 1) & (kFineSlots - 1);
    const std::vector<Entry>& entries = fine_.slots[next].entries;
    const char* bytes = reinterpret_cast<const char*>(entries.data());
    const size_t size = entries.size() * sizeof(Entry);
    for (size_t at = 0; at < size; at += 64) __builtin_prefetch(bytes + at);
    if (size > 0) __builtin_prefetch(bytes + size - 1);  // (the entries need not start a line)
    __builtin_prefetch(&fine_.slots[(next + 1) & (kFineSlots - 1)]);
  }

  size_t size() const { return size_; }

  // Gives every entry's node its new number, `to(node)`, and drops the entries for which that
  // is kDrop (a node that went). Visits every entry: for rare changes of the node numbering.
  static constexpr uint32_t kDrop = UINT32_MAX;
  template <typename To>
  void renumber(To to) {
    const auto level = [&](auto& l) {
      for (size_t i = 0; i < l.slots.size(); ++i) {
        if (l.slots[i].entries.empty()) continue;
        size_ -= l.sift(i, [&](const Entry& e) { return to(e.node) == kDrop; });
        for (Entry& e : l.slots[i].entries) e.node = to(e.node);
      }
    };
    level(fine_);
    level(coarse_);
  }

 private:
  // Fine: 128 time units per slot, 1,024 slots (a round of 131,072 units, which covers the two
  // coarse periods the level holds). Coarse: 32,768 units per slot (33 seconds in
  // milliseconds), 4,096 slots (a round of 37 hours in milliseconds).
  static constexpr int kFineBits = 7;
  static constexpr size_t kFineSlots = size_t{1} << 10;
  static constexpr int kCoarseBits = 15;
  static constexpr size_t kCoarseSlots = size_t{1} << 12;
  static constexpr int64_t kFineRound = kFineSlots, kCoarseRound = kCoarseSlots;  // (signed)
  static constexpr int64_t kNone = INT64_MIN;
  static_assert((kFineSlots << kFineBits) >= (size_t{2} << kCoarseBits),
                "a fine round covers the two periods the fine level holds");

  struct Slot {
    std::vector<Entry> entries;
    int64_t earliest = INT64_MAX;
  };
  // One level: its slots and the bitmap of those that hold entries.
  template <size_t Slots>
  struct Level {
    std::vector<Slot> slots;
    std::vector<uint64_t> occupied;  // bit i: slots[i] holds entries
    void allocate() {
      slots.resize(Slots);
      occupied.resize(Slots / 64);
    }
    void put(size_t i, const Entry& e) {
      Slot& s = slots[i];
      s.entries.push_back(e);
      // The line four entries on, which the slot's next adds write: asked for now, it is not
      // a miss each fourth add. (Past the end of the storage it is only a wasted request.)
      __builtin_prefetch(reinterpret_cast<const void*>(
                             reinterpret_cast<uintptr_t>(s.entries.data() + s.entries.size()) + 64),
                         1);
      s.earliest = std::min(s.earliest, e.deadline);
      occupied[i / 64] |= uint64_t{1} << (i % 64);
    }
    // Removes the entries of slot i that `take` takes (true); returns how many.
    template <typename Take>
    size_t sift(size_t i, Take take) {
      Slot& s = slots[i];
      int64_t earliest = INT64_MAX;
      size_t keep = 0;
      for (const Entry& e : s.entries) {
        if (!take(e)) {
          earliest = std::min(earliest, e.deadline);
          s.entries[keep++] = e;
        }
      }
      const size_t taken = s.entries.size() - keep;
      s.entries.resize(keep);
      s.earliest = earliest;
      if (keep == 0) occupied[i / 64] &= ~(uint64_t{1} << (i % 64));
      return taken;
    }
    // Calls fn(*this, slot index) for every occupied slot among slot numbers [from, to]
    // (at most a round of them: each slot once).
    template <typename Fn>
    void visit(int64_t from, int64_t to, Fn fn) {
      for (int64_t i = from; i <= to;) {
        // The next occupied slot from i on, within i's word of the bitmap.
        const size_t at = static_cast<size_t>(i) & (Slots - 1);
        const uint64_t bits = occupied[at / 64] >> (at % 64);
        if (bits == 0) {
          i += 64 - static_cast<int64_t>(at % 64);
          continue;
        }
        i += std::countr_zero(bits);
        if (i > to) break;
        fn(*this, static_cast<size_t>(i) & (Slots - 1));
        ++i;
      }
    }
  };

  static int64_t period(int64_t deadline) { return deadline >> kCoarseBits; }
  // Into the fine level. A deadline the cursor has passed goes into the cursor's slot, which
  // the next call visits, instead of a slot it would reach only a round later. (Before the
  // first call, the cursor is kNone, below every slot.)
  void put_fine(const Entry& e) {
    const int64_t slot = std::max(e.deadline >> kFineBits, cursor_);
    fine_.put(static_cast<size_t>(slot) & (kFineSlots - 1), e);
  }
  // A coarse slot fills once a round (its period's deadlines), and only the few that the DUR
  // bounds reach hold entries at a time: an emptied slot's storage goes to `spare_`, from which
  // a slot that starts filling takes it, so that the level keeps a few buffers, not one per slot.
  void put_coarse(size_t i, const Entry& e) {
    std::vector<Entry>& entries = coarse_.slots[i].entries;
    if (entries.capacity() == 0 && !spare_.empty()) {
      entries = std::move(spare_.back());
      spare_.pop_back();
    }
    coarse_.put(i, e);
  }
  // Moves the coarse entries of every period up to p into the fine level.
  void open_until(int64_t p) {
    if (p <= open_) return;
    // (The first call: every slot once.)
    const int64_t from =
        open_ == kNone ? p - kCoarseRound + 1 : std::max(open_ + 1, p - kCoarseRound + 1);
    open_ = p;
    coarse_.visit(from, p, [&](Level<kCoarseSlots>& level, size_t i) {
      if (period(level.slots[i].earliest) > p) return;  // a later round's only
      level.sift(i, [&](const Entry& e) {
        if (period(e.deadline) > p) return false;
        put_fine(e);
        return true;
      });
      std::vector<Entry>& entries = level.slots[i].entries;
      if (entries.empty()) {
        spare_.push_back(std::move(entries));
        entries = std::vector<Entry>();
      }
    });
  }

  Level<kFineSlots> fine_;
  Level<kCoarseSlots> coarse_;
  std::vector<std::vector<Entry>> spare_;  // emptied coarse slots' storage (put_coarse)
  int64_t cursor_ = kNone;  // the fine slot number (time >> kFineBits) take_until reached
  int64_t open_ = kNone;    // the last period whose deadlines are in the fine level
  size_t size_ = 0;
};

}  // namespace cayuga

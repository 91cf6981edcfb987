// The global predicate index of one stream: event → the few targets it can affect.
//
// Targets are small integers chosen by the caller (the engine numbers its START edges and its
// NEXT/FOLD nodes). Each target is registered under one atom of its guard, the most selective
// one: an equality goes into a hash table per attribute (strings by interned id, so a lookup is
// one integer hash), a range `attr > c` into a sorted array per attribute and operator, where the
// targets an event satisfies are one contiguous run found by binary search. Targets without an
// indexable atom are always candidates. Cost per event: one hash lookup per attribute with
// equality targets, one binary search per range table, plus the candidates themselves; never
// a pass over all targets.
//
// The index only narrows: every candidate still evaluates its full predicate.
// Thread-safety: match() is const and may run concurrently once prepare() has been called.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "nfa/automaton.h"

namespace cayuga::index {

class StreamIndex {
 public:
  // Registers `target`. A guard with an atom that can never hold (a NaN constant) registers
  // nothing: the target can never fire.
  void add(uint32_t target, const std::vector<nfa::Atom>& guard);
  // Sorts the range tables; call after the last add() and before match().
  void prepare();
  // Appends the candidate targets for `event` (a row of the stream's schema) to `out`.
  void match(const Slot* event, std::vector<uint32_t>& out) const;

  size_t targets() const { return targets_; }
  size_t always_count() const { return always_.size(); }

 private:
  struct EqTable {
    uint32_t attr;
    Type attr_type, cmp;
    std::unordered_map<uint64_t, std::vector<uint32_t>> map;
  };
  struct RangeTable {
    uint32_t attr;
    Type attr_type, cmp;
    nfa::Atom::Op op;
    std::vector<std::pair<double, uint32_t>> by_double;  // cmp FLOAT
    std::vector<std::pair<int64_t, uint32_t>> by_int;    // cmp INT
  };

  std::vector<uint32_t> always_;
  std::vector<EqTable> eq_;
  std::vector<RangeTable> ranges_;
  size_t targets_ = 0;
};

// The hash key of a value for equality: strings and ints by their bits, floats normalized so
// that -0.0 and 0.0 agree. Returns false for NaN, which equals nothing.
bool equality_key(Slot v, Type type, uint64_t& key);

}  // namespace cayuga::index

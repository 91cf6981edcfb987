// The global predicate index of one stream: event → the few targets it can affect.
//
// Targets are small integers chosen by the caller (the engine numbers its START edges and its
// NEXT/FOLD nodes). Each target is registered under one atom of its guard, the most selective
// one: an equality goes into a hash table per attribute (strings by interned id, so a lookup is
// one integer hash), a range `attr > c` into a sorted array per attribute and operator, where the
// targets an event satisfies are one contiguous run found by binary search. Targets without an
// indexable atom are always candidates. The other atoms of the guard are stored next to the
// target and checked before it is handed out, so a candidate satisfies its whole guard (string
// ranges excepted: they are left to the predicate). Cost per event: one hash lookup per
// attribute with equality targets, one binary search per range table, plus the postings found;
// never a pass over all targets.
//
// A guard is a necessary condition; when add() reports that it checks the whole guard and the
// guard is also sufficient (nfa::Emit::exact_stages), the caller may skip the predicate.
// Thread-safety: match() is const and may run concurrently once prepare() has been called.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "nfa/automaton.h"

namespace cayuga::index {

class StreamIndex {
 public:
  // Registers `target`. Returns true when match() will check every atom of `guard` (false if
  // some atom is a string range). A guard with an atom that can never hold (a NaN constant)
  // registers nothing: the target can never fire.
  bool add(uint32_t target, const std::vector<nfa::Atom>& guard);
  // A target that stands for two: one whose guard is the equality `key` alone (a NEXT/FOLD
  // node), and one whose guard is `key` and `rider` (the START edge that feeds the node). It is
  // handed out whenever the event satisfies `key`, with kRides set when the event satisfies
  // every atom of `rider` too. `key` must be an equality and every atom checked (checks_all()).
  // Targets stay below kRides.
  static constexpr uint32_t kRides = 1u << 31;
  void add_rider(uint32_t target, const nfa::Atom& key, const std::vector<nfa::Atom>& rider);
  // Whether match() checks every atom of `guard` and each can hold: no string range, no
  // attribute beyond nfa::kMaxAtomAttr, no NaN constant.
  static bool checks_all(const std::vector<nfa::Atom>& guard);
  // Builds the lookup tables; call once, after the last add() and before match().
  void prepare();
  // Renumbers the targets among themselves so that those one event meets together (one key's
  // postings, a range table's run) have neighbouring numbers: the caller keeps per-target data
  // in arrays, which an event then reads a few cache lines of instead of one line per target.
  // Returns the moves (old number, new number); call after prepare().
  std::vector<std::pair<uint32_t, uint32_t>> renumber();
  // Appends the targets whose guards `event` (a row of the stream's schema) satisfies to `out`.
  void match(const Slot* event, std::vector<uint32_t>& out) const;
  // Lookahead for an event match() will see later: the dependent loads match() makes, as
  // prefetches into L2, one level per call: the hash table entries, then (once those are
  // cached) the postings they point to.
  void prefetch_entries(const Slot* event) const;
  void prefetch_postings(const Slot* event) const;

  size_t targets() const { return targets_; }
  size_t always_count() const { return always_.size(); }
  // Equality tables looked up by an array over their keys' range, and by hashing (for tests).
  size_t array_tables() const;
  size_t hash_tables() const { return eq_.size() - array_tables(); }

 private:
  // An atom as a one-sided test of one attribute: `x >= bound`, `x <= bound` or `x == bound`,
  // over int64 (an INT, or a STRING's interned id for `=`), over doubles (a FLOAT), or over an
  // INT attribute converted to double. `<` and `>` move to the next value (std::nextafter for
  // doubles), and NaN fails every compare as it fails the atom. Nothing satisfies `Never`
  // (`x < INT64_MIN`). The two low bits are the compare (0 >=, 1 <=, 2 ==), the next two the
  // values' kind (1 int, 2 double, 3 int as double).
  enum class Test : uint8_t {
    None = 0,
    Never = 1,
    IntGe = 4,
    IntLe,
    IntEq,
    FloatGe = 8,
    FloatLe,
    FloatEq,
    IntAsFloatGe = 12,
    IntAsFloatLe,
    IntAsFloatEq,
  };
  // A target (with kRides for a rider) and one atom of its guard that the table it sits in does
  // not decide, in 16 bytes (four to a cache line: a key's postings are an event's first
  // dependent reads). Further atoms are postings in `more_` (their targets unused), at
  // more_at_[target]: a count (in bound.i), then the checks.
  struct Posting {
    Slot bound{};
    uint32_t target = 0;
    uint16_t attr = 0;
    Test test = Test::None;  // None: nothing to check
    bool more = false;       // more checks at more_at_[target]
    // Sets test, bound and attr to check `a`; false if its attribute is beyond 16 bits
    // (nfa::kMaxAtomAttr: the builder makes no such atom; were one given, it would be left to
    // the predicate, as a string range is).
    bool check(const nfa::Atom& a);
    // (Tests in turn rather than a switch, whose jump table costs more than the common case.)
    bool holds(const Slot* event) const {
      const Slot v = event[attr];
      // The usual two, nothing to check and `Volume > 1000`, without a branch on which it is:
      // one key's postings mix them.
      if ((static_cast<uint8_t>(test) | 4) == 4) return (test == Test::None) | (v.i >= bound.i);
      const auto t = static_cast<uint8_t>(test);
      const uint8_t op = t & 3;
      if (t < 8) {
        if (test == Test::Never) return false;
        return op == 1 ? v.i <= bound.i : v.i == bound.i;
      }
      const double x = t < 12 ? v.f : static_cast<double>(v.i);
      return op == 0 ? x >= bound.f : op == 1 ? x <= bound.f : x == bound.f;
    }
  };
  static_assert(sizeof(Posting) == 16);
  // Postings by key value, built by prepare(): an event's postings are one lookup and one
  // contiguous run away. Keys that fill most of a range [first, first + span) (interned strings,
  // which are dense ids, or small ints) are looked up in an array over the range, 4 bytes per
  // key, which stays cached where a hash table of 16-byte entries at most half full would not:
  // an event then reads no cold line before its postings. Other keys go to an open-addressing
  // hash table.
  struct EqTable {
    uint32_t attr;
    Type attr_type, cmp;
    std::unordered_map<uint64_t, std::vector<Posting>> staged;  // add() until prepare()
    struct Entry {
      uint64_t key;
      uint32_t begin, end;  // postings [begin, end); end == 0: an empty entry
    };
    std::vector<Entry> table;  // a power of two in size; empty when `starts` is used
    // Key k's postings are [starts[k - first], starts[k - first + 1]) (span + 1 of them).
    uint64_t first = 0;
    std::vector<uint32_t> starts;
    std::vector<Posting> postings;
    // The hash key of the event's value of `attr` as this table compares it; false for NaN.
    bool key_of(const Slot* event, uint64_t& key) const;
    // The postings of the event's key: [begin, end), empty if there are none.
    std::pair<uint32_t, uint32_t> find(const Slot* event) const;
    // What find() reads first for `key` (for prefetching).
    const void* lookup_of(uint64_t key) const;
    // Builds `starts` or `table` from `staged`.
    void prepare();
  };
  struct RangeTable {
    uint32_t attr;
    Type attr_type, cmp;
    nfa::Atom::Op op;
    std::vector<std::pair<double, Posting>> by_double;  // cmp FLOAT
    std::vector<std::pair<int64_t, Posting>> by_int;    // cmp INT
  };

  // Registers posting target `target` (a target, with kRides for a rider) under `key` (null:
  // always a candidate), checking the atoms of `guard` other than `key` itself; returns whether
  // it checks every one.
  bool place(uint32_t target, const nfa::Atom* key, const std::vector<nfa::Atom>& guard);
  // Whether `event` satisfies the atoms stored with `p`.
  bool holds_all(const Posting& p, const Slot* event) const;
  // Appends the targets of the postings [first, last) (posting(*it) of each) whose atoms
  // `event` satisfies.
  template <typename It, typename PostingOf>
  void take(It first, It last, PostingOf posting, const Slot* event,
            std::vector<uint32_t>& out) const;
  template <typename T>
  void select_range(const std::vector<std::pair<T, Posting>>& table, nfa::Atom::Op op, T v,
                    const Slot* event, std::vector<uint32_t>& out) const;

  std::vector<Posting> always_;
  std::vector<EqTable> eq_;
  std::vector<RangeTable> ranges_;
  // The checks after a posting's first (see Posting), and where each target's run starts.
  std::vector<Posting> more_;
  std::unordered_map<uint32_t, uint32_t> more_at_;
  size_t targets_ = 0;
};

// The hash key of a value for equality: strings and ints by their bits, floats normalized so
// that -0.0 and 0.0 agree. Returns false for NaN, which equals nothing.
bool equality_key(Slot v, Type type, uint64_t& key);

// Whether `event` satisfies `atom`, exactly as the predicate the atom came from would decide
// (FLOAT comparisons with NaN are false). String ranges are not decided: true.
bool holds(const nfa::Atom& atom, const Slot* event);

}  // namespace cayuga::index

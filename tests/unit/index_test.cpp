// The global predicate index (index/stream_index.*): match() against a direct check of every
// guard atom on random guards and events (NaN, -0.0, INT attributes compared as FLOAT, string
// ranges), renumber() keeping results and making an event's candidates neighbours; and which
// START edges the build marks as fully decided by their guard (nfa::Emit::exact_stages).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "compiler/analyzer.h"
#include "index/stream_index.h"
#include "nfa/automaton.h"

namespace cayuga {
namespace {

using index::StreamIndex;
using nfa::Atom;
using Op = Atom::Op;
using Event = std::array<Slot, 3>;  // Name STRING, Price FLOAT, Volume INT

constexpr uint32_t kName = 0, kPrice = 1, kVolume = 2;
constexpr Op kOps[] = {Op::Eq, Op::Lt, Op::Le, Op::Gt, Op::Ge};
constexpr Op kRangeOps[] = {Op::Lt, Op::Le, Op::Gt, Op::Ge};

Atom atom(uint32_t attr, Op op, Type attr_type, Type cmp, Slot value) {
  return Atom{.attr = attr, .op = op, .attr_type = attr_type, .cmp = cmp, .value = value};
}

Atom name_is(const std::string& name) {
  return atom(kName, Op::Eq, Type::String, Type::String, string_slot(intern(name)));
}

double nan_with_bits(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

// Quiet NaNs of both signs and one with a payload: none may ever equal or order anything.
const double kNaNs[] = {std::numeric_limits<double>::quiet_NaN(),
                        -std::numeric_limits<double>::quiet_NaN(),
                        nan_with_bits(0x7ff8000000000123ull)};
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kMaxDouble = std::numeric_limits<double>::max();
// Infinities, and events one double away from a constant: the index checks `<` and `>` as
// closed intervals moved by one double, and an interval past an infinity as empty.
const double kFloatConsts[] = {-kInf, -1.5, -0.0, 0.0, 0.5, 1.0, 2.0, kMaxDouble, kInf};
const double kEventFloats[] = {-kInf,
                               -2.0,
                               -1.5,
                               -0.0,
                               0.0,
                               0.25,
                               std::nextafter(0.5, 0.0),
                               0.5,
                               std::nextafter(0.5, 1.0),
                               1.0,
                               1.5,
                               2.0,
                               3.0,
                               kMaxDouble,
                               kInf};
// The same for INT, whose `x < INT64_MIN` and `x > INT64_MAX` hold for nothing.
constexpr int64_t kMinInt = std::numeric_limits<int64_t>::min();
constexpr int64_t kMaxInt = std::numeric_limits<int64_t>::max();
const int64_t kIntConsts[] = {kMinInt, kMinInt + 1, -2, -1, 0, 1, 2, 3, kMaxInt - 1, kMaxInt};
const int64_t kEventInts[] = {kMinInt, kMinInt + 1, -3, -2, -1,          0,
                              1,       2,           3,  4,  kMaxInt - 1, kMaxInt};

// Names S10, S11, ...: guards use the first four, events one more.
std::string symbol(size_t k) {
  return "S1" + std::to_string(k);
}

class Random {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}

  size_t below(size_t n) { return static_cast<size_t>(rng_() % n); }
  template <typename T, size_t N>
  T pick(const T (&values)[N]) {
    return values[below(N)];
  }
  // A FLOAT constant: NaN one time in sixteen.
  double float_const() { return below(16) == 0 ? pick(kNaNs) : pick(kFloatConsts); }

  Atom random_atom() {
    switch (below(3)) {
      case kName:
        if (below(25) == 0)
          return atom(kName, pick(kRangeOps), Type::String, Type::String,
                      string_slot(intern(symbol(below(4)))));
        return name_is(symbol(below(4)));
      case kPrice:
        return atom(kPrice, pick(kOps), Type::Float, Type::Float, float_slot(float_const()));
      default:
        if (below(3) == 0)  // promoted: an INT attribute against a FLOAT constant
          return atom(kVolume, pick(kOps), Type::Int, Type::Float, float_slot(float_const()));
        return atom(kVolume, pick(kOps), Type::Int, Type::Int, int_slot(pick(kIntConsts)));
    }
  }

  std::vector<Atom> guard() {
    std::vector<Atom> g(below(4));
    for (Atom& a : g) a = random_atom();
    return g;
  }

  // Prices are NaN one time in eight.
  Event event() {
    return Event{string_slot(intern(symbol(below(5)))),
                 float_slot(below(8) == 0 ? pick(kNaNs) : pick(kEventFloats)),
                 int_slot(pick(kEventInts))};
  }

 private:
  std::mt19937_64 rng_;
};

bool has_nan(const std::vector<Atom>& guard) {
  return std::any_of(guard.begin(), guard.end(),
                     [](const Atom& a) { return a.cmp == Type::Float && std::isnan(a.value.f); });
}

bool is_string_range(const Atom& a) {
  return a.cmp == Type::String && a.op != Op::Eq;
}

bool has_string_range(const std::vector<Atom>& guard) {
  return std::any_of(guard.begin(), guard.end(), is_string_range);
}

std::vector<uint32_t> expected(const std::vector<std::vector<Atom>>& guards, const Event& e) {
  std::vector<uint32_t> out;
  for (uint32_t t = 0; t < guards.size(); ++t) {
    const auto& g = guards[t];
    if (std::all_of(g.begin(), g.end(), [&](const Atom& a) { return index::holds(a, e.data()); }))
      out.push_back(t);
  }
  return out;
}

std::vector<uint32_t> matched(const StreamIndex& idx, const Event& e) {
  std::vector<uint32_t> out;
  idx.match(e.data(), out);
  std::sort(out.begin(), out.end());
  return out;
}

// An index over `n` random guards (targets 0..n-1), prepared; `guards` receives them.
void build_random(uint64_t seed, size_t n, std::vector<std::vector<Atom>>& guards,
                  StreamIndex& idx) {
  Random r(seed);
  for (size_t t = 0; t < n; ++t) {
    guards.push_back(r.guard());
    const bool whole = idx.add(static_cast<uint32_t>(t), guards.back());
    if (!has_nan(guards.back())) {
      EXPECT_EQ(whole, !has_string_range(guards.back())) << t;
    }
  }
  idx.prepare();
}

TEST(IndexHolds, ComparesLikeThePredicate) {
  const Event e{string_slot(intern("S10")), float_slot(-0.0), int_slot(3)};
  EXPECT_TRUE(
      index::holds(atom(kPrice, Op::Eq, Type::Float, Type::Float, float_slot(0.0)), e.data()));
  EXPECT_FALSE(
      index::holds(atom(kPrice, Op::Lt, Type::Float, Type::Float, float_slot(0.0)), e.data()));
  EXPECT_TRUE(
      index::holds(atom(kVolume, Op::Gt, Type::Int, Type::Float, float_slot(2.5)), e.data()));
  EXPECT_FALSE(
      index::holds(atom(kVolume, Op::Eq, Type::Int, Type::Float, float_slot(2.5)), e.data()));
  EXPECT_TRUE(index::holds(atom(kVolume, Op::Le, Type::Int, Type::Int, int_slot(3)), e.data()));
  EXPECT_TRUE(index::holds(name_is("S10"), e.data()));
  EXPECT_FALSE(index::holds(name_is("S11"), e.data()));
  // String ranges are left to the predicate.
  EXPECT_TRUE(index::holds(
      atom(kName, Op::Gt, Type::String, Type::String, string_slot(intern("zzz"))), e.data()));
  const Event nan{string_slot(intern("S10")), float_slot(kNaNs[0]), int_slot(3)};
  for (Op op : kOps) {
    EXPECT_FALSE(
        index::holds(atom(kPrice, op, Type::Float, Type::Float, float_slot(1.0)), nan.data()));
    EXPECT_FALSE(
        index::holds(atom(kPrice, op, Type::Float, Type::Float, float_slot(kNaNs[1])), e.data()));
  }
}

// match() returns exactly the targets whose every atom holds, each once.
TEST(IndexDifferential, MatchIsExactlyTheGuardsThatHold) {
  std::vector<std::vector<Atom>> guards;
  StreamIndex idx;
  build_random(42, 3000, guards, idx);
  const size_t nans = std::count_if(guards.begin(), guards.end(), has_nan);
  const size_t ranges = std::count_if(guards.begin(), guards.end(), has_string_range);
  // Guards without an indexable atom: empty, or string ranges only.
  const size_t always = std::count_if(guards.begin(), guards.end(), [](const auto& g) {
    return std::all_of(g.begin(), g.end(), is_string_range);
  });
  // The generator covers every case.
  EXPECT_GT(nans, 0u);
  EXPECT_GT(ranges, 0u);
  EXPECT_GT(always, 0u);
  EXPECT_EQ(idx.targets(), guards.size() - nans);  // a NaN guard registers nothing
  EXPECT_EQ(idx.always_count(), always);
  // Names (interned ids, dense) are looked up by array; INT and FLOAT constants from both ends
  // of their ranges by hashing.
  EXPECT_EQ(idx.array_tables(), 1u);
  EXPECT_GT(idx.hash_tables(), 0u);

  Random r(7);
  size_t total = 0;
  for (int i = 0; i < 3000; ++i) {
    const Event e = r.event();
    const std::vector<uint32_t> got = matched(idx, e);
    ASSERT_EQ(got, expected(guards, e)) << "event " << i << ": " << interned(e[kName].s) << ' '
                                        << e[kPrice].f << ' ' << e[kVolume].i;
    for (uint32_t t : got) ASSERT_FALSE(has_nan(guards[t])) << t;
    total += got.size();
  }
  EXPECT_GT(total, 3000u);  // events do match: the comparison is not of empty sets
}

// An equality table looked up by array: keys at both ends of its range, a key missing inside
// it, and events below, above, one past either end and far outside (a value below the range
// wraps past it as an unsigned offset). The same keys spread wide go to a hash table, with the
// same results.
TEST(IndexEqualityTables, ArrayAndHashFindTheSameKeys) {
  const int64_t events[] = {kMinInt, -1, 0, 4, 5, 6, 7, 8, 11, 12, 13, kMaxInt};
  for (const int64_t spread : {int64_t{1}, int64_t{1000}}) {
    std::vector<std::vector<Atom>> guards;
    StreamIndex idx;
    for (const int64_t k : {5, 6, 6, 8, 12}) {  // (7 and 9 to 11 missing; 6 twice)
      const int64_t key = k == 5 ? k : k * spread;
      guards.push_back({atom(kVolume, Op::Eq, Type::Int, Type::Int, int_slot(key))});
      idx.add(static_cast<uint32_t>(guards.size() - 1), guards.back());
    }
    idx.prepare();
    EXPECT_EQ(idx.array_tables(), spread == 1 ? 1u : 0u);
    EXPECT_EQ(idx.hash_tables(), spread == 1 ? 0u : 1u);
    size_t total = 0;
    for (const int64_t v : events) {
      const int64_t scaled = v == kMinInt || v == kMaxInt ? v : v * spread;
      for (const int64_t value : {v, scaled}) {
        const Event e{string_slot(intern("S10")), float_slot(1.0), int_slot(value)};
        const std::vector<uint32_t> got = matched(idx, e);
        ASSERT_EQ(got, expected(guards, e)) << "spread " << spread << ", Volume " << value;
        total += got.size();
      }
    }
    // 5, 8 and 12 match one target, 6 two, each found twice with a spread of 1 and once with
    // a spread of 1000 (5 by its own value, the others by theirs times 1000).
    EXPECT_EQ(total, spread == 1 ? 10u : 5u);
  }
}

// After renumber() every registered number is moved exactly once, onto the same set of numbers,
// and each event's matches are the old ones under the new numbers.
TEST(IndexRenumber, MovesArePermutationAndResultsFollow) {
  std::vector<std::vector<Atom>> guards;
  StreamIndex idx;
  build_random(43, 2000, guards, idx);
  std::vector<uint32_t> registered;
  for (uint32_t t = 0; t < guards.size(); ++t)
    if (!has_nan(guards[t])) registered.push_back(t);

  Random r(8);
  std::vector<Event> events;
  std::vector<std::vector<uint32_t>> before;
  for (int i = 0; i < 1000; ++i) {
    events.push_back(r.event());
    before.push_back(matched(idx, events.back()));
  }

  const auto moves = idx.renumber();
  std::vector<uint32_t> from, to;
  constexpr uint32_t kUnmoved = UINT32_MAX;
  std::vector<uint32_t> new_number(guards.size(), kUnmoved);
  size_t changed = 0;
  for (auto [old_number, number] : moves) {
    from.push_back(old_number);
    to.push_back(number);
    ASSERT_LT(old_number, guards.size());
    new_number[old_number] = number;
    changed += old_number != number;
  }
  std::sort(from.begin(), from.end());
  std::sort(to.begin(), to.end());
  EXPECT_EQ(from, registered);
  EXPECT_EQ(to, registered);
  EXPECT_GT(changed, 0u);  // the order does change, so the mapping below is exercised

  for (size_t i = 0; i < events.size(); ++i) {
    std::vector<uint32_t> want;
    for (uint32_t t : before[i]) want.push_back(new_number[t]);
    std::sort(want.begin(), want.end());
    ASSERT_EQ(matched(idx, events[i]), want) << "event " << i;
  }
}

// Targets of one key, registered interleaved with other keys and with a range table, get
// consecutive numbers; so do those of one range run.
TEST(IndexRenumber, OneEventsCandidatesBecomeNeighbours) {
  StreamIndex idx;
  for (uint32_t t = 0; t < 60; ++t) {
    if (t % 2 == 0) {
      EXPECT_TRUE(idx.add(t, {name_is("K" + std::to_string(t / 2 % 3))}));
    } else {
      // Constants 0..29, each once, in a scrambled order.
      const int64_t c = t / 2 * 7 % 30;
      EXPECT_TRUE(idx.add(t, {atom(kVolume, Op::Gt, Type::Int, Type::Int, int_slot(c))}));
    }
  }
  idx.prepare();
  // Key K1: targets 2, 8, ..., 56; Volume 10 > c for the ten constants 0..9.
  const Event by_key{string_slot(intern("K1")), float_slot(0), int_slot(-1)};
  const Event by_range{string_slot(intern("none")), float_slot(0), int_slot(10)};
  EXPECT_EQ(matched(idx, by_key), (std::vector<uint32_t>{2, 8, 14, 20, 26, 32, 38, 44, 50, 56}));
  EXPECT_EQ(matched(idx, by_range), (std::vector<uint32_t>{1, 3, 11, 19, 27, 29, 37, 45, 53, 55}));

  idx.renumber();
  for (const Event& e : {by_key, by_range}) {
    const std::vector<uint32_t> got = matched(idx, e);
    ASSERT_EQ(got.size(), 10u);
    EXPECT_EQ(got.back() - got.front(), 9u) << ::testing::PrintToString(got);
  }
}

// Riders (add_rider) among ordinary targets: a rider is handed out exactly when the event has
// its key, with kRides exactly when every atom of its rider guard holds too; ordinary targets
// are unaffected, and both survive renumber().
TEST(IndexRiders, HandedOutByTheirKeyAndFlaggedByTheirGuard) {
  Random r(44);
  StreamIndex idx;
  std::vector<std::vector<Atom>> guards;  // an ordinary target's guard
  std::vector<Atom> keys;                 // a rider's key
  std::vector<std::vector<Atom>> riders;  // a rider's other atoms
  std::vector<bool> is_rider;
  for (uint32_t t = 0; t < 2000; ++t) {
    std::vector<Atom> g = r.guard();
    const bool rider = t % 2 == 0 && StreamIndex::checks_all(g);
    is_rider.push_back(rider);
    if (rider) {
      keys.push_back(name_is(symbol(r.below(4))));
      idx.add_rider(t, keys.back(), g);
    } else {
      idx.add(t, g);
      keys.emplace_back();
    }
    guards.push_back(rider ? std::vector<Atom>{} : g);
    riders.push_back(rider ? g : std::vector<Atom>{});
  }
  EXPECT_GT(std::count(is_rider.begin(), is_rider.end(), true), 500);
  idx.prepare();
  const auto holds_all = [](const std::vector<Atom>& g, const Event& e) {
    return std::all_of(g.begin(), g.end(),
                       [&](const Atom& a) { return index::holds(a, e.data()); });
  };
  std::vector<uint32_t> number(guards.size());
  for (uint32_t t = 0; t < number.size(); ++t) number[t] = t;
  for (int round = 0; round < 2; ++round) {
    Random er(9);
    size_t flagged = 0, unflagged = 0;
    for (int i = 0; i < 2000; ++i) {
      const Event e = er.event();
      std::vector<uint32_t> want;
      for (uint32_t t = 0; t < guards.size(); ++t) {
        if (is_rider[t] ? !index::holds(keys[t], e.data()) : !holds_all(guards[t], e)) continue;
        if (!is_rider[t] && has_nan(guards[t])) continue;
        const bool rides = is_rider[t] && holds_all(riders[t], e);
        (rides ? flagged : unflagged) += is_rider[t];
        want.push_back(number[t] | (rides ? StreamIndex::kRides : 0));
      }
      std::sort(want.begin(), want.end());
      ASSERT_EQ(matched(idx, e), want) << "round " << round << ", event " << i;
    }
    EXPECT_GT(flagged, 100u);  // both outcomes occur
    EXPECT_GT(unflagged, 100u);
    if (round == 0)
      for (auto [from, to] : idx.renumber()) number[from] = to;
  }
}

constexpr const char* kS = "CREATE STREAM S (Name STRING, Price FLOAT, Volume INT);\n";

// The START edge of stream S in the automaton of one query over S.
nfa::Emit start_emit(const std::string& query) {
  AnalyzeResult r = compile_script(std::string(kS) + query);
  for (const auto& d : r.errors) ADD_FAILURE() << d.line << ":" << d.column << ": " << d.message;
  if (!r.script) return {};
  nfa::Automaton a;
  EXPECT_EQ(nfa::build(*r.script, a), "");
  const int64_t s = a.find_stream("S");
  for (const auto& node : a.nodes) {
    if (node.kind != nfa::NodeKind::Start || node.stream != s) continue;
    EXPECT_EQ(node.emits.size(), 1u) << query;
    return node.emits.empty() ? nfa::Emit{} : node.emits[0];
  }
  ADD_FAILURE() << "no START node on S: " << query;
  return {};
}

int exact_stages(const std::string& query) {
  return start_emit(query).exact_stages;
}

TEST(ExactStages, PlainConjunctionIsExact) {
  const nfa::Emit e = start_emit("SELECT * FROM FILTER{Name = 'A' AND Volume > 10}(S);");
  EXPECT_EQ(e.exact_stages, 1);
  EXPECT_EQ(e.stages.size(), 1u);
  EXPECT_EQ(e.guard, (std::vector<Atom>{
                         name_is("A"),
                         atom(kVolume, Op::Gt, Type::Int, Type::Int, int_slot(10)),
                     }));
  // The constant on the left: mirrored.
  EXPECT_EQ(exact_stages("SELECT * FROM FILTER{10 < Volume AND Price >= 2.5}(S);"), 1);
}

TEST(ExactStages, WhatTheGuardCannotSayIsNotExact) {
  EXPECT_EQ(exact_stages("SELECT * FROM FILTER{Name = 'A' AND Volume > 10 OR Price < 3}(S);"), 0);
  EXPECT_EQ(exact_stages("SELECT * FROM FILTER{Name > 'A'}(S);"), 0);  // a string range
  EXPECT_EQ(exact_stages("SELECT * FROM FILTER{DUR < 5}(S);"), 0);
  EXPECT_EQ(exact_stages("SELECT * FROM FILTER{Price * 2 > 10}(S);"), 0);
  EXPECT_EQ(exact_stages("SELECT * FROM FILTER{Volume != 3}(S);"), 0);
  EXPECT_EQ(exact_stages("SELECT * FROM FILTER{NOT (Volume > 10)}(S);"), 0);
  // One conjunct the guard cannot say spoils the FILTER, though the others become atoms.
  const nfa::Emit e = start_emit("SELECT * FROM FILTER{Name = 'A' AND Price * 2 > 10}(S);");
  EXPECT_EQ(e.exact_stages, 0);
  EXPECT_EQ(e.guard, std::vector<Atom>{name_is("A")});
}

TEST(ExactStages, StackedFiltersCountWhileEachIsExact) {
  EXPECT_EQ(exact_stages("SELECT * FROM FILTER{Volume > 10}(FILTER{Name = 'A'}(S));"), 2);
  // Only leading stages count: an inexact first FILTER ends the run.
  EXPECT_EQ(exact_stages("SELECT * FROM FILTER{Volume > 10}(FILTER{Price * 2 > 10}(S));"), 0);
  EXPECT_EQ(exact_stages("SELECT * FROM FILTER{Price * 2 > 10}(FILTER{Name = 'A'}(S));"), 1);
}

TEST(ExactStages, ASelectEndsTheCount) {
  const nfa::Emit e = start_emit(
      "SELECT * FROM FILTER{Volume > 10}(SELECT Name, Price * 2 AS Twice, Volume FROM "
      "FILTER{Name = 'A'}(S));");
  EXPECT_EQ(e.stages.size(), 3u);  // FILTER, SELECT, FILTER
  EXPECT_EQ(e.exact_stages, 1);
  EXPECT_EQ(e.guard, std::vector<Atom>{name_is("A")});
}

}  // namespace
}  // namespace cayuga

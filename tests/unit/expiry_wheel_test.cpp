// The expiry wheel hands out exactly the deadlines that have passed, however time moves.
#include "runtime/expiry_wheel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <tuple>

namespace cayuga {
namespace {

using Key = std::tuple<int64_t, uint32_t, uint32_t>;

std::vector<Key> sorted(const std::vector<ExpiryWheel::Entry>& v) {
  std::vector<Key> out;
  for (const auto& e : v) out.emplace_back(e.deadline, e.node, e.bucket);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ExpiryWheel, HandsOutPassedDeadlinesOnly) {
  ExpiryWheel w;
  std::vector<ExpiryWheel::Entry> due;
  w.take_until(0, due);
  w.add(5, 1, 0);
  w.add(1023, 2, 0);
  w.add(1024, 3, 0);
  w.add(1024 + (int64_t{1} << 40), 4, 0);  // the same slots as 1024 in both levels, later rounds
  w.add(INT64_MAX, 5, 0);           // never
  w.take_until(4, due);
  EXPECT_TRUE(due.empty());
  w.take_until(5, due);
  EXPECT_EQ(sorted(due), (std::vector<Key>{{5, 1, 0}}));
  due.clear();
  w.take_until(1024, due);
  EXPECT_EQ(sorted(due), (std::vector<Key>{{1023, 2, 0}, {1024, 3, 0}}));
  due.clear();
  w.take_until(1024 + (int64_t{1} << 40) - 1, due);  // a jump over many rounds
  EXPECT_TRUE(due.empty());
  w.take_until(int64_t{1} << 41, due);
  EXPECT_EQ(sorted(due), (std::vector<Key>{{1024 + (int64_t{1} << 40), 4, 0}}));
  EXPECT_EQ(w.size(), 1u);
}

// Renumbering the nodes (the engine drops dead ones) renumbers the entries in both levels
// and drops those of the nodes that went; the others come out when due, as before.
TEST(ExpiryWheel, RenumberedNodesKeepTheirDeadlines) {
  ExpiryWheel w;
  std::vector<ExpiryWheel::Entry> due;
  w.take_until(0, due);
  w.add(10, 1, 0);      // fine level
  w.add(20, 2, 5);      // node 2 goes
  w.add(200000, 3, 7);  // coarse level
  w.add(300000, 2, 0);  // coarse level, node 2 goes
  w.add(300000, 4, 1);
  w.renumber([](uint32_t n) { return n == 2 ? ExpiryWheel::kDrop : n - (n > 2); });
  EXPECT_EQ(w.size(), 3u);
  w.take_until(100, due);
  EXPECT_EQ(sorted(due), (std::vector<Key>{{10, 1, 0}}));
  due.clear();
  w.take_until(400000, due);
  EXPECT_EQ(sorted(due), (std::vector<Key>{{200000, 2, 7}, {300000, 3, 1}}));
  EXPECT_EQ(w.size(), 0u);
}

TEST(ExpiryWheel, NegativeTimesAndAddsBeforeTheFirstTake) {
  ExpiryWheel w;
  w.add(-3000, 1, 1);
  w.add(-1, 2, 2);
  w.add(7, 3, 3);
  std::vector<ExpiryWheel::Entry> due;
  w.take_until(-1, due);
  EXPECT_EQ(sorted(due), (std::vector<Key>{{-3000, 1, 1}, {-1, 2, 2}}));
  due.clear();
  w.take_until(100, due);
  EXPECT_EQ(sorted(due), (std::vector<Key>{{7, 3, 3}}));
  EXPECT_EQ(w.size(), 0u);
}

// A deadline that has passed when it is added (an instance older than its bound) comes out at
// the next call, not a round later.
TEST(ExpiryWheel, HandsOutAPassedDeadlineAtTheNextCall) {
  ExpiryWheel w;
  std::vector<ExpiryWheel::Entry> due;
  w.add(600000, 1, 0);  // keeps the wheel busy
  w.take_until(100000, due);
  w.add(99000, 2, 0);      // an earlier slot
  w.add(100000, 3, 0);     // the current time
  w.add(INT64_MIN, 4, 0);  // the least deadline expiry_of() gives
  w.take_until(100001, due);
  EXPECT_EQ(sorted(due), (std::vector<Key>{{INT64_MIN, 4, 0}, {99000, 2, 0}, {100000, 3, 0}}));
  EXPECT_EQ(w.size(), 1u);
}

// Against a plain list: random deadlines ahead of the clock (seconds, minutes and hours ahead)
// and a few behind it, the clock moving by small steps and by large jumps.
TEST(ExpiryWheel, MatchesAReferenceList) {
  std::mt19937_64 rng(11);
  ExpiryWheel w;
  std::vector<Key> pending;
  int64_t now = -50000;
  for (int step = 0; step < 20000; ++step) {
    const int adds = static_cast<int>(rng() % 4);
    for (int a = 0; a < adds; ++a) {
      // Mostly within a fine slot or a few; often minutes ahead (coarse slots, moved to fine
      // slots as time reaches their period); sometimes hours (later rounds of the fine level)
      // or days (later rounds of the coarse level, which stay when their slot is moved).
      const uint64_t kind = rng() % 16;
      const int64_t ahead = kind == 15 ? -static_cast<int64_t>(rng() % 5000)  // passed already
                                       : static_cast<int64_t>(kind == 0  ? rng() % 400000000
                                                              : kind < 2 ? rng() % 20000000
                                                              : kind < 8 ? rng() % 1800000
                                                                         : rng() % 5000);
      const Key k{now + 1 + ahead, static_cast<uint32_t>(step), static_cast<uint32_t>(a)};
      w.add(std::get<0>(k), std::get<1>(k), std::get<2>(k));
      pending.push_back(k);
    }
    now += rng() % 100 == 0 ? static_cast<int64_t>(rng() % 10000000)
                            : static_cast<int64_t>(rng() % 3000);
    std::vector<ExpiryWheel::Entry> due;
    w.take_until(now, due);
    std::vector<Key> expect;
    std::erase_if(pending, [&](const Key& k) {
      if (std::get<0>(k) > now) return false;
      expect.push_back(k);
      return true;
    });
    std::sort(expect.begin(), expect.end());
    ASSERT_EQ(sorted(due), expect) << "step " << step << " now " << now;
    ASSERT_EQ(w.size(), pending.size());
  }
}

}  // namespace
}  // namespace cayuga

// The epoch engine through its C++ API, on the worked examples of CEL.md §9 and on the
// properties that the declarative suite cannot see (state sizes, expiry, heartbeats).
#include "runtime/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <sstream>

#include "runtime/io.h"
#include "tests/unit/stock_bars_args.h"

namespace cayuga {
namespace {

// Options with a given JIT mode and thread count (0: one per core), the rest at their defaults
// (not the environment's).
EngineOptions options(JitMode jit, unsigned threads = 0) {
  EngineOptions opts;
  opts.jit = jit;
  opts.threads = threads;
  return opts;
}

// JIT off and `threads` threads; with more than one, every event goes through a parallel batch.
EngineOptions batched(unsigned threads) {
  EngineOptions opts = options(JitMode::Off, threads);
  opts.parallel_min_work = 1;
  return opts;
}

// Renders outputs as "Stream[t0,t1] v1 v2 ..." for exact comparison.
class Harness {
 public:
  explicit Harness(std::string_view script, EngineOptions opts = EngineOptions::from_env())
      : engine(opts) {
    Diagnostics ds = engine.add_script(script);
    for (const auto& d : ds) ADD_FAILURE() << d.line << ":" << d.column << ": " << d.message;
    engine.set_sink([this](uint32_t stream, const RowView& row) {
      const auto& s = engine.automaton().streams[stream];
      std::ostringstream out;
      out << s.name << "[" << row.t0 << "," << row.t1 << "]";
      for (size_t i = 0; i < s.schema.size(); ++i) {
        out << ' ';
        switch (s.schema.attrs[i].type) {
          case Type::Int:
            out << row.values[i].i;
            break;
          case Type::Float:
            out << row.values[i].f;
            break;
          case Type::String:
            out << interned(row.values[i].s);
            break;
        }
      }
      outputs.push_back(out.str());
    });
  }

  uint32_t stream(std::string_view name) {
    int64_t id = engine.automaton().find_stream(name);
    EXPECT_GE(id, 0) << name;
    return static_cast<uint32_t>(id);
  }

  // A Stock(Name, Price, Volume) point event.
  Engine::PushResult stock(const char* name, double price, int64_t volume, int64_t t) {
    Slot v[3] = {string_slot(intern(name)), float_slot(price), int_slot(volume)};
    return engine.push(stream("Stock"), t, t, v);
  }

  Engine engine;
  std::vector<std::string> outputs;
};

constexpr const char* kStock = "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n";

TEST(Engine, WorkedExampleNext) {
  Harness h(std::string(kStock) +
            "SELECT * FROM Stock NEXT{$1.Name = $2.Name} Stock PUBLISH T5;");
  h.stock("IBM", 10, 1, 1);
  h.stock("MSFT", 20, 1, 2);
  h.stock("IBM", 11, 1, 3);
  h.stock("IBM", 12, 1, 3);
  h.stock("MSFT", 21, 1, 4);
  h.engine.finish();
  EXPECT_EQ(h.outputs, (std::vector<std::string>{
                           "T5[1,3] IBM 10 1 IBM 11 1",
                           "T5[1,3] IBM 10 1 IBM 12 1",
                           "T5[2,4] MSFT 20 1 MSFT 21 1",
                       }));
  // The two instances started by IBM@3 and the one by MSFT@4 are still waiting.
  EXPECT_EQ(h.engine.stats().instances, 3u);
  EXPECT_EQ(h.engine.stats().epochs, 4u);
}

TEST(Engine, WorkedExampleFold) {
  Harness h(std::string(kStock) +
            "SELECT Name, Price_1 AS Start, Price AS Last, cnt\n"
            "FROM (SELECT *, 1 AS cnt FROM Stock) FOLD{$2.Name = $.Name, $2.Price > $.Price, "
            "$.cnt + 1 AS cnt} Stock\nPUBLISH Rising;");
  h.stock("IBM", 10, 1, 1);
  h.stock("MSFT", 50, 1, 2);
  h.stock("IBM", 11, 1, 3);
  h.stock("IBM", 12, 1, 4);
  h.stock("IBM", 9, 1, 5);
  h.engine.finish();
  // Inside one epoch the order is not part of the contract: compare [1,4] and [3,4] as a set.
  std::sort(h.outputs.begin(), h.outputs.end());
  EXPECT_EQ(h.outputs, (std::vector<std::string>{
                           "Rising[1,3] IBM 10 11 2",
                           "Rising[1,4] IBM 10 12 3",
                           "Rising[3,4] IBM 11 12 2",
                       }));
}

TEST(Engine, WorkedExampleResubscriptionAndDur) {
  Harness h(std::string(kStock) +
            "SELECT Name, Price FROM FILTER{Volume > 1000}(Stock) PUBLISH Big;\n"
            "SELECT Name_1 AS BigName, Name AS NextName FROM Big NEXT{} Stock PUBLISH AfterBig;\n"
            "SELECT * FROM FILTER{DUR <= 2 SEC}(Stock NEXT{$1.Name = $2.Name} Stock) "
            "PUBLISH Quick;");
  h.stock("A", 10, 5000, 1000);
  h.stock("B", 11, 10, 1000);
  h.stock("C", 12, 7, 2000);
  h.stock("A", 13, 8, 2500);
  h.stock("B", 14, 9, 5000);
  h.engine.finish();
  EXPECT_EQ(h.outputs, (std::vector<std::string>{
                           "Big[1000,1000] A 10",
                           "AfterBig[1000,2000] A C",
                           "Quick[1000,2500] A 10 5000 A 13 8",
                       }));
}

TEST(Engine, LateEventIsCountedAndDropped) {
  Harness h(std::string(kStock) + "SELECT * FROM Stock NEXT{} Stock;");
  EXPECT_EQ(h.stock("A", 1, 1, 5), Engine::PushResult::Ok);
  EXPECT_EQ(h.stock("A", 1, 1, 4), Engine::PushResult::Late);
  EXPECT_EQ(h.stock("A", 1, 1, 6), Engine::PushResult::Ok);
  h.engine.finish();
  EXPECT_EQ(h.engine.stats().late_events, 1u);
  EXPECT_EQ(h.outputs, (std::vector<std::string>{"q1[5,6] A 1 1 A 1 1"}));
}

// FILTER{DUR < 1 MIN} over NEXT: an instance that waited a minute can never produce output, so
// it is freed without an event touching it; state stays flat on an endless stream.
TEST(Engine, EagerExpiryKeepsStateFlat) {
  Harness h(std::string(kStock) +
            "SELECT * FROM FILTER{DUR < 1 MIN}(Stock NEXT{$1.Name = $2.Name} Stock);");
  for (int i = 0; i < 10000; ++i) {
    // A new name every 10 s: its instance never finds a partner.
    std::string name = "S" + std::to_string(i);
    h.stock(name.c_str(), 1, 1, int64_t{i} * 10000);
  }
  h.engine.finish();
  EXPECT_TRUE(h.outputs.empty());
  EXPECT_LE(h.engine.stats().peak_instances, 7u);
  EXPECT_GE(h.engine.stats().expired, 9990u);
}

// Two queries share one NEXT node but bound DUR differently: the node keeps its instances for
// the larger bound, and each query's own bound still decides its outputs (checked by the
// runtime as a bound, not run as a FILTER).
TEST(Engine, SharedNodeEmitsKeepTheirOwnDurBounds) {
  Harness h(
      std::string(kStock) +
      "SELECT * FROM FILTER{DUR <= 2 SEC}(Stock NEXT{$1.Name = $2.Name} Stock) PUBLISH Short;\n"
      "SELECT Name, Price FROM FILTER{DUR <= 10 SEC}(Stock NEXT{$1.Name = $2.Name} Stock) "
      "PUBLISH Long;");
  h.stock("A", 1, 10, 1000);
  h.stock("A", 2, 20, 2500);
  h.stock("A", 3, 30, 9000);
  h.engine.finish();
  EXPECT_EQ(h.outputs, (std::vector<std::string>{
                           "Short[1000,2500] A 1 10 A 2 20",
                           "Long[1000,2500] A 2",
                           "Long[2500,9000] A 3",
                       }));
}

// FOLD nodes that differ only in their START filter and DUR bound visit through one of them
// (Engine::visit_node), but each keeps its own bound: B's rebound instance, begun at 1000, is not
// freed by A's 2-second bound at 3001, and extends its run at 4000. C's FOLD differs in its
// rebind (a falling run) and visits through its own node.
TEST(Engine, NodesThatVisitAlikeKeepTheirOwnDurBounds) {
  const std::string script =
      std::string(kStock) +
      "SELECT Name, Price_1 AS Start, Price AS Last FROM FILTER{DUR <= 2 SEC}("
      "FILTER{Name = 'A'}(Stock) FOLD{$2.Name = $.Name, $2.Price > $.Price,} Stock) PUBLISH "
      "Short;\n"
      "SELECT Name, Price_1 AS Start, Price AS Last FROM FILTER{DUR <= 10 SEC}("
      "FILTER{Name = 'B'}(Stock) FOLD{$2.Name = $.Name, $2.Price > $.Price,} Stock) PUBLISH Long;\n"
      "SELECT Name, Price_1 AS Start, Price AS Last FROM FILTER{DUR <= 10 SEC}("
      "FILTER{Name = 'C'}(Stock) FOLD{$2.Name = $.Name, $2.Price < $.Price,} Stock) PUBLISH Fall;";
  for (unsigned threads : {1u, 4u}) {
    Harness h(script, batched(threads));
    h.stock("A", 1, 1, 1000);
    h.stock("B", 1, 1, 1000);
    h.stock("C", 3, 1, 1000);
    h.stock("A", 2, 1, 2000);
    h.stock("B", 2, 1, 2000);
    h.stock("C", 2, 1, 2000);
    h.engine.advance_to(3001);
    EXPECT_EQ(h.engine.stats().expired, 1u) << threads << " threads";
    EXPECT_EQ(h.engine.stats().instances, 5u) << threads << " threads";
    h.stock("B", 3, 1, 4000);
    h.engine.finish();
    EXPECT_EQ(h.outputs, (std::vector<std::string>{
                             "Short[1000,2000] A 1 2",
                             "Long[1000,2000] B 1 2",
                             "Fall[1000,2000] C 3 2",
                             "Long[1000,4000] B 1 3",
                             "Long[2000,4000] B 2 3",
                         }))
        << threads << " threads";
  }
}

// peak_instances is the most instances stored at once, counted when an epoch closes, before it
// drops anything: the same whether the epoch ran on one thread or as a parallel batch (whose
// new instances reach their buckets only after the batch). Here the instance of t=1 is due at the
// close of epoch 10 (10 + 1 - 1 > 9), into whose bucket epoch 10 adds one.
TEST(Engine, PeakInstancesCountsWhatAnEpochStored) {
  for (unsigned threads : {1u, 4u}) {
    Harness h(
        std::string(kStock) + "SELECT * FROM FILTER{DUR < 10}(Stock NEXT{$2.Price > 100} Stock);",
        batched(threads));
    h.stock("A", 1, 1, 1);
    h.stock("B", 2, 1, 10);
    h.engine.flush();  // (runs a buffered batch)
    EXPECT_EQ(h.engine.stats().instances, 2u) << threads << " threads";
    h.engine.finish();
    EXPECT_EQ(h.engine.stats().instances, 1u) << threads << " threads";
    EXPECT_EQ(h.engine.stats().expired, 1u) << threads << " threads";
    EXPECT_EQ(h.engine.stats().peak_instances, 2u) << threads << " threads";
    EXPECT_TRUE(h.outputs.empty());
  }
}

TEST(Engine, HeartbeatExpiresOnQuietStream) {
  Harness h(std::string(kStock) +
            "SELECT * FROM FILTER{DUR <= 2 SEC}(Stock NEXT{$1.Name = $2.Name} Stock);");
  h.stock("A", 1, 1, 1000);
  h.engine.advance_to(2000);
  EXPECT_EQ(h.engine.stats().instances, 1u);
  h.engine.advance_to(3001);  // 3001 - 1000 > 2000: no partner can come in time any more
  EXPECT_EQ(h.engine.stats().instances, 0u);
  EXPECT_EQ(h.engine.stats().expired, 1u);
}

// Expiry frees every instance at the first close past its bound, never later, however the
// closes are spaced: against a brute-force list, on instances nothing consumes, in one bucket
// (a node without a key: requeued after every expiry, at its next instance's deadline) and in
// buckets by name, with epochs of several events, gaps short and long, and heartbeats, on one
// thread and through parallel batches.
TEST(Engine, ExpiryIsExactAtEveryClose) {
  const int64_t bounds[] = {50, 37, 9};
  const std::string script = std::string(kStock) +
                             "SELECT * FROM FILTER{DUR <= 50}(Stock NEXT{$2.Volume < 0} Stock);\n"
                             "SELECT * FROM FILTER{DUR <= 37}(Stock NEXT{$1.Name = $2.Name AND "
                             "$2.Volume < 0} Stock);\n"
                             "SELECT * FROM FILTER{DUR <= 9}(Stock NEXT{$2.Volume < -1} Stock);";
  for (unsigned threads : {1u, 4u}) {
    Harness h(script, batched(threads));
    std::mt19937_64 rng(5);
    std::vector<std::pair<int64_t, int64_t>> live;  // (t0, bound) of every query's instances
    uint64_t expired = 0;
    const auto drop = [&](int64_t next_time) {
      expired += std::erase_if(live, [&](const auto& x) { return next_time - x.first > x.second; });
    };
    int64_t t = 0, epoch = 0;
    bool open = false;
    for (int i = 0; i < 4000; ++i) {
      const uint64_t kind = rng() % 100;
      if (kind < 2) {  // a heartbeat
        const int64_t to = t + 1 + static_cast<int64_t>(rng() % 400);
        if (open) drop(epoch + 1);
        open = false;
        h.engine.advance_to(to);
        drop(to);
        t = to;
        ASSERT_EQ(h.engine.stats().instances, live.size()) << "heartbeat to " << to;
        continue;
      }
      t += kind < 40   ? 0
           : kind < 90 ? static_cast<int64_t>(rng() % 15) + 1
                       : static_cast<int64_t>(rng() % 60) + 16;
      if (open && t > epoch) drop(epoch + 1);
      open = true;
      epoch = t;
      const std::string name = "N" + std::to_string(rng() % 5);
      ASSERT_EQ(h.stock(name.c_str(), 1, 1, t), Engine::PushResult::Ok);
      for (int64_t b : bounds) live.emplace_back(t, b);
      h.engine.flush();
      ASSERT_EQ(h.engine.stats().instances, live.size()) << threads << " threads, t " << t;
      ASSERT_EQ(h.engine.stats().expired, expired) << threads << " threads, t " << t;
    }
    EXPECT_GT(expired, 3000u);
    EXPECT_TRUE(h.outputs.empty());
  }
}

// A node's buckets by key (`$1.K = $2.K`) through the growth of their table: 3,000 keys, each
// met again once in the reverse order, pair exactly once; 0.0 finds -0.0's bucket, NaN none (its
// instances are never stored), and keys no bucket has find nothing. Hints announce every event,
// as a reader would. The same with the instance index off.
TEST(Engine, KeyedBucketsFindEveryKeyAsTheirTableGrows) {
  for (bool instance_index : {true, false}) {
    EngineOptions opts = options(JitMode::Off, 1);
    opts.instance_index = instance_index;
    Harness h(
        "CREATE STREAM R (K FLOAT, V INT);\n"
        "SELECT * FROM R NEXT{$1.K = $2.K} R PUBLISH Pairs;",
        opts);
    const uint32_t r = h.stream("R");
    std::vector<std::pair<double, int64_t>> events;
    const int n = 3000;
    for (int i = 1; i <= n; ++i) events.emplace_back(i, i);
    events.emplace_back(-0.0, -1);
    events.emplace_back(std::nan(""), -2);
    for (int i = n; i >= 1; --i) events.emplace_back(i + 0.5, -3);  // no bucket has these
    for (int i = n; i >= 1; --i) events.emplace_back(i, -i);
    events.emplace_back(0.0, -4);
    events.emplace_back(std::nan(""), -5);
    std::vector<std::array<Slot, 2>> rows;
    for (const auto& [k, v] : events) rows.push_back({float_slot(k), int_slot(v)});
    for (size_t i = 0; i < rows.size(); ++i) {
      if (i + Engine::kHintDistance < rows.size())
        h.engine.hint(r, rows[i + Engine::kHintDistance].data());
      const int64_t t = static_cast<int64_t>(i) + 1;
      ASSERT_EQ(h.engine.push(r, t, t, rows[i].data()), Engine::PushResult::Ok);
    }
    h.engine.finish();
    std::vector<std::string> want;
    const int64_t second = 2 * n + 3;  // the time of the first event of the second pass
    for (int i = n; i >= 1; --i) {
      const int64_t t = second + (n - i);
      want.push_back("Pairs[" + std::to_string(i) + "," + std::to_string(t) + "] " +
                     std::to_string(i) + " " + std::to_string(i) + " " + std::to_string(i) + " " +
                     std::to_string(-i));
    }
    want.push_back("Pairs[" + std::to_string(n + 1) + "," + std::to_string(second + n) +
                   "] -0 -1 0 -4");
    EXPECT_EQ(h.outputs, want) << "instance index " << instance_index;
    // Every event stored an instance, every pair consumed one, and the instance index stores
    // none with a NaN key (without it, they are stored and never match).
    EXPECT_EQ(h.engine.stats().instances, events.size() - (n + 1) - (instance_index ? 2 : 0))
        << "instance index " << instance_index;
  }
}

// DUR bounds and times at the ends of the range: a zero bound frees each instance at the first
// close after it, a bound past the end of time never frees one, and neither overflows.
TEST(Engine, ExpiryAtTheEndsOfTime) {
  Harness h(std::string(kStock) +
            "SELECT * FROM FILTER{DUR <= 0}(Stock NEXT{$2.Volume < 0} Stock);\n"
            "SELECT * FROM FILTER{DUR <= 9000000000000000000}(Stock NEXT{$2.Volume < -1} Stock);");
  h.stock("A", 1, 1, -9000000000000000000);
  EXPECT_EQ(h.engine.stats().instances, 2u);
  h.stock("A", 1, 1, 0);  // the close (next_time -9e18 + 1) frees the first query's
  EXPECT_EQ(h.engine.stats().instances, 3u);
  EXPECT_EQ(h.engine.stats().expired, 1u);
  h.stock("A", 1, 1, 1);  // next_time 1: the first's of 0, and the second's of -9e18 (1 + 9e18)
  EXPECT_EQ(h.engine.stats().instances, 3u);
  EXPECT_EQ(h.engine.stats().expired, 3u);
  h.stock("A", 1, 1, INT64_MAX - 5);  // next_time 2: the first's of 1
  EXPECT_EQ(h.engine.stats().instances, 4u);
  EXPECT_EQ(h.engine.stats().expired, 4u);
  // next_time INT64_MAX - 4: the first's of INT64_MAX - 5, the second's of 0 and 1; its
  // instance of INT64_MAX - 5 would go at INT64_MAX - 5 + 9e18 + 1, past the end: never.
  h.engine.advance_to(INT64_MAX);
  EXPECT_EQ(h.engine.stats().instances, 1u);
  EXPECT_EQ(h.engine.stats().expired, 7u);
  EXPECT_TRUE(h.outputs.empty());
}

// A bucket whose records outgrew the slots in its node's state (three records of a 3-value
// NEXT) moves to the heap, and back into its state once the close of an epoch leaves few
// enough: the records kept survive the move (later events consume them, in order), and so do
// those of the next time it outgrows them (in the heap block given back, on one thread), with
// and without an instance-index key, on one thread and in batches.
TEST(Engine, RecordsReturnToTheirStateWhenTheyFitAgain) {
  for (const char* key : {"", "$1.Name = $2.Name AND "}) {
    for (unsigned threads : {1u, 4u}) {
      Harness h(std::string(kStock) + "SELECT * FROM FILTER{Volume > 0}(Stock) NEXT{" + key +
                    "$2.Price > $1.Price} Stock PUBLISH Up;",
                threads == 1 ? options(JitMode::Off, 1) : batched(threads));
      // Four instances, each below the one before (so that none consumes another).
      for (int64_t t = 1; t <= 4; ++t) h.stock("IBM", 50.0 - 10.0 * t, 1, t);
      h.engine.advance_to(5);
      EXPECT_EQ(h.engine.heap_buckets(), 1u) << key << threads;
      h.stock("IBM", 25, 0, 5);  // consumes the last two
      h.engine.advance_to(6);
      EXPECT_EQ(h.engine.heap_buckets(), 0u) << key << threads;
      EXPECT_EQ(h.engine.stats().instances, 2u);
      h.stock("IBM", 35, 0, 6);
      h.stock("IBM", 50, 0, 7);
      // Four more, on the heap again (in the block given back, when the same thread took it).
      for (int64_t t = 8; t <= 11; ++t) h.stock("IBM", 53.0 - t, 1, t);
      h.engine.advance_to(12);
      EXPECT_EQ(h.engine.heap_buckets(), 1u) << key << threads;
      h.stock("IBM", 100, 0, 12);
      h.engine.finish();
      EXPECT_EQ(h.outputs, (std::vector<std::string>{
                               "Up[3,5] IBM 20 1 IBM 25 0",
                               "Up[4,5] IBM 10 1 IBM 25 0",
                               "Up[2,6] IBM 30 1 IBM 35 0",
                               "Up[1,7] IBM 40 1 IBM 50 0",
                               "Up[8,12] IBM 45 1 IBM 100 0",
                               "Up[9,12] IBM 44 1 IBM 100 0",
                               "Up[10,12] IBM 43 1 IBM 100 0",
                               "Up[11,12] IBM 42 1 IBM 100 0",
                           }))
          << key << threads;
      EXPECT_EQ(h.engine.stats().instances, 0u);
      EXPECT_EQ(h.engine.heap_buckets(), 0u);
    }
  }
}

// A bucket that grows through every size of heap block the thread keeps (36 to 288 slots: 30
// records of six), is consumed whole and moves back in place, twice. Each grow gives the block
// it leaves to the thread's spares, and the move back gives the last: one block of each size.
// The second time round takes them again instead of allocating, so one of each is left, not
// two. Outputs are compared exactly both times.
TEST(Engine, HeapBlocksOfEverySizeAreReused) {
  Harness h(std::string(kStock) +
                "SELECT * FROM FILTER{Volume > 0}(Stock) NEXT{$2.Price > $1.Price} Stock "
                "PUBLISH Up;",
            options(JitMode::Off, 1));
  Engine::free_spare_heap_blocks();
  std::vector<std::string> want;
  for (int64_t round = 0, t = 1; round < 2; ++round) {
    // Thirty instances, each below the one before (so that none consumes another).
    const int64_t first = t;
    for (int64_t k = 0; k < 30; ++k, ++t) h.stock("IBM", 100 - k, 1, t);
    h.engine.advance_to(t);
    EXPECT_EQ(h.engine.heap_buckets(), 1u) << round;
    EXPECT_EQ(Engine::spare_heap_blocks(), (std::array<size_t, 4>{1, 1, 1, 0})) << round;
    h.stock("IBM", 1000, 0, t);  // consumes all thirty
    for (int64_t k = 0; k < 30; ++k)
      want.push_back("Up[" + std::to_string(first + k) + "," + std::to_string(t) + "] IBM " +
                     std::to_string(100 - k) + " 1 IBM 1000 0");
    h.engine.advance_to(++t);
    EXPECT_EQ(h.engine.heap_buckets(), 0u) << round;
    EXPECT_EQ(Engine::spare_heap_blocks(), (std::array<size_t, 4>{1, 1, 1, 1})) << round;
  }
  h.engine.finish();
  EXPECT_EQ(h.outputs, want);
  EXPECT_EQ(h.engine.stats().instances, 0u);
  Engine::free_spare_heap_blocks();
  EXPECT_EQ(Engine::spare_heap_blocks(), (std::array<size_t, 4>{0, 0, 0, 0}));
}

// A keyed node removed while its buckets' expiries are queued: the wheel still names them, and
// the epochs that reach those deadlines (opening, closing, a heartbeat) skip them; the other
// query's instances still expire. With hints, whose keyed steps must not read the removed node.
// A keyed node whose keys come and go, as hosts in a log do: 20,000 events over about 5,000
// names, each name active for a few dozen time units. A bucket left empty when an epoch closes
// is released and its id reused, so the node holds a bucket per name with instances (checked
// after every event against a brute-force list), not one per name ever seen; and the pairs are
// exactly the brute force's, with the instance index on and off, on one thread and in batches.
TEST(Engine, KeyedBucketsComeAndGoWithTheirKeys) {
  const std::string script = std::string(kStock) +
                             "SELECT * FROM FILTER{DUR < 100}(Stock NEXT{$1.Name = $2.Name AND "
                             "$2.Volume = 1} Stock) PUBLISH Back;";
  struct Instance {
    std::string name;
    int64_t t0;
    int64_t volume;
    bool consumed;
  };
  std::mt19937_64 rng(11);
  std::vector<std::pair<std::string, int64_t>> events;  // at t = 1, 2, ...: name, volume
  for (int64_t t = 1; t <= 20000; ++t)
    events.emplace_back("H" + std::to_string(t / 4 + static_cast<int64_t>(rng() % 8)),
                        rng() % 3 == 0 ? 1 : 0);
  // The brute force: outputs, and after each event the names with instances stored.
  std::vector<std::string> want;
  std::vector<size_t> want_buckets;
  std::vector<Instance> live;
  size_t most = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const int64_t t = static_cast<int64_t>(i) + 1;
    const auto& [name, volume] = events[i];
    // The close before t: consumed instances go, and those past the bound (DUR < 100).
    std::erase_if(live, [&](const Instance& x) { return x.consumed || t - x.t0 > 99; });
    if (volume == 1) {
      for (Instance& x : live) {
        if (x.name != name) continue;
        x.consumed = true;
        want.push_back("Back[" + std::to_string(x.t0) + "," + std::to_string(t) + "] " + name +
                       " " + std::to_string(x.t0) + " " + std::to_string(x.volume) + " " + name +
                       " " + std::to_string(t) + " 1");
      }
    }
    live.push_back(Instance{name, t, volume, false});
    std::vector<std::string> names;
    for (const Instance& x : live) names.push_back(x.name);
    std::sort(names.begin(), names.end());
    want_buckets.push_back(std::unique(names.begin(), names.end()) - names.begin());
    most = std::max(most, want_buckets.back());
  }
  ASSERT_GT(want.size(), 2000u);
  ASSERT_LT(most, 100u);  // of ~5,000 names
  for (bool instance_index : {true, false}) {
    for (unsigned threads : {1u, 4u}) {
      EngineOptions opts = threads == 1 ? options(JitMode::Off, 1) : batched(threads);
      opts.instance_index = instance_index;
      Harness h(script, opts);
      const uint32_t stock = h.stream("Stock");
      for (size_t i = 0; i < events.size(); ++i) {
        const int64_t t = static_cast<int64_t>(i) + 1;
        if (i + Engine::kHintDistance < events.size()) {
          const auto& [name, volume] = events[i + Engine::kHintDistance];
          Slot next[3] = {string_slot(intern(name)), float_slot(0), int_slot(volume)};
          h.engine.hint(stock, next);
        }
        const auto& [name, volume] = events[i];
        ASSERT_EQ(h.stock(name.c_str(), static_cast<double>(t), volume, t), Engine::PushResult::Ok);
        if (threads == 1) {
          ASSERT_EQ(h.engine.instance_buckets(), instance_index ? want_buckets[i] : 0) << "t " << t;
        }
      }
      h.engine.advance_to(1000000);
      EXPECT_EQ(h.outputs, want) << "instance index " << instance_index << ", " << threads;
      EXPECT_EQ(h.engine.stats().instances, 0u);
      EXPECT_EQ(h.engine.instance_buckets(), 0u);
    }
  }
}

TEST(Engine, RemovedKeyedNodesExpiriesAreSkipped) {
  Harness h(std::string(kStock) +
                "SELECT * FROM FILTER{DUR < 100}(Stock NEXT{$1.Name = $2.Name AND $2.Volume < 0} "
                "Stock) PUBLISH Gone;\n"
                "SELECT * FROM FILTER{DUR < 50}(Stock NEXT{$1.Name = $2.Name AND $2.Volume < -1} "
                "Stock) PUBLISH Kept;",
            options(JitMode::Off, 1));
  const uint32_t stock = h.stream("Stock");
  const char* names[] = {"A", "B", "C", "D", "E", "F", "G", "H"};
  for (int64_t t = 1; t <= 8; ++t) h.stock(names[t - 1], 1, 1, t);
  EXPECT_EQ(h.engine.stats().instances, 16u);
  ASSERT_TRUE(h.engine.remove_query(0));
  EXPECT_EQ(h.engine.stats().instances, 8u);
  for (int64_t t = 9; t <= 200; ++t) {
    Slot next[3] = {string_slot(intern(names[(t + 1) % 8])), float_slot(1), int_slot(1)};
    h.engine.hint(stock, next);
    h.stock(names[t % 8], 1, 1, t);
  }
  h.engine.advance_to(1000);
  EXPECT_EQ(h.engine.stats().instances, 0u);
  EXPECT_EQ(h.engine.stats().expired, 8u + 192u);
  EXPECT_TRUE(h.outputs.empty());
}

TEST(Engine, ScriptErrorsAddNothing) {
  Engine engine;
  Diagnostics ds = engine.add_script(std::string(kStock) + "SELECT Prize FROM Stock;");
  ASSERT_EQ(ds.size(), 1u);
  EXPECT_EQ(ds[0].line, 2u);
  EXPECT_EQ(ds[0].column, 8u);
  EXPECT_TRUE(engine.automaton().streams.empty());
}

// A second script reads a stream the first one publishes (resubscription across scripts).
TEST(Engine, ScriptsShareStreams) {
  Harness h(std::string(kStock) + "SELECT Name, Price FROM FILTER{Price > 100}(Stock) PUBLISH Hi;");
  ASSERT_TRUE(h.engine.add_script("SELECT Name_1 AS A, Name AS B FROM Hi NEXT{} Hi PUBLISH HiPair;")
                  .empty());
  h.stock("X", 150, 1, 1);
  h.stock("Y", 50, 1, 2);
  h.stock("Z", 200, 1, 3);
  h.engine.finish();
  EXPECT_EQ(h.outputs, (std::vector<std::string>{
                           "Hi[1,1] X 150",
                           "Hi[3,3] Z 200",
                           "HiPair[1,3] X Z",
                       }));
}

}  // namespace
}  // namespace cayuga

namespace cayuga {
namespace {

// Removing a query stops its outputs and frees what it alone used; a query sharing its prefix
// (state merging) keeps its partial matches.
TEST(Engine, RemoveQueryKeepsSharedState) {
  Harness h(std::string(kStock) +
            "SELECT * FROM FILTER{Volume > 5}(Stock) NEXT{$1.Name = $2.Name} Stock PUBLISH A;\n"
            "SELECT Name FROM FILTER{Volume > 5}(Stock) NEXT{$1.Name = $2.Name} Stock "
            "PUBLISH B;\n"
            "SELECT * FROM FILTER{Volume < 5}(Stock) NEXT{} Stock PUBLISH C;");
  const auto& queries = h.engine.automaton().queries;
  ASSERT_EQ(queries.size(), 3u);
  h.stock("X", 1, 10, 1);  // an instance at the NEXT node A and B share
  h.stock("Y", 1, 1, 2);   // an instance at C's node
  uint32_t a = 0;
  while (queries[a].publish != "A") ++a;
  uint32_t c = 0;
  while (queries[c].publish != "C") ++c;
  EXPECT_TRUE(h.engine.remove_query(a));
  EXPECT_FALSE(h.engine.remove_query(a));
  EXPECT_TRUE(h.engine.remove_query(c));
  h.stock("X", 2, 1, 3);
  h.engine.finish();
  // B still pairs X@1 with X@3 (its NEXT node was shared with A); A and C say nothing more.
  EXPECT_EQ(h.outputs, (std::vector<std::string>{"B[1,3] X"}));
  // C's node died with its instance; the shared NEXT node's instance was consumed.
  EXPECT_EQ(h.engine.stats().instances, 0u);
}

// Removing the query with the wider DUR bound narrows a shared node's bound: its instances then
// go once the bound left passes, not the removed one. Both kinds of bucket: a node whose
// instances all hold one Name (X's), and a keyed one (its instances in buckets by Name).
TEST(Engine, RemovingAQueryNarrowsTheDurBoundOfTheNodeItShared) {
  Harness h(std::string(kStock) +
                "SELECT * FROM FILTER{DUR <= 20}(FILTER{Name = 'X'}(Stock) NEXT{$1.Name = $2.Name "
                "AND $2.Volume < 0} Stock) PUBLISH Short;\n"
                "SELECT * FROM FILTER{DUR <= 100}(FILTER{Name = 'X'}(Stock) NEXT{$1.Name = $2.Name "
                "AND $2.Volume < 0} Stock) PUBLISH Long;\n"
                "SELECT * FROM FILTER{DUR <= 20}(Stock NEXT{$1.Name = $2.Name AND $2.Volume < 0} "
                "Stock) PUBLISH KeyedShort;\n"
                "SELECT * FROM FILTER{DUR <= 100}(Stock NEXT{$1.Name = $2.Name AND $2.Volume < 0} "
                "Stock) PUBLISH KeyedLong;",
            options(JitMode::Off, 1));
  const nfa::Automaton& a = h.engine.automaton();
  ASSERT_EQ(a.queries[0].nodes.back(), a.queries[1].nodes.back());  // shared
  ASSERT_EQ(a.queries[2].nodes.back(), a.queries[3].nodes.back());
  const uint32_t x_node = a.queries[0].nodes.back(), keyed_node = a.queries[2].nodes.back();
  EXPECT_EQ(a.nodes[x_node].max_dur, 100);
  h.stock("X", 1, 1, 1);   // an instance at each node
  h.stock("Y", 1, 1, 2);   // and one more at the keyed node, in another bucket
  h.stock("X", 1, 1, 15);  // and one more of each: buckets of two records
  EXPECT_EQ(h.engine.stats().instances, 5u);
  ASSERT_TRUE(h.engine.remove_query(1));
  ASSERT_TRUE(h.engine.remove_query(3));
  EXPECT_EQ(a.nodes[x_node].max_dur, 20);
  EXPECT_EQ(a.nodes[keyed_node].max_dur, 20);
  h.engine.advance_to(30);  // past 20 for the instances of 1 and 2, not for those of 15
  EXPECT_EQ(h.engine.stats().instances, 2u);
  EXPECT_EQ(h.engine.stats().expired, 3u);
  h.engine.advance_to(40);
  EXPECT_EQ(h.engine.stats().instances, 0u);
  EXPECT_EQ(h.engine.stats().expired, 5u);
  EXPECT_TRUE(h.outputs.empty());
}

}  // namespace
}  // namespace cayuga

namespace cayuga {
namespace {

// Removing a query frees its native code: programs of dead nodes are released, and a shape no
// other program uses is unloaded (its ResourceTracker removed).
TEST(Engine, RemoveQueryFreesNativeCode) {
  Engine engine(options(JitMode::On));
  ASSERT_TRUE(engine.add_script(std::string(kStock) +
                                "SELECT * FROM Stock NEXT{$2.Price > $1.Price * 2.5} Stock;\n"
                                "SELECT * FROM Stock NEXT{$2.Volume % 7 = 3} Stock;")
                  .empty());
  const JitStats before = engine.jit_stats();
  if (!before.available) GTEST_SKIP() << "this host cannot JIT";
  ASSERT_EQ(before.compiled, 2u);
  ASSERT_EQ(before.shapes, 2u);
  EXPECT_TRUE(engine.remove_query(1));
  const JitStats after = engine.jit_stats();
  EXPECT_EQ(after.compiled, 1u);
  EXPECT_EQ(after.shapes, 1u);
  // The remaining query still runs on native code.
  Slot a[3] = {string_slot(intern("A")), float_slot(1), int_slot(3)};
  Slot b[3] = {string_slot(intern("B")), float_slot(5), int_slot(1)};
  std::vector<std::string> out;
  engine.set_sink([&](uint32_t stream, const RowView&) {
    out.push_back(engine.automaton().streams[stream].name);
  });
  uint32_t stock = static_cast<uint32_t>(engine.automaton().find_stream("Stock"));
  engine.push(stock, 1, 1, a);
  engine.push(stock, 2, 2, b);
  engine.finish();
  EXPECT_EQ(out, (std::vector<std::string>{"q1"}));
}

}  // namespace
}  // namespace cayuga

namespace cayuga {
namespace {

// The real 1-minute bars of tests/data/stocks: 5000 Stock(Name, Price, Volume) events, several
// per minute (so epochs hold several events).
const std::vector<InputEvent>& stock_bars() {
  static const std::vector<InputEvent> events = [] {
    Schema schema{{{"Name", Type::String}, {"Price", Type::Float}, {"Volume", Type::Int}}};
    StreamTable streams;
    streams.add(StreamDef{0, "Stock", &schema});
    InputArgs in;
    std::string err;
    EXPECT_TRUE(parse_input_args(test::stock_bars_args(), in, &err)) << err;
    auto reader = open_reader(in.inputs.at(0), streams, EngineUnit::Ms, &err);
    EXPECT_TRUE(reader) << err;
    std::vector<InputEvent> out;
    InputEvent ev;
    while (reader && reader->next(ev) == EventReader::Status::Event) out.push_back(ev);
    return out;
  }();
  return events;
}

// What a run shows: its rows in order and its state counts.
struct RunResult {
  std::vector<std::string> outputs;
  EngineStats stats;
};

void expect_same_run(const RunResult& r, const RunResult& base) {
  EXPECT_EQ(r.outputs, base.outputs);
  EXPECT_EQ(r.stats.outputs, base.stats.outputs);
  EXPECT_EQ(r.stats.epochs, base.stats.epochs);
  EXPECT_EQ(r.stats.instances, base.stats.instances);
  EXPECT_EQ(r.stats.peak_instances, base.stats.peak_instances);
  EXPECT_EQ(r.stats.expired, base.stats.expired);
  EXPECT_EQ(r.stats.candidates, base.stats.candidates);
}

// Pushes the bars through `script` with `opts`; before each event i, before(engine, stream, i).
RunResult run_bars(const std::string& script, const EngineOptions& opts,
                   const std::function<void(Engine&, uint32_t, size_t)>& before = {}) {
  Harness h(script, opts);
  EXPECT_EQ(h.engine.threads(), opts.threads);
  const uint32_t stock = h.stream("Stock");
  const std::vector<InputEvent>& events = stock_bars();
  for (size_t i = 0; i < events.size(); ++i) {
    if (before) before(h.engine, stock, i);
    h.engine.push(stock, events[i].row.t0, events[i].row.t1, events[i].row.values.data());
  }
  h.engine.finish();
  return RunResult{std::move(h.outputs), h.engine.stats()};
}

// Programs with the same bytecode share one native function: removing one query leaves the
// other's running (on the shared code), removing both frees it.
TEST(Engine, ProgramsWithTheSameBytecodeShareNativeCode) {
  Engine engine(options(JitMode::On));
  ASSERT_TRUE(engine
                  .add_script(std::string(kStock) +
                              "SELECT * FROM FILTER{Volume > 10}(Stock) "
                              "NEXT{$2.Price > $1.Price * 2.5} Stock PUBLISH A;\n"
                              "SELECT * FROM FILTER{Volume > 20}(Stock) "
                              "NEXT{$2.Price > $1.Price * 2.5} Stock PUBLISH B;")
                  .empty());
  const JitStats both = engine.jit_stats();
  if (!both.available) GTEST_SKIP() << "this host cannot JIT";
  EXPECT_EQ(both.compiled, 4u);  // two Volume filters, two (identical) NEXT predicates
  EXPECT_EQ(both.shapes, 2u);
  EXPECT_TRUE(engine.remove_query(0));
  EXPECT_EQ(engine.jit_stats().compiled, 2u);
  EXPECT_EQ(engine.jit_stats().shapes, 2u);
  std::vector<std::string> out;
  engine.set_sink([&](uint32_t stream, const RowView& row) {
    out.push_back(engine.automaton().streams[stream].name + " " + std::to_string(row.values[1].f) +
                  " " + std::to_string(row.values[4].f));
  });
  const uint32_t stock = static_cast<uint32_t>(engine.automaton().find_stream("Stock"));
  Slot a[3] = {string_slot(intern("A")), float_slot(1), int_slot(30)};
  Slot b[3] = {string_slot(intern("A")), float_slot(2), int_slot(30)};
  Slot c[3] = {string_slot(intern("A")), float_slot(3), int_slot(30)};
  engine.push(stock, 1, 1, a);
  engine.push(stock, 2, 2, b);  // 2 > 1 * 2.5: no
  engine.push(stock, 3, 3, c);  // 3 > 1 * 2.5: yes
  engine.finish();
  EXPECT_EQ(out, (std::vector<std::string>{"B 1.000000 3.000000"}));
  EXPECT_TRUE(engine.remove_query(1));
  EXPECT_EQ(engine.jit_stats().compiled, 0u);
  EXPECT_EQ(engine.jit_stats().shapes, 0u);
}

// `count` queries from number `first` on, each with its own Volume filter and NEXT predicate.
std::string distinct_queries(int first, int count) {
  std::string script;
  for (int i = first; i < first + count; ++i)
    script += "SELECT * FROM FILTER{Volume > " + std::to_string(i) +
              "}(Stock) NEXT{$2.Price > $1.Price * " + std::to_string(2 + i) + "} Stock PUBLISH Q" +
              std::to_string(i) + ";\n";
  return script;
}

// A script added while the background JIT still has programs of an earlier one queued. When
// the build moves the automaton's nodes (and the programs in them), the JIT is paused and its
// queue dropped: the dropped programs are queued again with the new ones, so every program
// ends up compiled. (Without the drop, only the new script's programs are queued.)
TEST(Engine, ProgramsQueuedForTheJitSurviveAnotherScript) {
  Engine engine(options(JitMode::Auto));
  ASSERT_TRUE(engine.add_script(std::string(kStock) + distinct_queries(0, 60)).empty());
  if (!engine.jit_stats().available) GTEST_SKIP() << "this host cannot JIT";
  const size_t room = engine.automaton().nodes.capacity() - engine.automaton().nodes.size();
  ASSERT_LT(room, 60u);  // so the next script moves the nodes: a NEXT node per query
  const uint64_t pauses = engine.jit_stats().pauses;
  ASSERT_TRUE(engine.add_script(distinct_queries(60, 60)).empty());
  EXPECT_EQ(engine.jit_stats().pauses, pauses + 1);  // once, however often the nodes grow
  engine.wait_for_jit();
  EXPECT_EQ(engine.jit_stats().compiled, 2u * 120u);  // a Volume filter, a NEXT predicate each
}

// Otherwise adding a script neither waits for the background JIT nor drops its queue: the
// worker compiles on while the build runs, and the programs of both scripts are compiled.
// Removing queries takes only their programs from the queue.
TEST(Engine, TheJitCompilesOnWhileQueriesAreAddedAndRemoved) {
  Engine engine(options(JitMode::Auto));
  ASSERT_TRUE(engine.add_script(std::string(kStock) + distinct_queries(0, 60)).empty());
  if (!engine.jit_stats().available) GTEST_SKIP() << "this host cannot JIT";
  const size_t room = engine.automaton().nodes.capacity() - engine.automaton().nodes.size();
  ASSERT_GE(room, 3u);  // the next scripts do not move the nodes
  const uint64_t pauses = engine.jit_stats().pauses;
  for (int i = 60; i < 63; ++i) ASSERT_TRUE(engine.add_script(distinct_queries(i, 1)).empty());
  for (uint32_t id = 0; id < 10; ++id) EXPECT_TRUE(engine.remove_query(id));
  engine.wait_for_jit();
  EXPECT_EQ(engine.jit_stats().pauses, pauses);
  EXPECT_EQ(engine.jit_stats().compiled, 2u * 53u);
  // The queries left run on native code and give the interpreter's rows.
  std::vector<std::string> rows;
  engine.set_sink([&](uint32_t stream, const RowView& row) {
    rows.push_back(engine.automaton().streams[stream].name + " " + std::to_string(row.values[4].f));
  });
  const uint32_t stock = static_cast<uint32_t>(engine.automaton().find_stream("Stock"));
  Slot a[3] = {string_slot(intern("A")), float_slot(1), int_slot(30)};   // Volume > i: i < 30
  Slot b[3] = {string_slot(intern("A")), float_slot(15), int_slot(30)};  // 15 > 2 + i: i < 13
  engine.push(stock, 1, 1, a);
  engine.push(stock, 2, 2, b);
  engine.finish();
  std::sort(rows.begin(), rows.end());
  EXPECT_EQ(rows, (std::vector<std::string>{"Q10 15.000000", "Q11 15.000000", "Q12 15.000000"}));
}

// A service that adds and removes queries for ever keeps as many native records as it has live
// programs: those of removed queries are reused, not left behind.
TEST(Engine, NativeRecordsOfRemovedQueriesAreReused) {
  Engine engine(options(JitMode::On));
  ASSERT_TRUE(engine.add_script(std::string(kStock)).empty());
  if (!engine.jit_stats().available) GTEST_SKIP() << "this host cannot JIT";
  for (uint32_t i = 0; i < 10; ++i) {
    const std::string query = "SELECT * FROM FILTER{Volume > " + std::to_string(10 + i) +
                              "}(Stock) NEXT{$2.Price > $1.Price * " + std::to_string(2 + i) +
                              "} Stock PUBLISH A;";
    ASSERT_TRUE(engine.add_script(query).empty()) << i;
    EXPECT_EQ(engine.jit_stats().compiled, 2u) << i;  // the Volume filter, the NEXT predicate
    EXPECT_EQ(engine.jit_stats().records, 2u) << i;
    EXPECT_TRUE(engine.remove_query(i));
    EXPECT_EQ(engine.jit_stats().compiled, 0u) << i;
  }
}

// Native code keeps a program's constants next to its entry point when they are few
// (JitManager::Installed), behind a pointer otherwise: programs with one constant and with six
// run on native code and give exactly the interpreter's rows. (Every constant decides rows,
// the sixth most of all.)
TEST(Engine, NativeCodeGivesTheInterpretersRows) {
  const std::string script =
      std::string(kStock) +
      "SELECT * FROM Stock NEXT{$1.Name = $2.Name AND $2.Price > $1.Price * 1.002} Stock "
      "PUBLISH Rise;\n"
      "SELECT * FROM Stock NEXT{$1.Name = $2.Name AND $2.Volume != 17 AND "
      "$2.Volume > $1.Volume + 3 AND $2.Volume < 90000 AND $2.Price < 900.5 AND "
      "$2.Price + 0.01 > $1.Price * 0.999} Stock PUBLISH Many;\n";
  const RunResult interpreted = run_bars(script, options(JitMode::Off, 1));
  JitStats jit;
  auto wait_for_jit = [&](Engine& engine, uint32_t, size_t i) {
    if (i > 0) return;
    engine.wait_for_jit();
    jit = engine.jit_stats();
  };
  const RunResult native = run_bars(script, options(JitMode::On, 1), wait_for_jit);
  if (!jit.available) GTEST_SKIP() << "this host cannot JIT";
  EXPECT_EQ(jit.compiled, 2u);
  auto rows_of = [&](std::string_view stream) {
    return std::count_if(interpreted.outputs.begin(), interpreted.outputs.end(),
                         [&](const std::string& row) { return row.starts_with(stream); });
  };
  EXPECT_GT(rows_of("Rise["), 100);
  EXPECT_GT(rows_of("Many["), 100);
  expect_same_run(native, interpreted);
}

// Parallel epochs change nothing observable: the same rows in the same order, the same state.
// Real bars through queries that create, consume, fold, expire and resubscribe, one of them
// with a single bucket large enough to be split by instance range.
TEST(Engine, ParallelBatchesMatchOneThreadExactly) {
  const std::string script =
      std::string(kStock) +
      "SELECT Name, Price, Volume FROM FILTER{Volume > 1000}(Stock) PUBLISH Big;\n"
      "SELECT * FROM Big NEXT{$1.Name = $2.Name AND $2.Price > $1.Price * 1.002} Big "
      "PUBLISH BigRise;\n"
      "SELECT Name, Price_1 AS P0, Price AS P1, Volume FROM FILTER{DUR < 30 MIN}("
      "Stock FOLD{$2.Name = $.Name, $2.Price >= $.Price,} Stock) PUBLISH Runs;\n"
      "SELECT * FROM Stock NEXT{$2.Volume > $1.Volume * 40} Stock PUBLISH Spike;\n"
      "SELECT Name, Price FROM FILTER{DUR >= 2 MIN}(BigRise) PUBLISH SlowRise;\n";
  auto run = [&](unsigned threads, size_t min_work) {
    EngineOptions opts = options(JitMode::Off, threads);
    opts.parallel_min_work = min_work;
    return run_bars(script, opts);
  };
  const RunResult one = run(1, 256);
  ASSERT_GT(one.outputs.size(), 1000u);
  ASSERT_GT(one.stats.expired, 0u);
  for (auto [threads, min_work] : {std::pair<unsigned, size_t>{4, 1}, {2, 1}, {2, 256}}) {
    SCOPED_TRACE("threads " + std::to_string(threads) + ", min work " + std::to_string(min_work));
    expect_same_run(run(threads, min_work), one);
  }
}

// Engine::hint only prefetches (and lets a push reuse the candidates it found ahead): correct
// hints, hints of other events, hints at the wrong distance and no hints give the same rows and
// the same state, with one thread and with parallel batches.
TEST(Engine, HintsNeverChangeResults) {
  const std::string script =
      std::string(kStock) +
      "SELECT * FROM FILTER{Name = 'AAPL' AND Volume > 1000}(Stock) PUBLISH Big;\n"
      "SELECT * FROM FILTER{DUR < 10 MIN}(FILTER{Volume > 500}(Stock) "
      "NEXT{$1.Name = $2.Name AND $2.Price > $1.Price * 1.001} Stock) PUBLISH Rise;\n"
      "SELECT Name, Price_1 AS P0, Price AS P1 FROM FILTER{DUR < 30 MIN}("
      "Stock FOLD{$2.Name = $.Name, $2.Price >= $.Price,} Stock) PUBLISH Runs;\n"
      "SELECT * FROM Big NEXT{$2.Price < $1.Price} Big PUBLISH Dip;\n";
  const std::vector<InputEvent>& events = stock_bars();
  ASSERT_EQ(events.size(), 5000u);
  // Matched: with the candidates Engine::match found (as a parsing thread would), and Stale:
  // with no candidates under an older generation, which the engine must not use.
  enum class Hints { None, Right, Shifted, Near, Matched, Stale };
  auto run = [&](Hints hints, unsigned threads) {
    std::vector<uint32_t> candidates;
    auto announce = [&](Engine& engine, uint32_t stock, size_t i) {
      const size_t d = Engine::kHintDistance;
      size_t ahead = events.size();  // none
      if (hints == Hints::Right) ahead = i + d;
      if (hints == Hints::Shifted) ahead = i + d + 1;  // always another event than the push's
      if (hints == Hints::Near) ahead = i + 2;
      if (hints == Hints::Matched || hints == Hints::Stale) {
        if (i + d >= events.size()) return;
        const Slot* values = events[i + d].row.values.data();
        candidates.clear();
        if (hints == Hints::Matched) engine.match(stock, values, candidates);
        engine.hint(stock, values, candidates,
                    engine.generation() - (hints == Hints::Stale ? 1 : 0));
        return;
      }
      if (ahead < events.size()) engine.hint(stock, events[ahead].row.values.data());
    };
    return run_bars(script, options(JitMode::Off, threads), announce);
  };
  const RunResult base = run(Hints::None, 1);
  ASSERT_GT(base.outputs.size(), 300u);
  ASSERT_GT(base.stats.expired, 0u);
  for (unsigned threads : {1u, 2u})
    for (Hints hints :
         {Hints::None, Hints::Right, Hints::Shifted, Hints::Near, Hints::Matched, Hints::Stale}) {
      SCOPED_TRACE("threads " + std::to_string(threads) + ", hints " +
                   std::to_string(static_cast<int>(hints)));
      expect_same_run(run(hints, threads), base);
    }
}

// The two tests below: one thread, interpreted, a query on A's events, and one on B's that
// add_b() registers later.
class AddedLater : public Harness {
 public:
  AddedLater()
      : Harness(std::string(kStock) + "SELECT * FROM FILTER{Name = 'A'}(Stock) PUBLISH OnlyA;",
                options(JitMode::Off, 1)) {}
  void add_b() {
    ASSERT_TRUE(
        engine.add_script("SELECT * FROM FILTER{Name = 'B'}(Stock) PUBLISH OnlyB;").empty());
  }
  const uint32_t stock = stream("Stock");
  Slot a[3] = {string_slot(intern("A")), float_slot(1), int_slot(1)};
  Slot b[3] = {string_slot(intern("B")), float_slot(2), int_slot(2)};
};

// A hint announced before add_script() refers to routes that no longer exist: the script's
// rebuild forgets it, and the new query sees the hinted events like any other.
TEST(Engine, HintsSurviveAddScript) {
  AddedLater h;
  for (size_t i = 0; i < Engine::kHintDistance + 1; ++i) h.engine.hint(h.stock, i % 2 ? h.b : h.a);
  h.add_b();
  h.engine.push(h.stock, 1, 1, h.a);
  h.engine.push(h.stock, 2, 2, h.b);
  h.engine.finish();
  EXPECT_EQ(h.outputs, (std::vector<std::string>{"OnlyA[1,1] A 1 1", "OnlyB[2,2] B 2 2"}));
}

// Candidates matched before add_script() are of the old generation: announced after it, they
// are not used (B's new query would be missed), and the engine looks the event up itself.
TEST(Engine, CandidatesOfAnOldGenerationAreNotUsed) {
  AddedLater h;
  std::vector<uint32_t> before;
  h.engine.match(h.stock, h.b, before);
  EXPECT_TRUE(before.empty());
  const uint64_t generation = h.engine.generation();
  h.add_b();
  EXPECT_NE(h.engine.generation(), generation);
  for (size_t i = 0; i <= Engine::kHintDistance; ++i)
    h.engine.hint(h.stock, h.b, before, generation);
  for (int64_t t = 1; t <= 2; ++t) h.engine.push(h.stock, t, t, h.b);
  h.engine.finish();
  EXPECT_EQ(h.outputs, (std::vector<std::string>{"OnlyB[1,1] B 2 2", "OnlyB[2,2] B 2 2"}));
}

// A script large enough to be parsed in chunks compiles to the automaton a one-thread parse
// gives, and its errors are the same.
TEST(Engine, ChunkedParseCompilesTheSameAutomaton) {
  std::string script = "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n";
  for (int i = 0; script.size() < (size_t{2} << 20) + 4096; ++i) {
    script += "SELECT Name, Price_1 AS First, Price AS Second FROM FILTER{DUR < " +
              std::to_string(i % 50 + 1) + " MIN}(FILTER{Name = 'S" + std::to_string(i % 997) +
              "; -- x' AND Volume > " + std::to_string(i) +
              "}(Stock) NEXT{$1.Name = $2.Name AND $2.Price > $1.Price * 1.01} Stock); -- ;q\n";
  }
  // The errors, then the automaton.
  auto compile = [&](const std::string& text, unsigned threads) {
    EngineOptions opts = options(JitMode::Off, 1);
    opts.compile_threads = threads;
    Engine engine(opts);
    std::string out;
    for (const Diagnostic& d : engine.add_script(text))
      out += std::to_string(d.line) + ":" + std::to_string(d.column) + ": " + d.message + "\n";
    return out + "--\n" + nfa::to_text(engine.automaton());
  };
  const std::string one = compile(script, 1);
  ASSERT_EQ(one.rfind("--\nstreams:\n  0 Stock", 0), 0u) << one.substr(0, 300);
  EXPECT_EQ(compile(script, 2), one);
  const auto lines = std::count(script.begin(), script.end(), '\n');
  const std::string bad = script + "SELECT Name FROM FILTER{Price >}(Stock);\n" + script;
  const std::string one_bad = compile(bad, 1);
  EXPECT_EQ(one_bad, std::to_string(lines + 1) +
                         ":32: expected a term after the comparison operator, found '}'\n"
                         "--\nstreams:\nnodes:\n");
  EXPECT_EQ(compile(bad, 2), one_bad);
}

}  // namespace
}  // namespace cayuga

namespace cayuga {
namespace {

// A query added while events flow reports only the matches that begin at or after its start,
// the first epoch that can open once it is added, whether or not it merges with the queries
// before it. Long shares Short's NEXT node, which holds Short's instance of A at 1000 and now
// keeps its instances for Long's 10 s, but Long does not report the match of A at 1000 (added
// in that epoch, it starts at 1001). Again, added at 20000, starts there.
TEST(Engine, QueriesAddedLaterReportMatchesBegunAfterThem) {
  const std::string node = "(Stock NEXT{$1.Name = $2.Name} Stock)";
  for (bool merge : {true, false}) {
    EngineOptions opts = options(JitMode::Off, 1);
    opts.merge = merge;
    Harness h(std::string(kStock) + "SELECT * FROM FILTER{DUR <= 2 SEC}" + node + " PUBLISH Short;",
              opts);
    const auto& nodes = h.engine.automaton().nodes;
    h.stock("A", 1, 10, 1000);
    ASSERT_TRUE(
        h.engine
            .add_script("SELECT Name, Price FROM FILTER{DUR <= 10 SEC}" + node + " PUBLISH Long;")
            .empty());
    if (merge) {
      EXPECT_EQ(nodes.size(), 2u);  // one START, one NEXT node
    }
    h.stock("A", 2, 20, 2000);
    h.engine.advance_to(4500);  // the instance of A at 2000 stays for Long
    EXPECT_EQ(h.engine.stats().instances, 1u) << "merge " << merge;
    h.stock("A", 3, 30, 5000);
    h.engine.advance_to(20000);  // every instance has expired
    EXPECT_EQ(h.engine.stats().instances, 0u) << "merge " << merge;
    ASSERT_TRUE(
        h.engine.add_script("SELECT Name FROM FILTER{DUR <= 2 SEC}" + node + " PUBLISH Again;")
            .empty());
    if (merge) {
      EXPECT_EQ(nodes.size(), 2u);
    }
    h.stock("A", 4, 40, 21000);
    h.stock("A", 5, 50, 22000);
    h.engine.finish();
    EXPECT_EQ(h.outputs, (std::vector<std::string>{
                             "Short[1000,2000] A 1 10 A 2 20",
                             "Long[2000,5000] A 3",
                             "Short[21000,22000] A 4 40 A 5 50",
                             "Long[21000,22000] A 5",
                             "Again[21000,22000] A",
                         }))
        << "merge " << merge;
  }
}

// Queries added at random points of a stream (inside epochs too) give the same outputs with
// merging on and off (and on four threads, and without the instance index), though with
// merging they share nodes: the rule of QueriesAddedLaterReportMatchesBegunAfterThem, over
// NEXT, FOLD, NEXT after NEXT and queries reading another's output, with few enough distinct
// queries that many merge.
TEST(Engine, QueriesAddedAtRandomPointsMergeOrNotAlike) {
  const char* shapes[] = {
      "SELECT * FROM FILTER{DUR <= %d}(Stock NEXT{$1.Name = $2.Name} Stock)",
      "SELECT Name, Price FROM FILTER{DUR <= %d}(FILTER{Volume > %d}(Stock) NEXT{$1.Name = "
      "$2.Name AND $2.Price > $1.Price} Stock)",
      "SELECT Name, Price_1 AS Start, Price AS Last FROM FILTER{DUR <= %d}(FILTER{Volume > "
      "%d}(Stock) FOLD{$2.Name = $.Name, $2.Price > $.Price,} Stock)",
      "SELECT Name, Price FROM FILTER{DUR <= %d}((FILTER{Volume > %d}(Stock) NEXT{$1.Name = "
      "$2.Name} Stock) NEXT{$1.Name = $2.Name} Stock)",
      "SELECT Name, Price FROM FILTER{DUR <= %d}(Rise NEXT{$1.Name = $2.Name AND $2.Volume > %d} "
      "Stock)",
      "SELECT Name FROM FILTER{DUR <= %d}(FILTER{Volume > %d}(Stock) NEXT{$1.Name = $2.Name} "
      "FILTER{DUR > 0}(Stock NEXT{$1.Name = $2.Name} Stock))",
  };
  const std::string rise = "SELECT Name, Price FROM FILTER{Price > 105}(Stock) PUBLISH Rise;\n";
  for (uint64_t seed = 0; seed < 6; ++seed) {
    std::mt19937_64 rng(seed);
    // The queries and the event before which each is added (the first two before any).
    std::vector<std::pair<size_t, std::string>> queries;
    for (int q = 0; q < 14; ++q) {
      char text[512];
      std::snprintf(text, sizeof text, shapes[rng() % std::size(shapes)],
                    int(10 + 25 * (rng() % 3)), int(30 + 30 * (rng() % 2)));
      queries.emplace_back(q < 2 ? 0 : rng() % 500,
                           std::string(text) + " PUBLISH Q" + std::to_string(q) + ";");
    }
    std::stable_sort(queries.begin(), queries.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    struct Event {
      std::string name;
      double price;
      int64_t volume, t;
    };
    std::vector<Event> events;
    int64_t t = 0;
    for (int i = 0; i < 500; ++i) {
      t += rng() % 3 == 0 ? 0 : static_cast<int64_t>(rng() % 8) + 1;
      events.push_back(Event{"N" + std::to_string(rng() % 3),
                             100.0 + static_cast<double>(rng() % 11), int64_t(rng() % 100), t});
    }
    const auto run = [&](bool merge, unsigned threads, bool instance_index = true) {
      EngineOptions opts = threads == 1 ? options(JitMode::Off, 1) : batched(threads);
      opts.merge = merge;
      opts.instance_index = instance_index;
      Harness h(std::string(kStock) + rise, opts);
      size_t next = 0;
      for (size_t i = 0; i < events.size(); ++i) {
        for (; next < queries.size() && queries[next].first == i; ++next)
          EXPECT_TRUE(h.engine.add_script(queries[next].second).empty()) << queries[next].second;
        const Event& e = events[i];
        h.stock(e.name.c_str(), e.price, e.volume, e.t);
      }
      h.engine.finish();
      std::sort(h.outputs.begin(), h.outputs.end());  // (the order within an epoch may differ)
      return std::make_pair(h.outputs, h.engine.automaton().nodes.size());
    };
    const auto [merged, merged_nodes] = run(true, 1);
    const auto [apart, apart_nodes] = run(false, 1);
    EXPECT_EQ(merged, apart) << "seed " << seed;
    EXPECT_EQ(run(true, 4).first, merged) << "seed " << seed;
    EXPECT_EQ(run(true, 1, false).first, merged) << "seed " << seed;  // one bucket per node
    EXPECT_LT(2 * merged_nodes, apart_nodes) << "seed " << seed;      // merging shared nodes
    // Not vacuous: Rise and the added queries produced outputs.
    for (const char* stream : {"Rise[", "Q"}) {
      EXPECT_TRUE(std::any_of(merged.begin(), merged.end(),
                              [&](const std::string& o) { return o.starts_with(stream); }))
          << "seed " << seed << ", " << stream;
    }
  }
}

// The routes of removed queries stay candidates (that never fire) only until a few thousand
// have piled up: then removing a query rebuilds the routes, and events meet the live ones only.
TEST(Engine, RoutesOfRemovedQueriesGoOnceThousandsPileUp) {
  std::string script = std::string(kStock) + "SELECT * FROM FILTER{Name = 'A'}(Stock) PUBLISH L;\n";
  for (int k = 0; k < 2100; ++k)  // a START edge and a NEXT node each: two routes
    script += "SELECT * FROM FILTER{Name = 'A'}(Stock) NEXT{$2.Price > $1.Price * " +
              std::to_string(k + 2) + "} Stock PUBLISH Q" + std::to_string(k) + ";\n";
  Harness h(script, options(JitMode::Off, 1));
  const uint32_t stock = static_cast<uint32_t>(h.engine.automaton().find_stream("Stock"));
  Slot a[3] = {string_slot(intern("A")), float_slot(1), int_slot(1)};
  int64_t t = 0;
  const auto candidates_of_an_event = [&] {
    const uint64_t before = h.engine.stats().candidates;
    ++t;
    h.engine.push(stock, t, t, a);
    return h.engine.stats().candidates - before;
  };
  EXPECT_EQ(candidates_of_an_event(), 4201u);
  for (uint32_t id = 1; id <= 2000; ++id) ASSERT_TRUE(h.engine.remove_query(id));
  EXPECT_EQ(candidates_of_an_event(), 4201u);  // 4,000 routes retired: they stay
  for (uint32_t id = 2001; id <= 2100; ++id) ASSERT_TRUE(h.engine.remove_query(id));
  // The 2,049th removal took the count past 4,096 and rebuilt the routes; the 51 after it
  // retired 102 routes again.
  EXPECT_EQ(candidates_of_an_event(), 103u);
  h.engine.finish();
  EXPECT_EQ(h.outputs, (std::vector<std::string>{"L[1,1] A 1 1", "L[2,2] A 1 1", "L[3,3] A 1 1"}));
}

// Three NEXT queries that differ only in their START filters: their nodes visit alike.
constexpr std::array<const char*, 3> kNextsVisitingAlike = {
    "SELECT Name, Price FROM FILTER{Volume > 10}(Stock) NEXT{$2.Price > $1.Price} Stock "
    "PUBLISH A;",
    "SELECT Name, Price FROM FILTER{Volume > 20}(Stock) NEXT{$2.Price > $1.Price} Stock "
    "PUBLISH B;",
    "SELECT Name, Price FROM FILTER{Volume > 30}(Stock) NEXT{$2.Price > $1.Price} Stock "
    "PUBLISH C;",
};

// The three as one script.
std::string nexts_visiting_alike() {
  std::string script;
  for (const char* q : kNextsVisitingAlike) script += std::string(q) + "\n";
  return script;
}

// Nodes that visit alike read one of them during visits (visit_node()). Removing the query of
// that one leaves the others' routes in place (retire_routes()): they must visit through a
// live node from then on, until the next full build.
TEST(Engine, RemovingTheNodeOthersVisitThroughKeepsThemVisiting) {
  Harness h(std::string(kStock) + nexts_visiting_alike(), options(JitMode::Off, 1));
  ASSERT_TRUE(h.engine.remove_query(0));  // A's node is the one the others visit through
  h.stock("X", 1, 40, 1);
  h.stock("X", 2, 40, 2);
  ASSERT_TRUE(h.engine.remove_query(1));
  h.stock("X", 3, 40, 3);
  h.stock("X", 4, 40, 4);
  h.engine.finish();
  EXPECT_EQ(h.outputs,
            (std::vector<std::string>{"B[1,2] X 2", "C[1,2] X 2", "C[2,3] X 3", "C[3,4] X 4"}));
}

// The same, with the node of another query removed first: once the node the others visit
// through goes too, they must visit through a live one, not through the node removed before
// (whose route is still in place, and whose programs are gone). With the queries' routes made
// by a full build (one script), and added since (one script each).
TEST(Engine, NodesRemovedEarlierAreNotVisitedThrough) {
  for (bool one_script : {true, false}) {
    // (A first query, so that the routes are built when the three come one script each.)
    Harness h(std::string(kStock) + "SELECT * FROM FILTER{Volume < 0}(Stock) PUBLISH Z;\n" +
                  (one_script ? nexts_visiting_alike() : ""),
              options(JitMode::Off, 1));
    if (!one_script) {
      for (const char* q : kNextsVisitingAlike) ASSERT_TRUE(h.engine.add_script(q).empty()) << q;
    }
    EXPECT_EQ(h.engine.added_routes() > 0, !one_script);
    ASSERT_TRUE(h.engine.remove_query(2));  // B
    h.stock("X", 1, 40, 1);
    h.stock("X", 2, 40, 2);
    ASSERT_TRUE(h.engine.remove_query(1));  // A, whose node is the one C visits through
    h.stock("X", 3, 40, 3);
    h.stock("X", 4, 40, 4);
    h.engine.finish();
    EXPECT_EQ(h.outputs,
              (std::vector<std::string>{"A[1,2] X 2", "C[1,2] X 2", "C[2,3] X 3", "C[3,4] X 4"}))
        << "one script " << one_script;
  }
}

// Makes `engine` build every route again: a query that reads, for the first time, a stream
// published earlier (Dummy<n>, n from `dummies`, on a Stock stream) does. The full build also
// drops the nodes of removed queries.
// Ends the input of `h` and returns its rows, sorted (the order within an epoch may differ),
// then a line of its instance counts.
std::vector<std::string> finished_rows_and_counts(Harness& h) {
  h.engine.finish();
  std::sort(h.outputs.begin(), h.outputs.end());
  const EngineStats& st = h.engine.stats();
  h.outputs.push_back("instances " + std::to_string(st.instances) + ", peak " +
                      std::to_string(st.peak_instances) + ", expired " +
                      std::to_string(st.expired));
  return h.outputs;
}

void force_full_build(Engine& engine, int& dummies) {
  const std::string name = "Dummy" + std::to_string(dummies++);
  EXPECT_TRUE(
      engine.add_script("SELECT * FROM FILTER{Volume < -1}(Stock) PUBLISH " + name + ";").empty());
  EXPECT_TRUE(engine.add_script("SELECT * FROM " + name + " PUBLISH " + name + "R;").empty());
  EXPECT_EQ(engine.added_routes(), 0u);
  const auto& nodes = engine.automaton().nodes;
  EXPECT_EQ(std::count_if(nodes.begin(), nodes.end(), [](const auto& n) { return n.dead; }), 0);
}

// A full build after removals drops the removed queries' nodes and renumbers the others,
// between events, while they hold partial matches: those go on to match and to expire, and a
// query added afterwards still shares every node with a live query of its shape (signatures
// name a node's sources by Node::serial, which renumbering keeps).
TEST(Engine, DeadNodesGoAtTheNextFullBuild) {
  constexpr const char* kTwoSteps =
      "SELECT * FROM FILTER{DUR <= 10}(FILTER{Volume > 20}(Stock) NEXT{$2.Price > $1.Price} "
      "Stock NEXT{$2.Price > $1.Price} Stock) PUBLISH ";
  for (JitMode jit : {JitMode::Off, JitMode::Auto}) {
    Harness h(std::string(kStock) +
                  "SELECT Name, Price FROM FILTER{Volume > 10}(Stock) NEXT{$2.Price > $1.Price} "
                  "Stock PUBLISH A;\n" +
                  kTwoSteps + "B;\n",
              options(jit, 1));
    const auto& nodes = h.engine.automaton().nodes;
    const size_t before = nodes.size();  // START, A's NEXT, B's two NEXTs
    EXPECT_EQ(before, 4u);
    h.stock("X", 1, 30, 1);  // begins A and B
    h.stock("X", 2, 5, 2);   // A's output; B's second step
    ASSERT_TRUE(h.engine.remove_query(0));
    int dummies = 0;
    force_full_build(h.engine, dummies);  // (its queries add no node: a START node and edges)
    EXPECT_EQ(nodes.size(), before);      // A's node went, Dummy0R's START node came
    EXPECT_EQ(std::count_if(nodes.begin(), nodes.end(),
                            [](const nfa::Node& n) { return n.kind == nfa::NodeKind::Next; }),
              2);
    ASSERT_TRUE(h.engine.add_script(std::string(kTwoSteps) + "C;").empty());
    EXPECT_EQ(nodes.size(), before);  // C shares B's nodes
    h.stock("X", 3, 5, 3);            // B's match begun at 1 (before C was added: not C's)
    h.stock("X", 1, 30, 4);           // begins B and C
    h.stock("X", 2, 5, 5);
    h.stock("X", 3, 5, 6);    // B's and C's match
    h.stock("X", 5, 30, 20);  // begins again: expires at 31
    EXPECT_EQ(h.engine.stats().instances, 1u);
    h.engine.advance_to(40);
    EXPECT_EQ(h.engine.stats().instances, 0u);
    h.engine.finish();
    EXPECT_EQ(h.outputs,
              (std::vector<std::string>{"A[1,2] X 2", "B[1,3] X 1 30 X 2 5 X 3 5",
                                        "B[4,6] X 1 30 X 2 5 X 3 5", "C[4,6] X 1 30 X 2 5 X 3 5"}))
        << to_string(jit);
  }
}

// A script that brings only new nodes and START edges extends the routes (a second index, of
// the routes added since the last full build) instead of rebuilding them all, and removing a
// query leaves its routes in place, never firing, until the next full build. Queries added one
// script each and some removed again, at random points of a stream, give the same outputs as
// when every change is followed by a full rebuild (forced by a query that gives another's
// stream its first reader), also with the lookahead (hint) and on four threads. The shapes:
// NEXT with a constant Name, FOLD, a keyed NEXT, a plain FILTER, a query on a stream its own
// script declares, a second publisher of a stream (a union), and a reader of another query's
// output (whose first reader makes the routes be rebuilt). And with the background JIT, which
// keeps compiling while scripts are added and queries removed.
TEST(Engine, QueriesAddedAndRemovedRouteAsIfRebuilt) {
  const char* shapes[] = {
      "SELECT * FROM FILTER{DUR <= %d}(FILTER{Name = 'N%d'}(Stock) NEXT{$1.Name = $2.Name AND "
      "$2.Price > $1.Price} Stock) PUBLISH Q%d;",
      "SELECT Name, Price_1 AS Start, Price AS Last FROM FILTER{DUR <= %d}(FILTER{Volume > "
      "%d}(Stock) FOLD{$2.Name = $.Name, $2.Price > $.Price,} Stock) PUBLISH Q%d;",
      "SELECT * FROM FILTER{DUR <= %d}(FILTER{Volume > %d}(Stock) NEXT{$1.Name = $2.Name} Stock) "
      "PUBLISH Q%d;",
      "SELECT Name, Price FROM FILTER{Price > 10%d AND Volume > %d}(Stock) PUBLISH Q%d;",
      "CREATE STREAM Side%d (Name STRING);\n"
      "SELECT * FROM FILTER{DUR <= %d}(Side%d NEXT{$1.Name = $2.Name} Stock) PUBLISH Q%d;",
      "SELECT Name, Price FROM FILTER{Volume > %d AND Price < 10%d}(Stock) PUBLISH Both;",
      "SELECT * FROM FILTER{DUR <= %d}(Both NEXT{$1.Name = $2.Name AND $2.Volume > %d} Stock) "
      "PUBLISH Q%d;",
  };
  for (uint64_t seed = 0; seed < 8; ++seed) {
    std::mt19937_64 rng(seed);
    std::vector<std::pair<size_t, std::string>> queries;  // (before which event, script)
    for (int q = 0; q < 24; ++q) {
      const size_t shape = q < int(std::size(shapes)) ? q : rng() % std::size(shapes);  // all
      const int a = int(10 + 25 * (rng() % 3)), b = int(rng() % 3);
      char text[512];
      if (shape == 0)
        std::snprintf(text, sizeof text, shapes[shape], a, b, q);
      else if (shape == 3)
        std::snprintf(text, sizeof text, shapes[shape], b, a, q);
      else if (shape == 4)
        std::snprintf(text, sizeof text, shapes[shape], q, a, q, q);
      else if (shape == 5)
        std::snprintf(text, sizeof text, shapes[shape], a, b + 1);
      else
        std::snprintf(text, sizeof text, shapes[shape], a, a + 20, q);
      queries.emplace_back(q < 10 ? 0 : rng() % 400, text);  // (the first before any event)
    }
    // Removals: before event `first`, the `second`-th query added so far (if it still runs).
    std::vector<std::pair<size_t, size_t>> removals;
    for (int k = 0; k < 16; ++k) removals.emplace_back(50 + rng() % 350, rng() % 24);
    std::sort(removals.begin(), removals.end());
    std::stable_sort(queries.begin(), queries.end(),
                     [](const auto& x, const auto& y) { return x.first < y.first; });
    std::vector<std::pair<std::string, std::array<Slot, 3>>> events;  // (stream, values)
    std::vector<int64_t> times;
    int64_t t = 0;
    for (int i = 0; i < 400; ++i) {
      t += rng() % 3 == 0 ? 0 : static_cast<int64_t>(rng() % 8) + 1;
      const Slot name = string_slot(intern("N" + std::to_string(rng() % 3)));
      const std::string side = "Side" + std::to_string(rng() % 24);
      if (rng() % 4 == 0)
        events.push_back({side, {name, Slot{}, Slot{}}});
      else
        events.push_back({"Stock",
                          {name, float_slot(100.0 + static_cast<double>(rng() % 11)),
                           int_slot(int64_t(rng() % 100))}});
      times.push_back(t);
    }
    const auto run = [&](bool rebuild, bool hints, unsigned threads, size_t* most_added,
                         JitMode jit = JitMode::Off) {
      Harness h(
          std::string(kStock) + "SELECT Name, Price FROM FILTER{Volume < 0}(Stock) PUBLISH Both;",
          threads == 1 ? options(jit, 1) : batched(threads));
      size_t next = 0, next_removal = 0;
      int dummies = 0;
      std::vector<uint32_t> added;  // the ids of the queries added, in order
      const auto id_of = [&](int64_t stream) { return static_cast<uint32_t>(stream); };
      const auto force_rebuild = [&] { force_full_build(h.engine, dummies); };
      for (size_t i = 0; i < events.size(); ++i) {
        for (; next < queries.size() && queries[next].first == i; ++next) {
          EXPECT_TRUE(h.engine.add_script(queries[next].second).empty()) << queries[next].second;
          added.push_back(static_cast<uint32_t>(h.engine.automaton().queries.size() - 1));
          if (most_added) *most_added = std::max(*most_added, h.engine.added_routes());
          if (rebuild) force_rebuild();
        }
        for (; next_removal < removals.size() && removals[next_removal].first == i;
             ++next_removal) {
          const size_t k = removals[next_removal].second;
          if (k >= added.size() || h.engine.automaton().queries[added[k]].removed) continue;
          EXPECT_TRUE(h.engine.remove_query(added[k]));
          if (rebuild) force_rebuild();
        }
        // The lookahead: the event kHintDistance on, if its stream exists by now.
        const size_t ahead = i + Engine::kHintDistance;
        if (hints && ahead < events.size()) {
          const int64_t s = h.engine.automaton().find_stream(events[ahead].first);
          if (s >= 0) h.engine.hint(id_of(s), events[ahead].second.data());
        }
        const int64_t s = h.engine.automaton().find_stream(events[i].first);
        if (s >= 0) h.engine.push(id_of(s), times[i], times[i], events[i].second.data());
      }
      // (The instances expire alike too: a rebuild renumbers the nodes of their deadlines.)
      return finished_rows_and_counts(h);
    };
    size_t most_added = 0;
    const std::vector<std::string> extended = run(false, false, 1, &most_added);
    EXPECT_GT(most_added, 0u) << "seed " << seed;  // the routes were extended
    EXPECT_EQ(run(true, false, 1, nullptr), extended) << "seed " << seed;
    EXPECT_EQ(run(false, true, 1, nullptr), extended) << "seed " << seed;
    EXPECT_EQ(run(false, false, 4, nullptr), extended) << "seed " << seed;
    // The background JIT compiles while queries come and go (and events run), also while
    // rebuilds move the nodes.
    EXPECT_EQ(run(false, true, 1, nullptr, JitMode::Auto), extended) << "seed " << seed;
    EXPECT_EQ(run(true, true, 1, nullptr, JitMode::Auto), extended) << "seed " << seed;
    EXPECT_EQ(run(true, false, 4, nullptr), extended) << "seed " << seed;
    for (const char* stream : {"Q", "Both["}) {  // not vacuous
      EXPECT_TRUE(std::any_of(extended.begin(), extended.end(),
                              [&](const std::string& o) { return o.starts_with(stream); }))
          << "seed " << seed << ", " << stream;
    }
  }
}

// `n` Stock events of symbols N0..N3 (prices 100..110, volumes 0..99) and their times, which
// advance by 0 (a third of the time) or by 1..max_step.
std::pair<std::vector<std::array<Slot, 3>>, std::vector<int64_t>> random_stocks(
    std::mt19937_64& rng, int n, int max_step) {
  std::vector<std::array<Slot, 3>> events;
  std::vector<int64_t> times;
  int64_t t = 0;
  for (int i = 0; i < n; ++i) {
    t += rng() % 3 == 0 ? 0 : 1 + static_cast<int64_t>(rng() % max_step);
    events.push_back({string_slot(intern("N" + std::to_string(rng() % 4))),
                      float_slot(100.0 + static_cast<double>(rng() % 11)),
                      int_slot(static_cast<int64_t>(rng() % 100))});
    times.push_back(t);
  }
  return {events, times};
}

// Removals among many queries whose nodes visit alike (three shapes, each differing only in
// its START filter; some filters repeat, so those nodes are shared): all but four removed one
// at a time in a random order, between events, with the routes left in place (retire_routes)
// or rebuilt after every removal, which must give the same outputs. The queries' routes are
// the full build's (which a removal reaches through the links) or added since (which a removal
// scans).
TEST(Engine, RemovalsAmongNodesThatVisitAlikeRouteAsIfRebuilt) {
  const char* shapes[] = {
      "SELECT Name, Price FROM FILTER{Volume > %d}(Stock) NEXT{$2.Price > $1.Price} Stock "
      "PUBLISH Q%d;",
      "SELECT Name, Price_1 AS Start, Price AS Last FROM FILTER{DUR <= 40}(FILTER{Volume > "
      "%d}(Stock) FOLD{$2.Name = $.Name, $2.Price > $.Price,} Stock) PUBLISH Q%d;",
      "SELECT * FROM FILTER{Volume > %d}(Stock) NEXT{$1.Name = $2.Name AND $2.Volume > 50} "
      "Stock PUBLISH Q%d;",
  };
  for (uint64_t seed = 0; seed < 6; ++seed) {
    std::mt19937_64 rng(seed);
    std::vector<std::string> queries;
    for (int q = 0; q < 30; ++q) {
      char text[512];
      std::snprintf(text, sizeof text, shapes[rng() % 3], int(rng() % 12) * 8, q);
      queries.push_back(text);
    }
    std::vector<uint32_t> order(queries.size());  // the removals: every query but four
    std::iota(order.begin(), order.end(), 1u);    // (query 0 is the harness's)
    std::shuffle(order.begin(), order.end(), rng);
    order.resize(queries.size() - 4);
    const auto [events, times] = random_stocks(rng, 10 * int(order.size()) + 40, 5);
    // `base`: the queries' routes are the full build's (else added since); `rebuild`: the
    // routes are built again after every removal.
    const auto run = [&](bool base, bool rebuild) {
      Harness h(
          std::string(kStock) + "SELECT Name, Price FROM FILTER{Volume < 0}(Stock) PUBLISH Both;",
          options(JitMode::Off, 1));
      int dummies = 0;
      const auto force_rebuild = [&] { force_full_build(h.engine, dummies); };
      for (const std::string& q : queries) EXPECT_TRUE(h.engine.add_script(q).empty()) << q;
      if (base) force_rebuild();
      EXPECT_EQ(h.engine.added_routes() > 0, !base);
      const uint32_t stock = h.stream("Stock");
      for (size_t i = 0; i < events.size(); ++i) {
        if (i % 10 == 0 && i / 10 < order.size()) {
          EXPECT_TRUE(h.engine.remove_query(order[i / 10]));
          if (rebuild) force_rebuild();
        }
        h.engine.push(stock, times[i], times[i], events[i].data());
      }
      h.engine.finish();
      std::sort(h.outputs.begin(), h.outputs.end());  // (the order within an epoch may differ)
      return h.outputs;
    };
    const std::vector<std::string> linked = run(true, false);
    EXPECT_GT(linked.size(), 100u) << "seed " << seed;
    EXPECT_EQ(run(true, true), linked) << "seed " << seed;
    EXPECT_EQ(run(false, false), linked) << "seed " << seed;
  }
}

// A START edge that is its NEXT or FOLD node's only way in, and whose guard is the node's
// equality and more (`FILTER{Name = 'N1' AND Volume > 40}(Stock) NEXT{$1.Name = $2.Name ...}`),
// rides on the node's route: one route and one index posting for both (Route::feeds). The
// queries of the benchmark's mix are of this shape. Rows and instance counts must be those of
// the engine without the global index (where every route is a candidate and nothing rides),
// with and without the lookahead, on four threads, and while queries are removed between
// events (the edges of a removed query's node must stop adding instances to it).
TEST(Engine, StartEdgesRidingOnTheirNodesRunAsWithoutTheIndex) {
  const char* shapes[] = {
      "SELECT Name, Price_1 AS First, Price AS Second FROM FILTER{DUR <= %d}(FILTER{Name = "
      "'N%d' AND Volume > %d}(Stock) NEXT{$1.Name = $2.Name AND $2.Price > $1.Price} Stock) "
      "PUBLISH Q%d;",
      "SELECT Name, Price_1 AS Start, Price AS Last FROM FILTER{DUR <= %d}(FILTER{Name = 'N%d' "
      "AND Volume > %d}(Stock) FOLD{$2.Name = $.Name, $2.Price > $.Price,} Stock) PUBLISH Q%d;",
      "SELECT Name, Price FROM FILTER{Name = 'N%d' AND Volume > %d}(Stock) PUBLISH Q%d;",
  };
  // One rider query after a full build: its one route (two without riding).
  {
    Harness h(std::string(kStock) + "SELECT * FROM FILTER{Volume < 0}(Stock) PUBLISH L;",
              options(JitMode::Off, 1));
    char text[512];
    std::snprintf(text, sizeof text, shapes[0], 10, 1, 40, 1);
    EXPECT_TRUE(h.engine.add_script(text).empty());
    EXPECT_EQ(h.engine.added_routes(), 1u);
    EngineOptions no_index = options(JitMode::Off, 1);
    no_index.index = false;
    Harness n(std::string(kStock) + "SELECT * FROM FILTER{Volume < 0}(Stock) PUBLISH L;", no_index);
    EXPECT_TRUE(n.engine.add_script(text).empty());
    EXPECT_EQ(n.engine.added_routes(), 2u);
  }
  for (uint64_t seed = 0; seed < 4; ++seed) {
    std::mt19937_64 rng(seed);
    std::string script(kStock);
    for (int q = 0; q < 40; ++q) {
      const size_t shape = rng() % std::size(shapes);
      const int dur = 10 + int(rng() % 4) * 10, name = int(rng() % 3), volume = int(rng() % 8) * 10;
      char text[512];
      if (shape == 2)
        std::snprintf(text, sizeof text, shapes[shape], name, volume, q);
      else
        std::snprintf(text, sizeof text, shapes[shape], dur, name, volume, q);
      script += text;  // (queries that repeat share their nodes and edges)
    }
    std::vector<uint32_t> removed(40);  // every other query, one every 15 events
    std::iota(removed.begin(), removed.end(), 0u);
    std::shuffle(removed.begin(), removed.end(), rng);
    removed.resize(20);
    const auto [events, times] = random_stocks(rng, 400, 4);
    const auto run = [&](EngineOptions opts, bool hints) {
      Harness h(script, opts);
      const uint32_t stock = h.stream("Stock");
      for (size_t i = 0; i < events.size(); ++i) {
        if (i % 15 == 14 && i / 15 < removed.size()) {
          EXPECT_TRUE(h.engine.remove_query(removed[i / 15]));
        }
        if (hints && i + Engine::kHintDistance < events.size())
          h.engine.hint(stock, events[i + Engine::kHintDistance].data());
        h.engine.push(stock, times[i], times[i], events[i].data());
      }
      return finished_rows_and_counts(h);
    };
    EngineOptions no_index = options(JitMode::Off, 1);
    no_index.index = false;
    const std::vector<std::string> want = run(no_index, false);
    EXPECT_GT(want.size(), 200u) << "seed " << seed;
    EXPECT_EQ(run(options(JitMode::Off, 1), false), want) << "seed " << seed;
    EXPECT_EQ(run(options(JitMode::Off, 1), true), want) << "seed " << seed;
    EXPECT_EQ(run(batched(4), false), want) << "seed " << seed;
  }
}

}  // namespace
}  // namespace cayuga

// What this machine allows for the 100k walk of cayuga-bench: the same queries and events, run
// by a kernel written for this one query mix instead of by the engine. Not an engine: it knows
// the three query shapes of bench/workload.cpp and nothing else. What it shows is how fast the
// work itself can go on this VM when the data an event needs is laid out for it: one block per
// symbol that holds the symbol's queries and all their instances, so that an event reads its
// block, its queries and its instances (a few neighbouring lines) instead of a node, a state
// and a route per candidate. With --per-query it keeps a block per query instead, as the engine
// keeps a node state per query: the difference between the two layouts is what the layout
// costs, with the engine's generic machinery (index, routes, predicates, emits) left out of
// both.
//
// Same results as the engine: it prints the number of outputs, which must equal cayuga-bench's
// `outputs` column for the same options (checked by tests/e2e/bench_cli_test.cpp). Semantics
// (CEL.md): an instance begun in an epoch is seen only by later epochs; NEXT consumes its
// instance at the first event of its symbol whose price is above the first price times the
// query's rise, FOLD at every event of its symbol, adding a rebound instance when the price rose
// past the last one; an output is kept when its duration is within the query's DUR bound;
// instances are freed at the first epoch close past their bound (as the engine's expiry), or
// when consumed.
//
//   ./build/bench/ceiling [--queries N] [--symbols N] [--events N] [--repeat N] [--per-query]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bench/workload.h"
#include "runtime/expiry_wheel.h"
#include "runtime/huge_pages.h"

namespace cayuga::bench {
namespace {

enum Kind : uint8_t { kSelect, kNext, kFold };

struct Query {
  double rise;      // NEXT: the second price must exceed the first times this
  int64_t max_dur;  // NEXT, FOLD: the longest duration kept (DUR < m MIN: m * 60000 - 1)
  int64_t volume;   // START: the event's volume must exceed this
  Kind kind;
};

struct Instance {
  int64_t t0, t1;
  int64_t expires;     // t0 + the query's max_dur + 1: freed at the first close at or after it
  double first, last;  // prices
  uint32_t query;      // into the block's queries
  uint32_t consumed;
};

// Some queries of one symbol (a contiguous run of `queries`) and all their instances: all of
// the symbol's (the kernel's layout), or one query's (--per-query: the engine's, one node state
// per query).
struct Block {
  uint32_t q_begin = 0, q_count = 0;
  std::vector<Instance> instances;
  int64_t scheduled = INT64_MAX;  // the expiry deadline queued in the wheel
  bool dirty = false;             // on the list of blocks the epoch's close compacts
};

// The three shapes cayuga-bench generates (bench/workload.cpp), read back from the script.
bool parse_query(const char* line, std::string& symbol, Query& q) {
  char sym[64];
  int volume = 0, minutes = 0;
  double rise = 0;
  if (std::sscanf(line, "SELECT Name, Price FROM FILTER{Name = '%63[^']' AND Volume > %d}(Stock);",
                  sym, &volume) == 2) {
    q = {0, 0, volume, kSelect};
  } else if (std::sscanf(line,
                         "SELECT Name, Price_1 AS First, Price AS Second FROM FILTER{DUR < %d "
                         "MIN}(FILTER{Name = '%63[^']' AND Volume > %d}(Stock) NEXT{$1.Name = "
                         "$2.Name AND $2.Price > $1.Price * %lf} Stock);",
                         &minutes, sym, &volume, &rise) == 4) {
    q = {rise, int64_t{minutes} * 60000 - 1, volume, kNext};
  } else if (std::sscanf(line,
                         "SELECT Name, Price_1 AS Start, Price AS Last FROM FILTER{DUR < %d "
                         "MIN}(FILTER{Name = '%63[^']' AND Volume > %d}(Stock) FOLD{$2.Name = "
                         "$.Name, $2.Price > $.Price,} Stock);",
                         &minutes, sym, &volume) == 3) {
    q = {0, int64_t{minutes} * 60000 - 1, volume, kFold};
  } else {
    return false;
  }
  symbol = sym;
  return true;
}

// The first two lines from `p`: a symbol's queries, or its first instances.
void prefetch_two_lines(const void* p) {
  __builtin_prefetch(p);
  __builtin_prefetch(static_cast<const char*>(p) + 64);
}

class Kernel {
 public:
  Kernel(const std::string& script, const std::vector<std::string>& symbols, bool per_query) {
    std::vector<uint32_t> symbol_of_id;
    for (size_t s = 0; s < symbols.size(); ++s) {
      const uint64_t id = intern(symbols[s]);
      if (id >= symbol_of_id.size()) symbol_of_id.resize(id + 1, UINT32_MAX);
      symbol_of_id[id] = static_cast<uint32_t>(s);
    }
    std::vector<Query> in_order;        // the script's
    std::vector<uint32_t> symbol_of;    // of each query
    size_t at = script.find('\n') + 1;  // (after CREATE STREAM)
    std::string symbol;
    while (at < script.size()) {
      const size_t end = script.find('\n', at);
      const std::string line = script.substr(at, end - at);
      at = end + 1;
      Query q;
      if (!parse_query(line.c_str(), symbol, q)) {
        std::fprintf(stderr, "ceiling: not a query of the generated mix: %s\n", line.c_str());
        std::exit(1);
      }
      in_order.push_back(q);
      symbol_of.push_back(symbol_of_id[intern(symbol)]);
    }
    // Per symbol, its blocks: [first[s], first[s + 1]) in members_. One block of all its
    // queries; or (per_query) a block per query, numbered as the script orders the queries,
    // so that a symbol's blocks lie apart as the engine's node states do.
    std::vector<std::vector<uint32_t>> by_symbol(symbols.size());
    std::vector<uint32_t> first;
    for (uint32_t q = 0; q < in_order.size(); ++q) by_symbol[symbol_of[q]].push_back(q);
    if (per_query) {
      queries_ = in_order;
      blocks_.resize(queries_.size());
      for (uint32_t q = 0; q < queries_.size(); ++q) blocks_[q].q_begin = q, blocks_[q].q_count = 1;
    } else {
      blocks_.resize(symbols.size());
    }
    for (size_t s = 0; s < symbols.size(); ++s) {
      first.push_back(static_cast<uint32_t>(members_.size()));
      if (per_query) {
        members_.insert(members_.end(), by_symbol[s].begin(), by_symbol[s].end());
        continue;
      }
      blocks_[s].q_begin = static_cast<uint32_t>(queries_.size());
      blocks_[s].q_count = static_cast<uint32_t>(by_symbol[s].size());
      for (uint32_t q : by_symbol[s]) queries_.push_back(in_order[q]);
      members_.push_back(static_cast<uint32_t>(s));
    }
    first.push_back(static_cast<uint32_t>(members_.size()));
    for (size_t id = 0; id < symbol_of_id.size(); ++id)
      if (symbol_of_id[id] != UINT32_MAX) {
        if (id >= members_of_id_.size()) members_of_id_.resize(id + 1);
        const uint32_t s = symbol_of_id[id];
        members_of_id_[id] = {first[s], first[s + 1]};
      }
  }

  uint64_t run(const std::vector<StockEvent>& events) {
    // Lookahead: an event's blocks eight events ahead, their queries and instances four ahead.
    constexpr size_t kAhead = 8, kHalf = 4;
    for (size_t i = 0; i < events.size(); ++i) {
      if (i + kAhead < events.size())
        for (uint32_t m : members_of(events[i + kAhead])) __builtin_prefetch(&blocks_[m]);
      if (i + kHalf < events.size()) {
        for (uint32_t m : members_of(events[i + kHalf])) {
          const Block& b = blocks_[m];
          prefetch_two_lines(queries_.data() + b.q_begin);
          if (!b.instances.empty()) prefetch_two_lines(b.instances.data());
        }
      }
      push(events[i]);
    }
    if (open_) close(epoch_ + 1);
    return outputs_;
  }

 private:
  // The blocks of the event's symbol.
  std::span<const uint32_t> members_of(const StockEvent& e) const {
    const uint64_t id = e.values[0].s;
    if (id >= members_of_id_.size()) return {};
    const auto [first, last] = members_of_id_[id];
    return {members_.data() + first, last - first};
  }

  void push(const StockEvent& e) {
    if (open_ && e.t > epoch_) close(epoch_ + 1);
    if (!open_) {
      open_ = true;
      epoch_ = e.t;
      // The blocks due at this epoch's close, taken now so that their lines have the epoch to
      // come in (as the engine does).
      wheel_.take_until(epoch_ + 1, due_);
      for (const ExpiryWheel::Entry& d : due_) __builtin_prefetch(&blocks_[d.node]);
    }
    for (uint32_t m : members_of(e)) visit(&blocks_[m], e);
  }

  // One block's part of an event: its instances, then its START edges.
  void visit(Block* b, const StockEvent& e) {
    const double price = e.values[1].f;
    const int64_t volume = e.values[2].i, t = e.t;
    const Query* qs = queries_.data() + b->q_begin;
    bool touched = false;
    // Visits: the instances of earlier epochs (those of this one have t1 == t). Every event
    // of an epoch sees the state the epoch began with: an instance another event of the epoch
    // consumed is still seen (it goes when the epoch closes).
    const size_t seen = b->instances.size();
    for (size_t k = 0; k < seen; ++k) {
      Instance& in = b->instances[k];
      if (in.t1 >= t) continue;
      const Query& q = qs[in.query];
      if (q.kind == kNext) {
        if (!(price > in.first * q.rise)) continue;
        in.consumed = 1;
        touched = true;
        outputs_ += t - in.t0 <= q.max_dur;
      } else {
        in.consumed = 1;
        touched = true;
        if (!(price > in.last)) continue;
        const Instance rebound{in.t0, t, in.expires, in.first, price, in.query, 0};
        b->instances.push_back(rebound);  // (may move `in`: not used after)
        outputs_ += t - rebound.t0 <= q.max_dur;
      }
    }
    // START edges.
    for (uint32_t k = 0; k < b->q_count; ++k) {
      const Query& q = qs[k];
      if (!(volume > q.volume)) continue;
      if (q.kind == kSelect) {
        ++outputs_;
      } else {
        b->instances.push_back(Instance{t, t, t + q.max_dur + 1, price, price, k, 0});
        touched = true;  // (its expiry is queued when the epoch's close compacts the block)
      }
    }
    if (touched && !b->dirty) {
      b->dirty = true;
      dirty_.push_back(static_cast<uint32_t>(b - blocks_.data()));
    }
  }

  // Drops consumed instances and those past their bound at `next_time`; queues the next expiry.
  void compact(Block& b, int64_t next_time) {
    int64_t expires = INT64_MAX;
    size_t keep = 0;
    for (const Instance& in : b.instances) {
      if (in.consumed || next_time >= in.expires) continue;
      expires = std::min(expires, in.expires);
      b.instances[keep++] = in;
    }
    b.instances.resize(keep);
    if (expires < b.scheduled) {
      b.scheduled = expires;
      wheel_.add(expires, static_cast<uint32_t>(&b - blocks_.data()), 0);
    }
  }

  void close(int64_t next_time) {
    open_ = false;
    for (uint32_t s : dirty_) {
      blocks_[s].dirty = false;
      compact(blocks_[s], next_time);
    }
    dirty_.clear();
    wheel_.take_until(next_time, due_);
    constexpr size_t kDueAhead = 8;
    for (size_t i = 0; i < due_.size(); ++i) {
      if (i + 2 * kDueAhead < due_.size())
        __builtin_prefetch(&blocks_[due_[i + 2 * kDueAhead].node]);
      if (i + kDueAhead < due_.size()) {
        prefetch_two_lines(blocks_[due_[i + kDueAhead].node].instances.data());
      }
      const ExpiryWheel::Entry& d = due_[i];
      Block& b = blocks_[d.node];
      if (b.scheduled != d.deadline) continue;  // superseded
      b.scheduled = INT64_MAX;
      compact(b, next_time);
    }
    due_.clear();
  }

  std::vector<Block> blocks_;
  std::vector<uint32_t> members_;  // every symbol's blocks, symbol after symbol
  std::vector<std::pair<uint32_t, uint32_t>> members_of_id_;  // by interned id: [first, last)
  std::vector<Query> queries_;
  std::vector<uint32_t> dirty_;
  std::vector<ExpiryWheel::Entry> due_;
  ExpiryWheel wheel_;
  uint64_t outputs_ = 0;
  int64_t epoch_ = 0;
  bool open_ = false;
};

int main_impl(int argc, char** argv) {
  size_t queries = 100000, symbols = 20000, events = 3000000, repeat = 1;
  bool per_query = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf(
          "usage: ceiling [--queries N] [--symbols N] [--events N] [--repeat N] [--per-query]\n"
          "Runs cayuga-bench's walk workload (same queries, same events) through a kernel\n"
          "written for that one query mix, and prints events/s and the outputs, which equal\n"
          "cayuga-bench's for the same options. Defaults: 100000 queries, 20000 symbols,\n"
          "3000000 events, 1 repeat (the median of N runs with more). The kernel keeps one\n"
          "block per symbol with its queries and all their instances; --per-query keeps a\n"
          "block per query instead (numbered in script order), as the engine keeps a node\n"
          "state per query.\n");
      return 0;
    }
    if (a == "--per-query") {
      per_query = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "ceiling: %s needs a value (--help for usage)\n", argv[i]);
      return 2;
    }
    char* end = nullptr;
    const unsigned long long v = std::strtoull(argv[++i], &end, 10);
    if (*end != '\0' || v == 0) {
      std::fprintf(stderr, "ceiling: %s wants a positive number, not '%s'\n", argv[i - 1], argv[i]);
      return 2;
    }
    if (a == "--queries")
      queries = v;
    else if (a == "--symbols")
      symbols = v;
    else if (a == "--events")
      events = v;
    else if (a == "--repeat")
      repeat = v;
    else {
      std::fprintf(stderr, "ceiling: unknown option %s (--help for usage)\n", argv[i - 1]);
      return 2;
    }
  }
  // As cayuga-bench --workload walk: the same symbols, mix and walk (seeds, 4 events per
  // 100 ms epoch).
  const std::vector<std::string> universe = synthetic_symbols(symbols);
  QueryMix mix;
  mix.queries = queries;
  mix.symbols = symbols;
  const std::string script = generate_queries(mix, universe);
  const std::vector<StockEvent> stream = random_walk(events, universe, 4, 100, 7);
  std::vector<double> rates;
  uint64_t outputs = 0;
  for (size_t r = 0; r < repeat; ++r) {
    Kernel kernel(script, universe, per_query);
    const auto start = std::chrono::steady_clock::now();
    outputs = kernel.run(stream);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rates.push_back(static_cast<double>(events) / secs);
  }
  std::sort(rates.begin(), rates.end());
  std::printf("queries %zu symbols %zu events %zu%s: %.0f events/s, outputs %llu\n", queries,
              symbols, events, per_query ? " per query" : "", rates[rates.size() / 2],
              static_cast<unsigned long long>(outputs));
  return 0;
}

}  // namespace
}  // namespace cayuga::bench

int main(int argc, char** argv) {
  cayuga::use_huge_pages(argv);  // as cayuga-bench does
  return cayuga::bench::main_impl(argc, argv);
}

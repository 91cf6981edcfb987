// Micro-benchmarks of the global predicate index (index/stream_index.*) and of the instance
// store behind it (runtime/engine.*): events per second.
//
// The index benchmarks build one index per size (kept across the runs Google Benchmark makes to
// size its iteration count) and cycle through 4096 pre-generated events, so a run measures
// match() alone; `matches/event` is how many targets an event hands out.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "index/stream_index.h"
#include "runtime/engine.h"

namespace cayuga {
namespace {

using index::StreamIndex;
using nfa::Atom;
using Event = std::array<Slot, 3>;  // Name STRING, Price FLOAT, Volume INT

constexpr uint32_t kName = 0, kPrice = 1, kVolume = 2;
constexpr size_t kSymbols = 20000;
constexpr size_t kEvents = 4096;  // a power of two

Atom make_atom(uint32_t attr, Atom::Op op, Type type, Slot value) {
  return Atom{.attr = attr, .op = op, .attr_type = type, .cmp = type, .value = value};
}

const std::vector<uint64_t>& symbols() {
  static const std::vector<uint64_t> ids = [] {
    std::vector<uint64_t> v;
    for (size_t k = 0; k < kSymbols; ++k) v.push_back(intern("S" + std::to_string(k)));
    return v;
  }();
  return ids;
}

struct Indexed {
  StreamIndex index;
  std::vector<Event> events;
};

// The prepared index of size `n` from `cache`, built by `fill` on first use.
template <typename Fill>
const Indexed& built(std::map<size_t, Indexed>& cache, size_t n, const Fill& fill) {
  auto [it, fresh] = cache.try_emplace(n);
  if (fresh) {
    std::mt19937_64 rng(n);
    fill(it->second, rng);
    it->second.index.prepare();
  }
  return it->second;
}

void run_match(benchmark::State& state, const Indexed& x) {
  std::vector<uint32_t> out;
  size_t i = 0;
  uint64_t found = 0;
  for (auto _ : state) {
    out.clear();
    x.index.match(x.events[i].data(), out);
    found += out.size();
    i = (i + 1) & (kEvents - 1);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["matches/event"] = double(found) / double(state.iterations());
}

// N guards `Name = 'S<k % 20000>' AND Volume > v` (v uniform in [0, 1000)), events with a random
// symbol and volume: one hash probe, then the key's postings (N / 20000 of them) each checked
// against its Volume atom.
void BM_MatchSymbolAndVolume(benchmark::State& state) {
  static std::map<size_t, Indexed> cache;
  const size_t n = static_cast<size_t>(state.range(0));
  const Indexed& x = built(cache, n, [n](Indexed& x, std::mt19937_64& rng) {
    for (size_t k = 0; k < n; ++k) {
      const Slot v = int_slot(static_cast<int64_t>(rng() % 1000));
      x.index.add(static_cast<uint32_t>(k), {make_atom(kName, Atom::Op::Eq, Type::String,
                                                       string_slot(symbols()[k % kSymbols])),
                                             make_atom(kVolume, Atom::Op::Gt, Type::Int, v)});
    }
    for (size_t i = 0; i < kEvents; ++i)
      x.events.push_back(Event{string_slot(symbols()[rng() % kSymbols]), float_slot(1.0),
                               int_slot(static_cast<int64_t>(rng() % 1000))});
  });
  run_match(state, x);
}
BENCHMARK(BM_MatchSymbolAndVolume)->Arg(1000)->Arg(100000)->Arg(1000000);

// N guards `Price > c` (c uniform in [0, 1000)), event prices uniform in [0, 2): about 0.1% of
// the targets match, found by one binary search in the sorted table.
void BM_MatchPriceRange(benchmark::State& state) {
  static std::map<size_t, Indexed> cache;
  const size_t n = static_cast<size_t>(state.range(0));
  const Indexed& x = built(cache, n, [n](Indexed& x, std::mt19937_64& rng) {
    std::uniform_real_distribution<double> constant(0, 1000), price(0, 2);
    for (size_t k = 0; k < n; ++k)
      x.index.add(static_cast<uint32_t>(k),
                  {make_atom(kPrice, Atom::Op::Gt, Type::Float, float_slot(constant(rng)))});
    for (size_t i = 0; i < kEvents; ++i)
      x.events.push_back(Event{string_slot(symbols()[0]), float_slot(price(rng)), int_slot(1)});
  });
  run_match(state, x);
}
BENCHMARK(BM_MatchPriceRange)->Arg(1000)->Arg(100000)->Arg(1000000);

// The instance store through the Engine API: the per-event cost of visiting one bucket of B live
// instances that the event does not affect. B events of name A (Volume 1, prices above 1000)
// start NEXT instances, all in bucket A of the `$1.Name = $2.Name` instance index; each measured
// event (name A, Volume 0 so it starts nothing, price below 1000) is handed to the NEXT node,
// finds the bucket and evaluates `$2.Price > $1.Price` on every instance, which never holds: so
// the bucket stays at B. One event per epoch, so the time includes closing it (nothing to
// compact). `instances/s` is B times the event rate.
void BM_BucketVisit(benchmark::State& state) {
  const int64_t b = state.range(0);
  EngineOptions options;
  options.threads = 1;
  Engine engine(options);
  const Diagnostics ds = engine.add_script(
      "CREATE STREAM S (Name STRING, Price FLOAT, Volume INT);\n"
      "SELECT * FROM FILTER{Volume > 0}(S) NEXT{$1.Name = $2.Name AND $2.Price > $1.Price} S;");
  if (!ds.empty()) {
    state.SkipWithError(ds[0].message.c_str());
    return;
  }
  const uint32_t s = static_cast<uint32_t>(engine.automaton().find_stream("S"));
  const uint64_t name = intern("A");
  for (int64_t k = 0; k < b; ++k) {
    const Slot start[3] = {string_slot(name), float_slot(1000.0 + double(k)), int_slot(1)};
    engine.push(s, 1, 1, start);
  }
  engine.wait_for_jit();
  std::vector<Event> events;
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> price(0, 1000);
  for (size_t i = 0; i < kEvents; ++i)
    events.push_back(Event{string_slot(name), float_slot(price(rng)), int_slot(0)});

  int64_t t = 2;
  size_t i = 0;
  for (auto _ : state) {
    engine.push(s, t, t, events[i].data());
    ++t;
    i = (i + 1) & (kEvents - 1);
  }
  engine.finish();
  if (engine.stats().instances != static_cast<uint64_t>(b) || engine.stats().outputs != 0)
    state.SkipWithError("the bucket did not stay at B instances");
  state.SetItemsProcessed(state.iterations());
  state.counters["instances/s"] =
      benchmark::Counter(double(state.iterations()) * double(b), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_BucketVisit)->Arg(16)->Arg(256)->Arg(4096);

}  // namespace
}  // namespace cayuga

BENCHMARK_MAIN();

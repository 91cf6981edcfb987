// Benchmark workloads in the style of the Cayuga papers: many stock queries, real or synthetic
// stock streams.
//
// Queries mix FILTER (equality on Name, ranges on Price/Volume), NEXT and FOLD with
// `$1.Name = $2.Name` joins plus random price/volume conditions and DUR bounds. Each query picks
// its symbol from the symbol universe, so with thousands of symbols an event matches few queries
// (a pub/sub workload). `overlap` is the fraction of queries that reuse an earlier query's
// prefix (same START filter), for state-merging experiments; `keyed` queries watch every
// symbol, for the instance index.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "compiler/types.h"

namespace cayuga::bench {

struct QueryMix {
  size_t queries = 1000;
  size_t symbols = 1000;   // symbol universe the queries pick from
  double overlap = 0.0;    // fraction of queries sharing an earlier query's START filter
  // How many of the queries (the last ones) name no symbol: `FILTER{Volume > v}(Stock)` with v
  // in [2950, 2998] (about 1% of events each) followed by the NEXT or FOLD of the mix. Their
  // nodes keep instances of every symbol, in buckets by Name (the instance index).
  size_t keyed = 0;
  uint64_t seed = 42;
};

// A script: `CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);` and the queries.
std::string generate_queries(const QueryMix& mix, const std::vector<std::string>& symbols);

struct StockEvent {
  int64_t t;
  Slot values[3];  // Name (interned), Price, Volume
};

// An event's price as text: its shortest decimal that reads back as the same double, so that
// events written for `cayuga run` or sent to the service are the in-memory run's own.
std::string price_text(const StockEvent& e);

// Symbol names S0000, S0001, ... (or the real tickers relabelled per copy).
std::vector<std::string> synthetic_symbols(size_t n);

// A random walk: `n` events over `symbols`, `per_epoch` simultaneous events every `tick_ms`.
std::vector<StockEvent> random_walk(size_t n, const std::vector<std::string>& symbols,
                                    size_t per_epoch, int64_t tick_ms, uint64_t seed);

// Real 1-minute bars (CSV with header sym,epoch_ms,...,close,...,volume, optionally .gz),
// replayed until `n` events: each symbol is relabelled into `copies` distinct symbols (`IBM.3`)
// and each replay is shifted past the previous one in time. Returns the symbol universe in
// `symbols`. Empty result and `error` set when the file cannot be read.
std::vector<StockEvent> replay_bars(const std::string& path, size_t n, size_t copies,
                                    std::vector<std::string>& symbols, std::string& error);

}  // namespace cayuga::bench

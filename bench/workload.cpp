#include "bench/workload.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <unordered_map>

#include "runtime/io.h"

namespace cayuga::bench {

std::string price_text(const StockEvent& e) {
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, e.values[1].f).ptr;
  return std::string(text, end);
}

namespace {

// A query's NEXT and FOLD steps after its START filter (%s): DUR bound in minutes (%d), and the
// NEXT's rise factor (%.3f).
constexpr const char* kNext =
    "SELECT Name, Price_1 AS First, Price AS Second FROM FILTER{DUR < %d MIN}("
    "%s NEXT{$1.Name = $2.Name AND $2.Price > $1.Price * %.3f} Stock);\n";
constexpr const char* kFold =
    "SELECT Name, Price_1 AS Start, Price AS Last FROM FILTER{DUR < %d MIN}("
    "%s FOLD{$2.Name = $.Name, $2.Price > $.Price,} Stock);\n";

}  // namespace

std::string generate_queries(const QueryMix& mix, const std::vector<std::string>& symbols) {
  std::mt19937_64 rng(mix.seed);
  std::uniform_int_distribution<size_t> pick_symbol(0, symbols.size() - 1);
  std::uniform_int_distribution<int> pick_kind(0, 2);
  std::uniform_int_distribution<int> volume(0, 2000);
  std::uniform_int_distribution<int> rise(1, 30);      // per mille
  std::uniform_int_distribution<int> minutes(1, 30);
  std::uniform_real_distribution<double> unit(0, 1);

  std::string out = "CREATE STREAM Stock (Name STRING, Price FLOAT, Volume INT);\n";
  out.reserve(mix.queries * 160);
  std::vector<std::string> starts;  // START filters used so far, for prefix overlap
  char buf[512];
  const size_t keyed = std::min(mix.keyed, mix.queries);
  // (Their own generator: the other queries are those of the mix without them.)
  std::mt19937_64 keyed_rng(mix.seed + 1);
  std::uniform_int_distribution<int> high_volume(2950, 2998);
  for (size_t q = 0; q < mix.queries; ++q) {
    if (q >= mix.queries - keyed) {
      std::snprintf(buf, sizeof buf, "FILTER{Volume > %d}(Stock)", high_volume(keyed_rng));
      const std::string start = buf;
      const int dur = minutes(keyed_rng);
      if (q % 2 == 0)
        std::snprintf(buf, sizeof buf, kNext, dur, start.c_str(), 1.0 + rise(keyed_rng) / 1000.0);
      else
        std::snprintf(buf, sizeof buf, kFold, dur, start.c_str());
      out += buf;
      continue;
    }
    std::string start;
    if (!starts.empty() && unit(rng) < mix.overlap) {
      start = starts[rng() % starts.size()];
    } else {
      std::snprintf(buf, sizeof buf, "FILTER{Name = '%s' AND Volume > %d}(Stock)",
                    symbols[pick_symbol(rng)].c_str(), volume(rng));
      start = buf;
      starts.push_back(start);
    }
    switch (pick_kind(rng)) {
      case 0:
        std::snprintf(buf, sizeof buf, "SELECT Name, Price FROM %s;\n", start.c_str());
        break;
      case 1:
        std::snprintf(buf, sizeof buf, kNext, minutes(rng), start.c_str(),
                      1.0 + rise(rng) / 1000.0);
        break;
      default:
        std::snprintf(buf, sizeof buf, kFold, minutes(rng), start.c_str());
        break;
    }
    out += buf;
  }
  return out;
}

std::vector<std::string> synthetic_symbols(size_t n) {
  std::vector<std::string> out;
  char buf[32];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "S%04zu", i);
    out.push_back(buf);
  }
  return out;
}

std::vector<StockEvent> random_walk(size_t n, const std::vector<std::string>& symbols,
                                    size_t per_epoch, int64_t tick_ms, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> step(0, 0.2);
  std::uniform_int_distribution<size_t> pick(0, symbols.size() - 1);
  std::uniform_int_distribution<int64_t> volume(1, 3000);
  std::vector<uint64_t> ids;
  for (const auto& s : symbols) ids.push_back(intern(s));
  std::vector<double> price(symbols.size(), 100.0);
  std::vector<StockEvent> out(n);
  for (size_t i = 0; i < n; ++i) {
    size_t s = pick(rng);
    price[s] = std::max(1.0, price[s] + step(rng));
    out[i].t = static_cast<int64_t>(i / std::max<size_t>(1, per_epoch)) * tick_ms;
    out[i].values[0] = string_slot(ids[s]);
    out[i].values[1] = float_slot(price[s]);
    out[i].values[2] = int_slot(volume(rng));
  }
  return out;
}

std::vector<StockEvent> replay_bars(const std::string& path, size_t n, size_t copies,
                                    std::vector<std::string>& symbols, std::string& error) {
  Schema schema{{{"Name", Type::String}, {"Price", Type::Float}, {"Volume", Type::Int}}};
  StreamTable streams;
  streams.add(StreamDef{0, "Stock", &schema});
  InputSpec spec;
  spec.path = path;
  spec.stream = "Stock";
  spec.format = InputFormat::Csv;
  spec.time_column = "epoch_ms";
  spec.time_format = "ms";
  spec.map = {{"Name", "sym"}, {"Price", "close"}};
  spec.map.emplace_back("Volume", "volume");
  auto reader = open_reader(spec, streams, EngineUnit::Ms, &error);
  if (!reader) return {};
  std::vector<StockEvent> base;
  InputEvent ev;
  for (;;) {
    auto st = reader->next(ev);
    if (st == EventReader::Status::End) break;
    if (st == EventReader::Status::Error) {
      error = reader->error().to_string();
      return {};
    }
    StockEvent e;
    e.t = ev.row.t1;
    std::copy_n(ev.row.values.data(), 3, e.values);
    base.push_back(e);
  }
  if (base.empty()) {
    error = path + ": no events";
    return {};
  }
  // Relabel each ticker into `copies` symbols: every bar appears once per copy, same time.
  std::unordered_map<uint64_t, std::vector<uint64_t>> relabel;
  for (const auto& e : base) {
    auto& ids = relabel[e.values[0].s];
    if (!ids.empty()) continue;
    for (size_t c = 0; c < copies; ++c) {
      std::string name = std::string(interned(e.values[0].s)) + "." + std::to_string(c);
      symbols.push_back(name);
      ids.push_back(intern(name));
    }
  }
  const int64_t span = base.back().t - base.front().t + 60000;
  std::vector<StockEvent> out;
  out.reserve(n);
  for (size_t round = 0; out.size() < n; ++round) {
    for (const auto& e : base) {
      for (size_t c = 0; c < copies && out.size() < n; ++c) {
        StockEvent x = e;
        x.t = e.t - base.front().t + static_cast<int64_t>(round) * span;
        x.values[0] = string_slot(relabel[e.values[0].s][c]);
        out.push_back(x);
      }
      if (out.size() >= n) break;
    }
  }
  return out;
}

}  // namespace cayuga::bench

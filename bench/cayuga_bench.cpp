// End-to-end benchmark sweep: queries × workload → events/s, latency, state, memory, compile time.
//
//   cayuga-bench --queries 1,100,10000 --workload walk,stock --events 1000000
//
// Events are pushed from memory straight into the engine (no parsing), one run per cell.
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "bench/workload.h"
#include "runtime/engine.h"
#include "runtime/huge_pages.h"

namespace {

using namespace cayuga;
using Clock = std::chrono::steady_clock;

// --scaled: queries per symbol, and the epochs' spacing times the symbols (ms), as in the
// 100,000-query run over 20,000 symbols with an epoch every 100 ms.
constexpr size_t kScaledQueriesPerSymbol = 5;
constexpr int64_t kScaledSpanMs = 2000000;

// After writing `path` through `out`: false, with a message, if any write failed.
bool write_file_ok(std::ofstream& out, const std::string& path) {
  out.flush();
  if (out) return true;
  std::cerr << "cannot write " << path << "\n";
  return false;
}

constexpr const char* kUsage =
    "usage: cayuga-bench [options]\n"
    "  --queries LIST     comma-separated query counts (default 1,100,10000)\n"
    "  --workload LIST    walk (synthetic random walk) and/or stock (real bars) (default both)\n"
    "  --events N         events per run (default 1000000)\n"
    "  --symbols N        symbol universe of the random walk (default 2000)\n"
    "  --copies N         relabelled copies of each real ticker (default 100)\n"
    "  --per-epoch N      simultaneous events per epoch in the random walk (default 4)\n"
    "  --tick-ms N        time between epochs of the random walk (default 100)\n"
    "  --scaled           walk only: the cost of more queries at constant work per event. Each\n"
    "                     query count Q gets its own walk over Q/5 symbols, an epoch every\n"
    "                     2,000,000/(Q/5) ms (printed before its rows), so that every symbol has\n"
    "                     five queries and one event per 500 s of event time, as in the\n"
    "                     100,000-query, 20,000-symbol run: candidates, matches and live\n"
    "                     instances per event stay the same. Replaces --symbols and --tick-ms\n"
    "  --jit LIST         off, on and/or auto (default on,off): one run per mode\n"
    "  --threads LIST     engine worker threads, one run per value (default 1; 0 = all cores).\n"
    "                     With more than one, a big epoch's events are buffered until it closes,\n"
    "                     so p50/p99 (per push call) are only meaningful with 1\n"
    "  --no-merge, --no-index, --no-instance-index   switch an optimization off\n"
    "  --no-hint          push without announcing events ahead (Engine::hint)\n"
    "  --overlap F        fraction of queries sharing an earlier START filter (default 0)\n"
    "  --keyed N          of each query count, the last N queries name no symbol: their\n"
    "                     START filter is `Volume > v` (about 1% of events each), and their\n"
    "                     NEXT/FOLD node keeps instances of every symbol in buckets by Name\n"
    "                     (default 0)\n"
    "  --churn N          after each run, add N more generated queries one script each, then\n"
    "                     remove some of them (--removals), and print the time per call (a\n"
    "                     service's subscriptions coming and going) and the live heap after\n"
    "                     them less the live heap before\n"
    "  --removals N       how many of the queries --churn added to remove (default 10)\n"
    "  --cycles N         repeat --churn's adds and removals N times, printing the live heap\n"
    "                     each cycle adds (default 1)\n"
    "  --repeat N         run each configuration N times and print the run with the median\n"
    "                     events/s (default 1; on a shared host, 5 makes numbers repeatable)\n"
    "  --write DIR        instead of running: write DIR/<load>_<queries>.cel and DIR/<load>.txt\n"
    "                     (Cayuga format) for end-to-end runs through `cayuga run --stats`:\n"
    "                     the same events (prices in full), so the same outputs\n"
    "  --data FILE        stock bars CSV (default "
    "tests/data/stocks/bars_1min_2024_head5000.csv.gz)\n";

// The value `text` of option `option` as a number; a message and exit 2 if it is none.
template <typename T>
T number(const std::string& option, const std::string& text) {
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) {
    std::cerr << "bad value '" << text << "' for " << option << "\n";
    std::exit(2);
  }
  return v;
}

std::vector<size_t> parse_list(const std::string& option, const std::string& s) {
  std::vector<size_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(number<size_t>(option, item));
  return out;
}

// The process's peak resident set (VmHWM), and its reset to the current resident set (Linux
// 4.0 on: "5" into /proc/self/clear_refs), so that each run reports its own peak: the compile's
// or the run's, whichever is higher, with the events and what earlier runs left in the heap.
long peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long kb = 0;
  while (status >> key) {
    if (key == "VmHWM:") {
      status >> kb;
      break;
    }
    status.ignore(1 << 20, '\n');
  }
  return kb * 1024;
}
void reset_peak_rss() {
  std::ofstream("/proc/self/clear_refs") << "5";
}

// Bytes of live heap: the arena chunks in use plus the big blocks glibc maps on their own
// (vectors of a million nodes or streams are such blocks; uordblks alone would miss them).
double live_heap_bytes() {
  struct mallinfo2 m = mallinfo2();
  return double(m.uordblks + m.hblkhd);
}

struct Result {
  double compile_ms, events_per_s, p50_ns, p99_ns;
  uint64_t outputs, peak_instances;
  double heap_per_query;  // bytes of live heap per registered query, before any event
  double candidates;
  long peak_rss_bytes;  // of this run (see peak_rss_bytes())
  // --churn: milliseconds per query added (one script each) and per query removed afterwards,
  // and per cycle, the live heap after it less the live heap before it.
  std::vector<double> add_ms, remove_ms, churn_heap_bytes;
};

// --churn: adds `script`'s queries (after its CREATE STREAM line) one script each, then removes
// up to `removals` of them, the last added first, timing each call.
void churn(Engine& engine, const std::string& script, size_t removals, Result& r) {
  const double heap_before = live_heap_bytes();
  const auto ms_since = [](Clock::time_point a) {
    return std::chrono::duration<double, std::milli>(Clock::now() - a).count();
  };
  std::istringstream lines(script);
  std::string line;
  std::getline(lines, line);  // CREATE STREAM
  const size_t added_before = r.add_ms.size();  // (earlier cycles')
  while (std::getline(lines, line)) {
    // (Each its own output stream: unnamed, every one would be `q1` of its script.)
    line.insert(line.rfind(';'), " PUBLISH Churn" + std::to_string(r.add_ms.size()));
    const auto a = Clock::now();
    if (!engine.add_script(line).empty()) {
      std::cerr << "--churn: a generated query does not compile: " << line << "\n";
      std::exit(1);
    }
    r.add_ms.push_back(ms_since(a));
  }
  const size_t total = engine.automaton().queries.size();
  for (size_t k = 0; k < std::min(removals, r.add_ms.size() - added_before); ++k) {
    const auto a = Clock::now();
    engine.remove_query(static_cast<uint32_t>(total - 1 - k));
    r.remove_ms.push_back(ms_since(a));
  }
  r.churn_heap_bytes.push_back(live_heap_bytes() - heap_before);
}

Result run_one(const std::string& script, const std::vector<bench::StockEvent>& events,
               const EngineOptions& options, bool hints, const std::string& churn_script,
               size_t removals, size_t cycles) {
  Result r{};
  reset_peak_rss();
  const double heap_before = live_heap_bytes();
  auto t0 = Clock::now();
  Engine engine(options);
  Diagnostics ds = engine.add_script(script);
  if (!ds.empty()) {
    std::cerr << "generated script does not compile: " << ds[0].line << ":" << ds[0].column
              << ": " << ds[0].message << "\n";
    std::exit(1);
  }
  engine.wait_for_jit();  // `auto` measures steady state; compile time is reported
  auto t1 = Clock::now();
  r.heap_per_query = (live_heap_bytes() - heap_before) /
                     std::max<size_t>(1, engine.automaton().queries.size());
  r.compile_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  const uint32_t stock = static_cast<uint32_t>(engine.automaton().find_stream("Stock"));
  std::vector<uint32_t> samples;
  samples.reserve(events.size() / 16 + 1);
  auto start = Clock::now();
  for (size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    if (hints && i + Engine::kHintDistance < events.size())
      engine.hint(stock, events[i + Engine::kHintDistance].values);
    if ((i & 15) == 0) {
      auto a = Clock::now();
      engine.push(stock, e.t, e.t, e.values);
      samples.push_back(static_cast<uint32_t>(
          std::min<int64_t>(UINT32_MAX, std::chrono::nanoseconds(Clock::now() - a).count())));
    } else {
      engine.push(stock, e.t, e.t, e.values);
    }
  }
  engine.finish();
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  r.events_per_s = events.size() / secs;
  std::sort(samples.begin(), samples.end());
  if (!samples.empty()) {
    r.p50_ns = samples[samples.size() / 2];
    r.p99_ns = samples[samples.size() * 99 / 100];
  }
  r.outputs = engine.stats().outputs;
  r.candidates = double(engine.stats().candidates) / std::max<size_t>(1, events.size());
  r.peak_instances = engine.stats().peak_instances;
  r.peak_rss_bytes = peak_rss_bytes();
  if (!churn_script.empty())
    for (size_t c = 0; c < cycles; ++c) churn(engine, churn_script, removals, r);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  use_huge_pages(argv);
  std::vector<size_t> queries = {1, 100, 10000};
  std::vector<std::string> workloads = {"walk", "stock"};
  size_t events = 1000000, symbols = 2000, copies = 100, per_epoch = 4;
  int64_t tick_ms = 100;
  std::vector<JitMode> jit_modes = {JitMode::On, JitMode::Off};
  std::vector<size_t> thread_counts = {1};
  EngineOptions base;
  double overlap = 0;
  size_t keyed = 0, churn_queries = 0, removals = 10, cycles = 1;
  bool hints = true, scaled = false, walk_set = false, workloads_set = false;
  size_t repeat = 1;
  std::string write_dir;
  std::string data = std::string(CAYUGA_SOURCE_DIR) + "/tests/data/stocks/bars_1min_2024_head5000.csv.gz";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n" << kUsage;
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") return std::cout << kUsage, 0;
    if (a == "--queries")
      queries = parse_list(a, value());
    else if (a == "--workload") {
      workloads_set = true;
      workloads.clear();
      std::stringstream ss(value());
      for (std::string w; std::getline(ss, w, ',');) {
        if (w != "walk" && w != "stock") {
          std::cerr << "unknown workload '" << w << "' (walk or stock)\n";
          return 2;
        }
        workloads.push_back(w);
      }
    } else if (a == "--events")
      events = number<size_t>(a, value());
    else if (a == "--symbols") {
      symbols = number<size_t>(a, value());
      walk_set = true;
    } else if (a == "--copies")
      copies = number<size_t>(a, value());
    else if (a == "--per-epoch")
      per_epoch = number<size_t>(a, value());
    else if (a == "--tick-ms") {
      tick_ms = number<int64_t>(a, value());
      walk_set = true;
    } else if (a == "--scaled")
      scaled = true;
    else if (a == "--no-merge")
      base.merge = false;
    else if (a == "--no-index")
      base.index = false;
    else if (a == "--no-instance-index")
      base.instance_index = false;
    else if (a == "--no-hint")
      hints = false;
    else if (a == "--jit") {
      jit_modes.clear();
      std::stringstream ss(value());
      for (std::string m; std::getline(ss, m, ',');) {
        auto mode = parse_jit_mode(m);
        if (!mode) {
          std::cerr << "--jit takes on, off, auto\n";
          return 2;
        }
        jit_modes.push_back(*mode);
      }
    } else if (a == "--threads")
      thread_counts = parse_list(a, value());
    else if (a == "--overlap")
      overlap = number<double>(a, value());
    else if (a == "--keyed")
      keyed = number<size_t>(a, value());
    else if (a == "--churn")
      churn_queries = number<size_t>(a, value());
    else if (a == "--removals")
      removals = number<size_t>(a, value());
    else if (a == "--cycles") {
      cycles = number<size_t>(a, value());
      if (cycles == 0) {
        std::cerr << "--cycles must be at least 1\n";
        return 2;
      }
    } else if (a == "--repeat") {
      repeat = number<size_t>(a, value());
      if (repeat == 0) {
        std::cerr << "--repeat must be at least 1\n";
        return 2;
      }
    } else if (a == "--data")
      data = value();
    else if (a == "--write") {
      write_dir = value();
      std::error_code ec;
      std::filesystem::create_directories(write_dir, ec);
      if (ec) {
        std::cerr << "cannot create " << write_dir << ": " << ec.message() << "\n";
        return 1;
      }
    } else {
      std::cerr << "unknown option " << a << "\n" << kUsage;
      return 2;
    }
  }

  if (scaled) {
    if (!workloads_set) workloads = {"walk"};
    const char* error = walk_set             ? "--scaled sets --symbols and --tick-ms itself"
                        : !write_dir.empty() ? "--scaled does not combine with --write"
                        : workloads != std::vector<std::string>{"walk"}
                            ? "--scaled applies to the walk workload only"
                            : nullptr;
    if (error) {
      std::cerr << error << "\n";
      return 2;
    }
  }
  if (write_dir.empty()) {
    std::printf("%-7s %9s %-4s %3s %10s %8s %12s %9s %9s %8s %10s %10s %9s\n", "load", "queries",
                "jit", "thr", "compile_ms", "B/query", "events/s", "p50_ns", "p99_ns", "cand/ev",
                "outputs", "peak_inst", "peak_MiB");
    std::printf(
        "(B/query: live heap per registered query before the run; peak_MiB: the process's peak "
        "resident set during the row's compile and run)\n");
    if (repeat > 1)
      std::printf("(each row: the run with the median events/s of %zu runs)\n", repeat);
  }
  for (const auto& w : workloads) {
    std::vector<std::string> universe;
    std::vector<bench::StockEvent> stream;
    const auto walk = [&](size_t n, int64_t tick) {
      universe = bench::synthetic_symbols(n);
      stream = bench::random_walk(events, universe, per_epoch, tick, 7);
    };
    if (w == "walk") {
      if (!scaled) walk(symbols, tick_ms);  // (else per query count, below)
    } else {                                // stock (the only other name --workload takes)
      std::string error;
      stream = bench::replay_bars(data, events, copies, universe, error);
      if (stream.empty()) {
        std::cerr << "cannot load stock bars: " << error << "\n";
        return 1;
      }
    }
    if (!write_dir.empty()) {
      const std::string path = write_dir + "/" + w + ".txt";
      std::ofstream out(path);
      for (const auto& e : stream)
        out << interned(e.values[0].s) << ',' << price_text(e) << ',' << e.values[2].i << ",Stock,"
            << e.t << ',' << e.t << '\n';
      if (!write_file_ok(out, path)) return 1;
      std::printf("wrote %s (%zu events)\n", path.c_str(), stream.size());
    }
    for (size_t q : queries) {
      if (scaled) {
        const size_t n = std::max<size_t>(1, q / kScaledQueriesPerSymbol);
        const int64_t tick = std::max<int64_t>(1, kScaledSpanMs / static_cast<int64_t>(n));
        walk(n, tick);
        std::printf("(%zu queries: --symbols %zu --tick-ms %lld)\n", q, n,
                    static_cast<long long>(tick));
      }
      bench::QueryMix mix;
      mix.queries = q;
      mix.overlap = overlap;
      mix.keyed = keyed;
      std::string script = bench::generate_queries(mix, universe);
      std::string churn_script;
      if (churn_queries > 0) {
        bench::QueryMix more = mix;
        more.queries = churn_queries;
        more.keyed = 0;
        more.seed = mix.seed + 1;
        churn_script = bench::generate_queries(more, universe);
      }
      if (!write_dir.empty()) {
        const std::string path = write_dir + "/" + w + "_" + std::to_string(q) + ".cel";
        std::ofstream out(path);
        out << script;
        if (!write_file_ok(out, path)) return 1;
        std::printf("wrote %s (%zu queries)\n", path.c_str(), q);
        continue;
      }
      for (JitMode mode : jit_modes)
      for (size_t threads : thread_counts) {
        EngineOptions options = base;
        options.jit = mode;
        options.threads = static_cast<unsigned>(threads);
        std::vector<Result> runs;
        for (size_t k = 0; k < repeat; ++k)
          runs.push_back(run_one(script, stream, options, hints, churn_script, removals, cycles));
        std::sort(runs.begin(), runs.end(),
                  [](const Result& x, const Result& y) { return x.events_per_s < y.events_per_s; });
        const Result& r = runs[runs.size() / 2];
        std::printf(
            "%-7s %9zu %-4s %3zu %10.1f %8.0f %12.0f %9.0f %9.0f %8.1f %10llu %10llu %9.1f\n",
            w.c_str(), q, to_string(mode), threads, r.compile_ms, r.heap_per_query, r.events_per_s,
            r.p50_ns, r.p99_ns, r.candidates, static_cast<unsigned long long>(r.outputs),
            static_cast<unsigned long long>(r.peak_instances), r.peak_rss_bytes / 1048576.0);
        if (!r.add_ms.empty()) {
          const auto summary = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            double sum = 0;
            for (double x : v) sum += x;
            char text[128];
            std::snprintf(text, sizeof text, "mean %.2f ms, median %.2f ms, max %.2f ms",
                          sum / v.size(), v[v.size() / 2], v.back());
            return std::string(text);
          };
          std::string heap;
          for (double bytes : r.churn_heap_bytes) {
            char text[32];
            std::snprintf(text, sizeof text, "%s%+.1f", heap.empty() ? "" : ", ", bytes / 1048576);
            heap += text;
          }
          std::printf(
              "churn: %zu queries added one script each: %s; %zu removed: %s; live heap %s MB%s\n",
              r.add_ms.size(), summary(r.add_ms).c_str(), r.remove_ms.size(),
              summary(r.remove_ms).c_str(), heap.c_str(),
              r.churn_heap_bytes.size() > 1 ? " (by cycle)" : "");
        }
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

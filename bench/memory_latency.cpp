// What a cache miss costs on this machine, to read the 100k-query numbers against
// (docs/benchmarks.md): for working sets from 1 MiB to 1 GiB, the time per load of one chain of
// dependent loads (latency) and of 8, 16 and 32 independent chains (what the core overlaps:
// its memory-level parallelism). Each element is a cache line; the chains visit the lines in a
// random cyclic order, so hardware prefetchers cannot help. Last, what a prefetch of a random
// line costs the core beside work that does not depend on it (28 per step, as many as an event's
// lines at 100k queries): zero if the misses overlapped with the work.
//
//   ./build/bench/memory_latency [--loads N]
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "runtime/huge_pages.h"

namespace {

struct alignas(64) Line {
  const Line* next;
};

// Nanoseconds per load following `chains` chains through `lines` for `loads` loads in all.
template <size_t Chains>
double walk(const std::vector<Line>& lines, const std::vector<size_t>& order, size_t loads) {
  std::array<const Line*, Chains> at;
  for (size_t c = 0; c < Chains; ++c) at[c] = &lines[order[c * order.size() / Chains]];
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < loads / Chains; ++i)
    for (size_t c = 0; c < Chains; ++c) at[c] = at[c]->next;
  const double ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  // Keeps the loads: the result depends on where the chains ended.
  if (std::find(at.begin(), at.end(), nullptr) != at.end()) std::abort();
  return ns / loads;
}

// Nanoseconds that each of `per` prefetches of random lines adds to a step of dependent work
// (a chain of ~300 multiplies, ~400 ns: about what an event at 100k queries computes), over
// `steps` steps: zero if the core overlapped the misses with the work.
double prefetch_cost(const std::vector<Line>& lines, const std::vector<size_t>& order, int per,
                     size_t steps) {
  const auto run = [&](int prefetches) {
    uint64_t x = 1;
    size_t k = 0;
    const auto start = std::chrono::steady_clock::now();
    for (size_t s = 0; s < steps; ++s) {
      for (int p = 0; p < prefetches; ++p) {
        __builtin_prefetch(&lines[order[k]], 0, 2);
        k = k + 1 == order.size() ? 0 : k + 1;
      }
      for (int j = 0; j < 300; ++j) x = x * 6364136223846793005ull + 1;
    }
    asm volatile("" ::"r"(x) : "memory");  // keeps the work and the prefetches
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start)
               .count() /
           static_cast<double>(steps);
  };
  return (run(per) - run(0)) / per;
}

}  // namespace

int main(int argc, char** argv) {
  cayuga::use_huge_pages(argv);  // as cayuga-bench and cayuga run do
  size_t loads = 20000000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf(
          "usage: memory_latency [--loads N]\n"
          "  ns per load of 1, 8, 16 and 32 independent chains of dependent loads,\n"
          "  for working sets of 1 MiB to 1 GiB (N loads each, default 20000000), and the\n"
          "  ns each of 28 prefetches of random lines adds to ~400 ns of dependent work\n");
      return 0;
    }
    if (std::strcmp(argv[i], "--loads") == 0 && i + 1 < argc) {
      loads = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "unknown option %s (see --help)\n", argv[i]);
      return 2;
    }
  }
  std::printf("%8s %14s %14s %14s %14s %14s\n", "MiB", "1 chain ns", "8 chains ns", "16 chains ns",
              "32 chains ns", "prefetch ns");
  for (size_t mib : {1, 4, 16, 64, 256, 1024}) {
    const size_t n = mib * 1048576 / sizeof(Line);
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    std::shuffle(order.begin(), order.end(), std::mt19937_64(1));
    std::vector<Line> lines(n);
    for (size_t i = 0; i < n; ++i) lines[order[i]].next = &lines[order[(i + 1) % n]];
    const double one = walk<1>(lines, order, loads);
    const double eight = walk<8>(lines, order, loads);
    const double sixteen = walk<16>(lines, order, loads);
    const double thirty_two = walk<32>(lines, order, loads);
    const double prefetch = prefetch_cost(lines, order, 28, loads / 100);
    std::printf("%8zu %14.1f %14.1f %14.1f %14.1f %14.1f\n", mib, one, eight, sixteen, thirty_two,
                prefetch);
    std::fflush(stdout);
  }
  return 0;
}

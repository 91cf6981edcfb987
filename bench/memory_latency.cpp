// What a cache miss costs on this machine, to read the 100k-query numbers against
// (docs/benchmarks.md): for working sets from 1 MiB to 1 GiB, the time per load of one chain of
// dependent loads (latency) and of 8, 16 and 32 independent chains (what the core overlaps:
// its memory-level parallelism). Each element is a cache line; the chains visit the lines in a
// random cyclic order, so hardware prefetchers cannot help.
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

}  // namespace

int main(int argc, char** argv) {
  cayuga::use_huge_pages(argv);  // as cayuga-bench and cayuga run do
  size_t loads = 20000000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::printf(
          "usage: memory_latency [--loads N]\n"
          "  ns per load of 1, 8, 16 and 32 independent chains of dependent loads,\n"
          "  for working sets of 1 MiB to 1 GiB (N loads each, default 20000000)\n");
      return 0;
    }
    if (std::strcmp(argv[i], "--loads") == 0 && i + 1 < argc) {
      loads = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "unknown option %s (see --help)\n", argv[i]);
      return 2;
    }
  }
  std::printf("%8s %14s %14s %14s %14s\n", "MiB", "1 chain ns", "8 chains ns", "16 chains ns",
              "32 chains ns");
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
    std::printf("%8zu %14.1f %14.1f %14.1f %14.1f\n", mib, one, eight, sixteen, thirty_two);
    std::fflush(stdout);
  }
  return 0;
}

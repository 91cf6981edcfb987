// Interpreter vs JIT (compiler/jit): ns per predicate evaluation, and JIT compile latency.
//
// Predicates over NEXT rows, Stock(Name STRING, Price FLOAT, Volume INT), $1 → row 0, $2 → row 1:
//   simple:  $1.Name = $2.Name
//   complex: $1.Name = $2.Name AND $2.Price > 1.05 * $1.Price
//            AND ($2.Volume % 7 = 1 OR ABS($2.Price - $1.Price) < 2.5)
// Each iteration evaluates the next of 256 pre-built row pairs (names drawn from two symbols, so
// about half of the pairs get past the first conjunct; the AllNamesEqual variants make every
// pair reach the later conjuncts). The JIT runs at each OptLevel
// (arg 0 = None, 1 = Light, 2 = O2) to show what optimization pays.
//
// Compile latency: BM_JitCompileShape compiles a new shape per iteration (the reference offset
// changes, so the cache never hits) and releases it; BM_JitCompileCacheHit compiles predicates
// differing only in constants (one shape); BM_InterpreterBuild is Program::predicate for scale.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/texpr_builders.h"
#include "compiler/expr.h"
#include "compiler/jit/jit.h"

namespace cayuga {
namespace {

using jit::CompiledExpr;
using jit::Jit;

using namespace bench;

TExpr simple_predicate() {
  return pred(TOp::Eq, name(k1), name(k2));
}

TExpr complex_predicate(double factor = 1.05, int64_t modulus = 7, double spread = 2.5) {
  TExpr abs_diff = node(TOp::Call, Type::Float,
                        {node(TOp::Sub, Type::Float, {price(k2), price(k1)})});
  abs_diff.func = Func::Abs;
  return node(
      TOp::And, Type::Int,
      {pred(TOp::Eq, name(k1), name(k2)),
       pred(TOp::Gt, price(k2), node(TOp::Mul, Type::Float, {cf(factor), price(k1)})),
       node(TOp::Or, Type::Int,
            {pred(TOp::Eq, node(TOp::Mod, Type::Int, {volume(k2), ci(modulus)}), ci(1)),
             pred(TOp::Lt, abs_diff, cf(spread))})});
}

// same_name: every pair has equal names, so the complex predicate evaluates all its conjuncts.
struct Rows {
  std::vector<std::vector<Slot>> r0, r1;
  std::vector<EvalInput> inputs;
  explicit Rows(bool same_name) {
    std::mt19937_64 rng(7);
    uint64_t names[2] = {intern("IBM"), intern("MSFT")};
    std::uniform_real_distribution<double> px(90.0, 110.0);
    for (int i = 0; i < 256; ++i) {
      r0.push_back({string_slot(names[rng() % 2]), float_slot(px(rng)),
                    int_slot(int64_t(rng() % 10000))});
      r1.push_back({same_name ? r0.back()[0] : string_slot(names[rng() % 2]),
                    float_slot(px(rng) * 1.1), int_slot(int64_t(rng() % 10000))});
    }
    for (int i = 0; i < 256; ++i) {
      EvalInput in;
      in.rows[0] = r0[i].data();
      in.rows[1] = r1[i].data();
      in.dur = i;
      inputs.push_back(in);
    }
  }
};
const Rows& rows(bool same_name = false) {
  static Rows mixed(false), same(true);
  return same_name ? same : mixed;
}

Jit* jit_at(int level) {
  static std::unique_ptr<Jit> jits[3];
  static std::string error;
  if (!jits[level]) {
    Jit::Options o;
    o.opt = Jit::OptLevel(level);
    jits[level] = Jit::create(&error, o);
  }
  return jits[level].get();
}

void run_interpreter(benchmark::State& state, const TExpr& e, bool same_name = false) {
  Program p = Program::predicate(e, two_rows);
  const auto& in = rows(same_name).inputs;
  EvalStats st;
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    hits += p.eval_predicate(in[i], st);
    i = (i + 1) & 255;
  }
  benchmark::DoNotOptimize(hits);
  state.counters["true%"] = 100.0 * double(hits) / double(state.iterations());
}

void run_jit(benchmark::State& state, const TExpr& e, bool same_name = false) {
  Jit* jit = jit_at(int(state.range(0)));
  if (!jit) {
    state.SkipWithError("no JIT on this host");
    return;
  }
  std::string error;
  CompiledExpr c = jit->compile_predicate(e, two_rows, &error);
  if (!c) {
    state.SkipWithError(error.c_str());
    return;
  }
  const auto& in = rows(same_name).inputs;
  EvalStats st;
  size_t i = 0, hits = 0;
  for (auto _ : state) {
    hits += c.eval_predicate(in[i], st);
    i = (i + 1) & 255;
  }
  benchmark::DoNotOptimize(hits);
  state.counters["true%"] = 100.0 * double(hits) / double(state.iterations());
}

void BM_InterpreterSimple(benchmark::State& state) {
  run_interpreter(state, simple_predicate());
}
void BM_JitSimple(benchmark::State& state) {
  run_jit(state, simple_predicate());
}
void BM_InterpreterComplex(benchmark::State& state) {
  run_interpreter(state, complex_predicate());
}
void BM_JitComplex(benchmark::State& state) {
  run_jit(state, complex_predicate());
}
void BM_InterpreterComplexAllNamesEqual(benchmark::State& state) {
  run_interpreter(state, complex_predicate(), true);
}
void BM_JitComplexAllNamesEqual(benchmark::State& state) {
  run_jit(state, complex_predicate(), true);
}
BENCHMARK(BM_InterpreterSimple);
BENCHMARK(BM_JitSimple)->DenseRange(0, 2);
BENCHMARK(BM_InterpreterComplex);
BENCHMARK(BM_JitComplex)->DenseRange(0, 2);
BENCHMARK(BM_InterpreterComplexAllNamesEqual);
BENCHMARK(BM_JitComplexAllNamesEqual)->DenseRange(0, 2);

// A new shape per iteration: the complex predicate with $2.Volume read from a different offset.
void BM_JitCompileShape(benchmark::State& state) {
  Jit* jit = jit_at(int(state.range(0)));
  if (!jit) {
    state.SkipWithError("no JIT on this host");
    return;
  }
  static uint32_t next_offset = 3;
  TExpr e = complex_predicate();
  TExpr& vol = e.kids[2].kids[0].kids[0].kids[0];  // $2.Volume in ($2.Volume % 7 = 1)
  std::string error;
  for (auto _ : state) {
    vol.index = next_offset++;
    CompiledExpr c = jit->compile_predicate(e, two_rows, &error);
    if (!c) {
      state.SkipWithError(error.c_str());
      return;
    }
    benchmark::DoNotOptimize(c.predicate_fn());
  }  // c released each iteration: its ResourceTracker is removed
  state.SetLabel("compile + release of one shape");
}
BENCHMARK(BM_JitCompileShape)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->Iterations(40);

// Same shape, different constants: a cache hit (fold + normalize + hash lookup).
void BM_JitCompileCacheHit(benchmark::State& state) {
  Jit* jit = jit_at(1);
  if (!jit) {
    state.SkipWithError("no JIT on this host");
    return;
  }
  CompiledExpr keep = jit->compile_predicate(complex_predicate(), two_rows);
  int64_t k = 2;
  for (auto _ : state) {
    CompiledExpr c = jit->compile_predicate(complex_predicate(1.0 + double(k) / 100, k, 2.5),
                                            two_rows);
    benchmark::DoNotOptimize(c.predicate_fn());
    k = k % 1000 + 2;
  }
}
BENCHMARK(BM_JitCompileCacheHit)->Unit(benchmark::kMicrosecond);

void BM_InterpreterBuild(benchmark::State& state) {
  TExpr e = complex_predicate();
  for (auto _ : state) {
    Program p = Program::predicate(e, two_rows);
    benchmark::DoNotOptimize(p.always_true());
  }
}
BENCHMARK(BM_InterpreterBuild)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace cayuga

BENCHMARK_MAIN();

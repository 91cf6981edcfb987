// Micro-benchmarks of the predicate / value interpreter (compiler/expr.*): ns per evaluation.
//
// Each iteration evaluates one program against the next of 256 pre-built (instance, event) row
// pairs, so branch predictors see realistic data rather than one repeated input.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "bench/texpr_builders.h"
#include "compiler/expr.h"

namespace cayuga {
namespace {

using namespace bench;

struct Data {
  std::vector<Slot> rows;  // 256 pairs of 3-slot rows
  std::vector<int64_t> durs;
  Data() {
    const uint64_t names[] = {intern("IBM"), intern("MSFT"), intern("AAPL"), intern("ORCL")};
    uint64_t s = 88172645463325252ull;
    auto next = [&] {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      return s;
    };
    for (int i = 0; i < 512; ++i) {
      rows.push_back(string_slot(names[next() % 4]));
      rows.push_back(float_slot(10.0 + double(next() % 1000) / 100.0));
      rows.push_back(int_slot(int64_t(next() % 2000)));
    }
    for (int i = 0; i < 256; ++i) durs.push_back(int64_t(next() % 120000));
  }
};

void run_predicate(benchmark::State& state, const TExpr& e) {
  static const Data data;
  Program p = Program::predicate(e, two_rows);
  EvalStats stats;
  size_t i = 0;
  int64_t hits = 0;
  for (auto _ : state) {
    EvalInput in;
    in.rows[0] = &data.rows[6 * i];
    in.rows[1] = &data.rows[6 * i + 3];
    in.dur = data.durs[i];
    hits += p.eval_predicate(in, stats);
    i = (i + 1) & 255;
  }
  benchmark::DoNotOptimize(hits);
  state.counters["true%"] = 100.0 * double(hits) / double(state.iterations());
}

void run_value(benchmark::State& state, const TExpr& e) {
  static const Data data;
  Program p = Program::value(e, two_rows);
  EvalStats stats;
  size_t i = 0;
  for (auto _ : state) {
    EvalInput in;
    in.rows[0] = &data.rows[6 * i];
    in.rows[1] = &data.rows[6 * i + 3];
    in.dur = data.durs[i];
    Slot v = p.eval_value(in, stats);
    benchmark::DoNotOptimize(v);
    i = (i + 1) & 255;
  }
}

// FILTER{Volume > 1000}: one fused compare-with-constant.
void BM_FilterIntConst(benchmark::State& state) {
  run_predicate(state, pred(TOp::Gt, volume(k1), ci(1000)));
}
BENCHMARK(BM_FilterIntConst);

// NEXT{$1.Name = $2.Name AND $2.Price > 1.05 * $1.Price}.
void BM_NextNameAndPrice(benchmark::State& state) {
  TExpr mul = node(TOp::Mul, Type::Float, {cf(1.05), price(k1)});
  run_predicate(state, node(TOp::And, Type::Int,
                            {pred(TOp::Eq, name(k1), name(k2)), pred(TOp::Gt, price(k2), mul)}));
}
BENCHMARK(BM_NextNameAndPrice);

// Same, with equal names everywhere so both atoms always run.
void BM_PriceRatioOnly(benchmark::State& state) {
  TExpr mul = node(TOp::Mul, Type::Float, {cf(1.05), price(k1)});
  run_predicate(state, pred(TOp::Gt, price(k2), mul));
}
BENCHMARK(BM_PriceRatioOnly);

// ($1.Price + $2.Price) / 2.0 > 15 AND ABS($2.Volume - $1.Volume) < 500
//   OR $2.Name = 'IBM' AND DUR < 60000 AND NOT ($2.Price <= 12.5)
void BM_Complex(benchmark::State& state) {
  TExpr avg =
      node(TOp::Div, Type::Float, {node(TOp::Add, Type::Float, {price(k1), price(k2)}), cf(2.0)});
  TExpr diff = node(TOp::Sub, Type::Int, {volume(k2), volume(k1)});
  TExpr abs = node(TOp::Call, Type::Int, {diff});
  abs.func = Func::Abs;
  TExpr left = node(TOp::And, Type::Int, {pred(TOp::Gt, avg, cf(15)), pred(TOp::Lt, abs, ci(500))});
  TExpr right =
      node(TOp::And, Type::Int,
           {pred(TOp::Eq, name(k2), cs("IBM")), pred(TOp::Lt, leaf(TOp::Dur, Type::Int), ci(60000)),
            node(TOp::Not, Type::Int, {pred(TOp::Le, price(k2), cf(12.5))})});
  run_predicate(state, node(TOp::Or, Type::Int, {left, right}));
}
BENCHMARK(BM_Complex);

// A predicate that may divide by zero: lowered to value code, no short-circuit past `/`.
void BM_IntDivision(benchmark::State& state) {
  TExpr q = node(TOp::Div, Type::Int, {volume(k2), node(TOp::Add, Type::Int, {volume(k1), ci(1)})});
  run_predicate(state, node(TOp::And, Type::Int,
                            {pred(TOp::Eq, name(k1), name(k2)), pred(TOp::Gt, q, ci(2))}));
}
BENCHMARK(BM_IntDivision);

// A SELECT / FOLD value: $.Volume + $2.Volume * 2.
void BM_ValueIntArith(benchmark::State& state) {
  run_value(state, node(TOp::Add, Type::Int,
                        {volume(k1), node(TOp::Mul, Type::Int, {volume(k2), ci(2)})}));
}
BENCHMARK(BM_ValueIntArith);

// String ordering goes through the interner: $1.Name < $2.Name.
void BM_StringLess(benchmark::State& state) {
  run_predicate(state, pred(TOp::Lt, name(k1), name(k2)));
}
BENCHMARK(BM_StringLess);

}  // namespace
}  // namespace cayuga

BENCHMARK_MAIN();

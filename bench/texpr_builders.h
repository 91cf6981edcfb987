// Builders of typed expressions (compiler/typed.h) for the micro-benchmarks, over NEXT rows of
// Stock(Name STRING, Price FLOAT, Volume INT): slots 0, 1, 2; $1 → row 0, $2 → row 1.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "compiler/expr.h"

namespace cayuga::bench {

inline TExpr leaf(TOp op, Type t, Slot v = int_slot(0)) {
  TExpr e;
  e.op = op;
  e.type = t;
  e.value = v;
  return e;
}
inline TExpr ci(int64_t v) { return leaf(TOp::Const, Type::Int, int_slot(v)); }
inline TExpr cf(double v) { return leaf(TOp::Const, Type::Float, float_slot(v)); }
inline TExpr cs(const char* s) { return leaf(TOp::Const, Type::String, string_slot(intern(s))); }
inline TExpr ref(Type t, uint32_t index, Side side) {
  TExpr e = leaf(TOp::Ref, t);
  e.index = index;
  e.side = side;
  return e;
}
inline TExpr node(TOp op, Type t, std::vector<TExpr> kids) {
  TExpr e = leaf(op, t);
  e.kids = std::move(kids);
  return e;
}
inline TExpr pred(TOp op, TExpr a, TExpr b) {
  return node(op, Type::Int, {std::move(a), std::move(b)});
}

inline SlotRef two_rows(Side side, uint32_t index) {
  return SlotRef{uint8_t(side == Side::Second ? 1 : 0), index};
}
inline TExpr name(Side s) { return ref(Type::String, 0, s); }
inline TExpr price(Side s) { return ref(Type::Float, 1, s); }
inline TExpr volume(Side s) { return ref(Type::Int, 2, s); }
constexpr Side k1 = Side::First, k2 = Side::Second;

}  // namespace cayuga::bench

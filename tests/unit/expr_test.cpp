// The predicate / value interpreter (compiler/expr.*): exact semantics of CEL.md §3.
//
// Every expression is evaluated several ways — with its constants folded at compile time, and
// with each subset of its constants moved into row slots — so the fused (immediate / memory)
// and plain register forms of every op are checked against each other, and predicates are also
// checked against the same expression compiled as a 0/1 value.
#include "compiler/expr.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace cayuga {
namespace {

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
const double kInf = std::numeric_limits<double>::infinity();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- Builders -----------------------------------------------------------------------------------

TExpr ci(int64_t v) {
  TExpr e;
  e.op = TOp::Const;
  e.type = Type::Int;
  e.value = int_slot(v);
  return e;
}
TExpr cf(double v) {
  TExpr e;
  e.op = TOp::Const;
  e.type = Type::Float;
  e.value = float_slot(v);
  return e;
}
TExpr cs(std::string_view s) {
  TExpr e;
  e.op = TOp::Const;
  e.type = Type::String;
  e.value = string_slot(intern(s));
  return e;
}
TExpr ref(Type t, uint32_t index, Side side = Side::First) {
  TExpr e;
  e.op = TOp::Ref;
  e.type = t;
  e.side = side;
  e.index = index;
  return e;
}
TExpr node(TOp op, Type t, std::vector<TExpr> kids) {
  TExpr e;
  e.op = op;
  e.type = t;
  e.kids = std::move(kids);
  return e;
}
TExpr dur() {
  return node(TOp::Dur, Type::Int, {});
}
TExpr tof(TExpr a) {
  return node(TOp::ToFloat, Type::Float, {std::move(a)});
}
TExpr neg(TExpr a) {
  Type t = a.type;
  return node(TOp::Neg, t, {std::move(a)});
}
TExpr bin(TOp op, TExpr a, TExpr b) {
  Type t = op == TOp::Pow ? Type::Float : a.type;
  return node(op, t, {std::move(a), std::move(b)});
}
TExpr add(TExpr a, TExpr b) {
  return bin(TOp::Add, std::move(a), std::move(b));
}
TExpr sub(TExpr a, TExpr b) {
  return bin(TOp::Sub, std::move(a), std::move(b));
}
TExpr mul(TExpr a, TExpr b) {
  return bin(TOp::Mul, std::move(a), std::move(b));
}
TExpr div(TExpr a, TExpr b) {
  return bin(TOp::Div, std::move(a), std::move(b));
}
TExpr mod(TExpr a, TExpr b) {
  return bin(TOp::Mod, std::move(a), std::move(b));
}
TExpr pow(TExpr a, TExpr b) {
  return bin(TOp::Pow, std::move(a), std::move(b));
}
TExpr cmp(TOp op, TExpr a, TExpr b) {
  return node(op, Type::Int, {std::move(a), std::move(b)});
}
TExpr eq(TExpr a, TExpr b) {
  return cmp(TOp::Eq, std::move(a), std::move(b));
}
TExpr ne(TExpr a, TExpr b) {
  return cmp(TOp::Ne, std::move(a), std::move(b));
}
TExpr lt(TExpr a, TExpr b) {
  return cmp(TOp::Lt, std::move(a), std::move(b));
}
TExpr le(TExpr a, TExpr b) {
  return cmp(TOp::Le, std::move(a), std::move(b));
}
TExpr gt(TExpr a, TExpr b) {
  return cmp(TOp::Gt, std::move(a), std::move(b));
}
TExpr ge(TExpr a, TExpr b) {
  return cmp(TOp::Ge, std::move(a), std::move(b));
}
TExpr all(std::vector<TExpr> k) {
  return node(TOp::And, Type::Int, std::move(k));
}
TExpr any(std::vector<TExpr> k) {
  return node(TOp::Or, Type::Int, std::move(k));
}
TExpr no(TExpr a) {
  return node(TOp::Not, Type::Int, {std::move(a)});
}
TExpr tru() {
  return node(TOp::True, Type::Int, {});
}
TExpr call(Func f, Type t, std::vector<TExpr> kids) {
  TExpr e = node(TOp::Call, t, std::move(kids));
  e.func = f;
  return e;
}

// ---- Evaluation in every form ---------------------------------------------------------------

// Row slots: First(i) → row 0 slot i, Second(i) → row 1 slot i, Last(i) → row 0 slot 32 + i.
SlotRef two_rows(Side side, uint32_t index) {
  switch (side) {
    case Side::First:
      return {0, index};
    case Side::Second:
      return {1, index};
    case Side::Last:
      return {0, 32 + index};
  }
  return {0, index};
}

struct Rows {
  Slot r[2][64] = {};
  int64_t dur = 0;
  EvalInput input() const {
    EvalInput in;
    in.rows[0] = r[0];
    in.rows[1] = r[1];
    in.dur = dur;
    return in;
  }
};

int count_consts(const TExpr& e) {
  int n = e.op == TOp::Const;
  for (const auto& k : e.kids) n += count_consts(k);
  return n;
}

// Moves the constants selected by `mask` into fresh slots (alternating rows); the next free
// slot index is `next`.
TExpr lift(const TExpr& e, unsigned mask, int& counter, uint32_t& next, Rows& rows) {
  if (e.op == TOp::Const) {
    bool selected = (mask >> counter++) & 1;
    if (!selected) return e;
    uint32_t i = next++;
    Side side = i % 2 ? Side::Second : Side::First;
    rows.r[i % 2][i] = e.value;
    return ref(e.type, i, side);
  }
  TExpr out = e;
  for (auto& k : out.kids) k = lift(k, mask, counter, next, rows);
  return out;
}

uint64_t bits(Slot s) {
  return uint64_t(s.i);
}

struct Result {
  Slot value;
  uint64_t div_by_zero;
};

// Evaluates a value expression with every subset of its constants in row slots (slots below
// `first_free` are the caller's); all forms must agree bit for bit.
Result value_all(const TExpr& e, const Rows& base = {}, uint32_t first_free = 16) {
  int n = std::min(count_consts(e), 8);
  std::optional<Result> first;
  for (unsigned mask = 0; mask < (1u << n); ++mask) {
    Rows rows = base;
    int counter = 0;
    uint32_t next = first_free;
    TExpr lifted = lift(e, mask, counter, next, rows);
    Program p = Program::value(lifted, two_rows);
    EXPECT_EQ(p.kind(), Program::Kind::Value);
    EvalStats st;
    Result r{p.eval_value(rows.input(), st), st.div_by_zero};
    if (!first) {
      first = r;
    } else {
      EXPECT_EQ(bits(r.value), bits(first->value)) << "mask " << mask << "\n" << p.disassemble();
      EXPECT_EQ(r.div_by_zero, first->div_by_zero) << "mask " << mask;
    }
  }
  return *first;
}

struct PredResult {
  bool value;
  uint64_t div_by_zero;
};

// Predicates: every constant subset, as jumping/value predicate code and as a 0/1 value.
PredResult pred_all(const TExpr& e, const Rows& base = {}, uint32_t first_free = 16) {
  int n = std::min(count_consts(e), 8);
  std::optional<PredResult> first;
  for (unsigned mask = 0; mask < (1u << n); ++mask) {
    Rows rows = base;
    int counter = 0;
    uint32_t next = first_free;
    TExpr lifted = lift(e, mask, counter, next, rows);
    Program p = Program::predicate(lifted, two_rows);
    EXPECT_EQ(p.kind(), Program::Kind::Predicate);
    EvalStats st;
    PredResult r{p.eval_predicate(rows.input(), st), st.div_by_zero};
    Program v = Program::value(lifted, two_rows);
    EvalStats st2;
    Slot as_value = v.eval_value(rows.input(), st2);
    EXPECT_EQ(as_value.i, r.value ? 1 : 0) << v.disassemble();
    EXPECT_EQ(st2.div_by_zero, r.div_by_zero);
    if (!first) {
      first = r;
    } else {
      EXPECT_EQ(r.value, first->value) << "mask " << mask << "\n" << p.disassemble();
      EXPECT_EQ(r.div_by_zero, first->div_by_zero) << "mask " << mask;
    }
  }
  return *first;
}

int64_t I(const TExpr& e) {
  return value_all(e).value.i;
}
double F(const TExpr& e) {
  return value_all(e).value.f;
}
std::string_view S(const TExpr& e) {
  return interned(value_all(e).value.s);
}
bool P(const TExpr& e) {
  return pred_all(e).value;
}

// ---- Arithmetic ---------------------------------------------------------------------------------

TEST(Expr, IntArithmetic) {
  EXPECT_EQ(I(add(ci(2), ci(3))), 5);
  EXPECT_EQ(I(sub(ci(2), ci(3))), -1);
  EXPECT_EQ(I(mul(ci(-4), ci(3))), -12);
  EXPECT_EQ(I(div(ci(7), ci(2))), 3);
  EXPECT_EQ(I(div(ci(-7), ci(2))), -3);
  EXPECT_EQ(I(div(ci(7), ci(-2))), -3);
  EXPECT_EQ(I(div(ci(-7), ci(-2))), 3);
  EXPECT_EQ(I(mod(ci(7), ci(3))), 1);
  EXPECT_EQ(I(mod(ci(-7), ci(3))), -1);
  EXPECT_EQ(I(mod(ci(7), ci(-3))), 1);
  EXPECT_EQ(I(mod(ci(-7), ci(-3))), -1);
  EXPECT_EQ(I(neg(ci(5))), -5);
  EXPECT_EQ(I(add(mul(ci(2), ci(3)), sub(ci(10), div(ci(9), ci(3))))), 13);
}

TEST(Expr, IntWraps) {
  EXPECT_EQ(I(add(ci(kMax), ci(1))), kMin);
  EXPECT_EQ(I(sub(ci(kMin), ci(1))), kMax);
  EXPECT_EQ(I(mul(ci(kMax), ci(2))), -2);
  EXPECT_EQ(I(mul(ci(kMin), ci(-1))), kMin);
  EXPECT_EQ(I(div(ci(kMin), ci(-1))), kMin);
  EXPECT_EQ(I(mod(ci(kMin), ci(-1))), 0);
  EXPECT_EQ(I(mod(ci(5), ci(-1))), 0);
  EXPECT_EQ(I(div(ci(5), ci(-1))), -5);
  EXPECT_EQ(I(neg(ci(kMin))), kMin);
  EXPECT_EQ(I(call(Func::Abs, Type::Int, {ci(kMin)})), kMin);
  EXPECT_EQ(I(call(Func::Abs, Type::Int, {ci(-3)})), 3);
  EXPECT_EQ(I(call(Func::Abs, Type::Int, {ci(3)})), 3);
  EXPECT_EQ(I(div(ci(kMin), ci(2))), kMin / 2);
}

TEST(Expr, FloatArithmetic) {
  EXPECT_EQ(F(add(cf(0.5), cf(0.25))), 0.75);
  EXPECT_EQ(F(sub(cf(0.5), cf(0.25))), 0.25);
  EXPECT_EQ(F(mul(cf(1.5), cf(-2))), -3.0);
  EXPECT_EQ(F(div(cf(1), cf(4))), 0.25);
  EXPECT_EQ(F(mod(cf(7.5), cf(2))), 1.5);
  EXPECT_EQ(F(mod(cf(-7.5), cf(2))), -1.5);
  EXPECT_EQ(F(neg(cf(2.5))), -2.5);
  EXPECT_EQ(F(tof(ci(-3))), -3.0);
  EXPECT_EQ(F(mul(cf(1.05), tof(ci(100)))), 1.05 * 100.0);
  EXPECT_EQ(F(call(Func::Abs, Type::Float, {cf(-2.5)})), 2.5);
  EXPECT_TRUE(std::isnan(F(mod(cf(1), cf(0)))));
}

TEST(Expr, FloatDivisionByZeroIsIeee) {
  Result r = value_all(div(cf(1), cf(0)));
  EXPECT_EQ(r.value.f, kInf);
  EXPECT_EQ(r.div_by_zero, 0u);  // only INT division traps
  EXPECT_EQ(F(div(cf(-1), cf(0))), -kInf);
  EXPECT_EQ(F(div(cf(1), cf(-0.0))), -kInf);
  EXPECT_TRUE(std::isnan(F(div(cf(0), cf(0)))));
  EXPECT_TRUE(P(gt(div(cf(1), cf(0)), cf(1e308))));
}

TEST(Expr, Pow) {
  EXPECT_EQ(F(pow(cf(2), cf(10))), 1024.0);
  EXPECT_EQ(F(pow(cf(2), cf(0.5))), std::pow(2.0, 0.5));
  EXPECT_EQ(F(pow(cf(2), cf(-1))), 0.5);
  EXPECT_EQ(F(pow(cf(0), cf(0))), 1.0);
  EXPECT_TRUE(std::isnan(F(pow(cf(-8), cf(1.0 / 3)))));
  EXPECT_EQ(F(pow(tof(ci(3)), pow(cf(2), cf(2)))), 81.0);  // right-assoc: 3^(2^2)
}

TEST(Expr, Dur) {
  Rows rows;
  rows.dur = 1500;
  EXPECT_EQ(value_all(dur(), rows).value.i, 1500);
  EXPECT_TRUE(pred_all(le(dur(), ci(2000)), rows).value);
  EXPECT_FALSE(pred_all(gt(dur(), ci(2000)), rows).value);
  EXPECT_EQ(value_all(add(dur(), ci(1)), rows).value.i, 1501);
}

// ---- Division by zero -------------------------------------------------------------------------

TEST(Expr, IntDivisionByZeroInValueIsZero) {
  Rows rows;
  rows.r[0][0] = int_slot(7);
  rows.r[0][1] = int_slot(0);
  TExpr x = ref(Type::Int, 0), zero = ref(Type::Int, 1);
  Result r = value_all(div(x, zero), rows);
  EXPECT_EQ(r.value.i, 0);
  EXPECT_EQ(r.div_by_zero, 1u);
  r = value_all(add(ci(5), mod(x, zero)), rows);  // the whole value is 0, not 5
  EXPECT_EQ(r.value.i, 0);
  EXPECT_EQ(r.div_by_zero, 1u);
  r = value_all(add(div(x, zero), div(ci(1), ci(0))), rows);  // each occurrence counts
  EXPECT_EQ(r.value.i, 0);
  EXPECT_EQ(r.div_by_zero, 2u);
  r = value_all(mul(cf(2.5), tof(div(x, zero))), rows);
  EXPECT_EQ(bits(r.value), bits(float_slot(0.0)));
  EXPECT_EQ(r.div_by_zero, 1u);
  r = value_all(div(x, ci(0)));  // a constant zero divisor still traps at run time
  EXPECT_EQ(r.value.i, 0);
  EXPECT_EQ(r.div_by_zero, 1u);
  r = value_all(div(x, ref(Type::Int, 0)), rows);  // no trap: normal value, nothing counted
  EXPECT_EQ(r.value.i, 1);
  EXPECT_EQ(r.div_by_zero, 0u);

  Program p = Program::value(div(ci(1), ci(0)), single_row_ref);
  EvalStats st;
  EXPECT_EQ(p.eval_value(EvalInput{}, st).i, 0);
  EXPECT_EQ(p.eval_value(EvalInput{}, st).i, 0);
  EXPECT_EQ(st.div_by_zero, 2u);  // counted per evaluation, not folded away
}

TEST(Expr, IntDivisionByZeroMakesWholePredicateFalse) {
  Rows rows;
  rows.r[0][0] = int_slot(7);
  rows.r[0][1] = int_slot(0);
  TExpr x = ref(Type::Int, 0), zero = ref(Type::Int, 1);
  TExpr trap = eq(div(x, zero), ci(0));  // true if it did not trap: 7/0 "=" 0
  auto check = [&](const TExpr& e, uint64_t count) {
    PredResult r = pred_all(e, rows);
    EXPECT_FALSE(r.value);
    EXPECT_EQ(r.div_by_zero, count);
  };
  check(trap, 1);
  check(no(trap), 1);
  check(no(no(trap)), 1);
  check(any({eq(ci(1), ci(1)), trap}), 1);  // OR with a true operand before it
  check(any({trap, eq(x, x)}), 1);          // OR with a true operand after it
  check(all({eq(ci(1), ci(2)), trap}), 1);  // AND whose first operand is false
  check(no(all({trap, ne(x, x)})), 1);      // NOT of something false
  check(any({no(trap), gt(x, ci(0))}), 1);
  check(any({all({trap, eq(x, x)}), eq(x, x)}), 1);
  check(all({trap, gt(mod(x, ci(0)), ci(-1)), eq(x, x)}), 2);  // every trapping atom runs
  check(any({eq(x, x), lt(mod(ci(3), zero), ci(9)), trap}), 2);

  // Without a zero divisor the same shapes evaluate normally.
  Rows ok = rows;
  ok.r[0][1] = int_slot(2);
  PredResult r = pred_all(any({eq(ci(1), ci(1)), trap}), ok);
  EXPECT_TRUE(r.value);
  EXPECT_EQ(r.div_by_zero, 0u);
  r = pred_all(all({eq(div(x, zero), ci(3)), gt(mod(x, zero), ci(0))}), ok);
  EXPECT_TRUE(r.value);
  r = pred_all(no(all({eq(div(x, zero), ci(3)), gt(mod(x, zero), ci(1))})), ok);
  EXPECT_TRUE(r.value);

  Program p = Program::predicate(any({eq(x, x), trap}), two_rows);
  EvalStats st;
  EXPECT_FALSE(p.eval_predicate(rows.input(), st));
  EXPECT_TRUE(p.eval_predicate(ok.input(), st));
  EXPECT_EQ(st.div_by_zero, 1u);
}

// ---- Comparisons ------------------------------------------------------------------------------

TEST(Expr, IntComparisons) {
  for (int64_t a : {kMin, int64_t(-1), int64_t(0), int64_t(1), kMax}) {
    for (int64_t b : {kMin, int64_t(-1), int64_t(0), int64_t(1), kMax}) {
      EXPECT_EQ(P(eq(ci(a), ci(b))), a == b);
      EXPECT_EQ(P(ne(ci(a), ci(b))), a != b);
      EXPECT_EQ(P(lt(ci(a), ci(b))), a < b);
      EXPECT_EQ(P(le(ci(a), ci(b))), a <= b);
      EXPECT_EQ(P(gt(ci(a), ci(b))), a > b);
      EXPECT_EQ(P(ge(ci(a), ci(b))), a >= b);
      EXPECT_EQ(P(no(lt(ci(a), ci(b)))), !(a < b));
    }
  }
}

TEST(Expr, FloatComparisonsWithNaN) {
  const double vals[] = {-kInf, -1.5, -0.0, 0.0, 2.0, kInf, kNaN};
  for (double a : vals) {
    for (double b : vals) {
      EXPECT_EQ(P(eq(cf(a), cf(b))), a == b) << a << " " << b;
      EXPECT_EQ(P(ne(cf(a), cf(b))), a != b);
      EXPECT_EQ(P(lt(cf(a), cf(b))), a < b);
      EXPECT_EQ(P(le(cf(a), cf(b))), a <= b);
      EXPECT_EQ(P(gt(cf(a), cf(b))), a > b);
      EXPECT_EQ(P(ge(cf(a), cf(b))), a >= b);
      // Negations must not turn into the opposite comparison.
      EXPECT_EQ(P(no(lt(cf(a), cf(b)))), !(a < b));
      EXPECT_EQ(P(no(ge(cf(a), cf(b)))), !(a >= b));
      EXPECT_EQ(P(any({lt(cf(a), cf(b)), eq(ci(1), ci(2))})), a < b);
      EXPECT_EQ(P(no(all({le(cf(a), cf(b)), gt(cf(a), cf(b))}))), !(a <= b && a > b));
    }
  }
  EXPECT_FALSE(P(eq(div(cf(0), cf(0)), div(cf(0), cf(0)))));
  EXPECT_TRUE(P(ne(div(cf(0), cf(0)), div(cf(0), cf(0)))));
}

TEST(Expr, StringComparisonsAreBytewise) {
  EXPECT_TRUE(P(eq(cs("IBM"), cs("IBM"))));
  EXPECT_FALSE(P(eq(cs("IBM"), cs("ibm"))));
  EXPECT_TRUE(P(ne(cs("IBM"), cs("MSFT"))));
  EXPECT_TRUE(P(lt(cs("a"), cs("b"))));
  EXPECT_TRUE(P(lt(cs("ab"), cs("abc"))));
  EXPECT_TRUE(P(lt(cs(""), cs("a"))));
  EXPECT_TRUE(P(lt(cs("Z"), cs("a"))));
  EXPECT_TRUE(P(le(cs("abc"), cs("abc"))));
  EXPECT_FALSE(P(lt(cs("abc"), cs("abc"))));
  EXPECT_TRUE(P(gt(cs("b"), cs("abc"))));
  EXPECT_TRUE(P(ge(cs("b"), cs("b"))));
  // Bytes >= 0x80 sort after ASCII whatever the signedness of char.
  EXPECT_TRUE(P(lt(cs("\x7f"), cs("\x80"))));
  EXPECT_TRUE(P(gt(cs("\xff"), cs("a"))));
  EXPECT_TRUE(P(lt(cs("z"), cs("\xc3\xa9"))));  // 'é' in UTF-8
  EXPECT_TRUE(P(no(lt(cs("\xc3\xa9"), cs("z")))));
  EXPECT_TRUE(P(lt(cs(std::string("a\0b", 3)), cs("a\x01"))));
}

// ---- Functions --------------------------------------------------------------------------------

TEST(Expr, MinMax) {
  EXPECT_EQ(I(call(Func::Min, Type::Int, {ci(3), ci(-2)})), -2);
  EXPECT_EQ(I(call(Func::Max, Type::Int, {ci(3), ci(-2)})), 3);
  EXPECT_EQ(I(call(Func::Min, Type::Int, {ci(kMin), ci(kMax)})), kMin);
  EXPECT_EQ(F(call(Func::Min, Type::Float, {cf(1.5), cf(2.5)})), 1.5);
  EXPECT_EQ(F(call(Func::Max, Type::Float, {cf(1.5), cf(2.5)})), 2.5);
  // NaN: the first argument wins unless the second is strictly smaller (larger).
  EXPECT_EQ(F(call(Func::Min, Type::Float, {cf(1.5), cf(kNaN)})), 1.5);
  EXPECT_EQ(F(call(Func::Max, Type::Float, {cf(1.5), cf(kNaN)})), 1.5);
  EXPECT_TRUE(std::isnan(F(call(Func::Min, Type::Float, {cf(kNaN), cf(1.5)}))));
  EXPECT_TRUE(std::isnan(F(call(Func::Max, Type::Float, {cf(kNaN), cf(1.5)}))));
  EXPECT_FALSE(std::signbit(F(call(Func::Min, Type::Float, {cf(0.0), cf(-0.0)}))));
  EXPECT_TRUE(std::signbit(F(call(Func::Min, Type::Float, {cf(-0.0), cf(0.0)}))));
  EXPECT_EQ(S(call(Func::Min, Type::String, {cs("b"), cs("abc")})), "abc");
  EXPECT_EQ(S(call(Func::Max, Type::String, {cs("b"), cs("abc")})), "b");
  EXPECT_EQ(S(call(Func::Max, Type::String, {cs("a"), cs("\x80")})), "\x80");
}

TEST(Expr, StringFunctions) {
  auto contains = [](std::string_view s, std::string_view p) {
    return I(call(Func::Contains, Type::Int, {cs(s), cs(p)}));
  };
  EXPECT_EQ(contains("International", "nation"), 1);
  EXPECT_EQ(contains("International", "Nation"), 0);
  EXPECT_EQ(contains("abc", ""), 1);
  EXPECT_EQ(contains("", ""), 1);
  EXPECT_EQ(contains("", "a"), 0);
  EXPECT_EQ(contains("abc", "abc"), 1);
  EXPECT_EQ(contains("ab", "abc"), 0);

  auto length = [](std::string_view s) { return I(call(Func::Length, Type::Int, {cs(s)})); };
  EXPECT_EQ(length(""), 0);
  EXPECT_EQ(length("IBM"), 3);
  EXPECT_EQ(length("\xc3\xa9t\xc3\xa9"), 5);  // bytes, not characters

  auto lower = [](std::string_view s) { return S(call(Func::Lower, Type::String, {cs(s)})); };
  auto upper = [](std::string_view s) { return S(call(Func::Upper, Type::String, {cs(s)})); };
  EXPECT_EQ(lower("IBM Corp. 42"), "ibm corp. 42");
  EXPECT_EQ(upper("ibm Corp. 42"), "IBM CORP. 42");
  EXPECT_EQ(lower("\xc3\x89T\xc3\x89"), "\xc3\x89t\xc3\x89");  // ASCII only: 'É' unchanged
  EXPECT_EQ(upper("@[`{"), "@[`{");
  EXPECT_EQ(lower(""), "");
  // The result is interned, so it compares equal to a constant by id.
  EXPECT_TRUE(P(eq(call(Func::Lower, Type::String, {cs("MiXeD")}), cs("mixed"))));
  EXPECT_EQ(fn_lower(intern("already")), intern("already"));
  EXPECT_EQ(fn_upper(intern("x")), intern("X"));
}

TEST(Expr, Similarity) {
  auto sim = [](std::string_view a, std::string_view b) {
    return F(call(Func::Similarity, Type::Float, {cs(a), cs(b)}));
  };
  EXPECT_EQ(sim("abcd", "bcde"), 0.5);  // {abc,bcd} vs {bcd,cde}
  EXPECT_EQ(sim("ab", "ab"), 1.0);      // short strings are their own gram
  EXPECT_EQ(sim("ab", "ac"), 0.0);
  EXPECT_EQ(sim("ab", "abc"), 0.0);  // gram "ab" vs {abc}
  EXPECT_EQ(sim("", "abc"), 0.0);
  EXPECT_EQ(sim("abc", ""), 0.0);
  EXPECT_EQ(sim("", ""), 0.0);
  EXPECT_EQ(sim("abc", "xabcx"), 1.0);             // {abc} ⊂ {xab,abc,bcx}: overlap / min = 1/1
  EXPECT_EQ(sim("aaaa", "aaa"), 1.0);              // sets: {aaa} and {aaa}
  EXPECT_EQ(sim("abcabc", "abcxyz"), 1.0 / 3);     // {abc,bca,cab} vs {abc,bcx,cxy,xyz}
  EXPECT_EQ(sim("IBM Corp", "IBM Inc"), 2.0 / 5);  // {IBM,BM ,M C,...} share "IBM","BM "
  EXPECT_EQ(sim("\x80\x81\x82", "\x80\x81\x82"), 1.0);
  EXPECT_EQ(fn_similarity(intern("abcd"), intern("bcde")), 0.5);
}

// ---- References, constants, structure ---------------------------------------------------------

TEST(Expr, RefsIntoBothRowsThroughTheMapper) {
  Rows rows;
  rows.r[0][3] = string_slot(intern("IBM"));
  rows.r[0][4] = float_slot(10.0);
  rows.r[1][3] = string_slot(intern("IBM"));
  rows.r[1][4] = float_slot(10.6);
  rows.r[0][32 + 4] = float_slot(10.4);  // Last(4)
  TExpr name1 = ref(Type::String, 3, Side::First), name2 = ref(Type::String, 3, Side::Second);
  TExpr price1 = ref(Type::Float, 4, Side::First), price2 = ref(Type::Float, 4, Side::Second);
  TExpr last = ref(Type::Float, 4, Side::Last);
  EXPECT_TRUE(pred_all(all({eq(name1, name2), gt(price2, mul(cf(1.05), price1))}), rows).value);
  EXPECT_FALSE(pred_all(all({eq(name1, name2), gt(price2, mul(cf(1.1), price1))}), rows).value);
  EXPECT_TRUE(pred_all(gt(price2, last), rows).value);
  EXPECT_TRUE(pred_all(lt(last, price2), rows).value);
  EXPECT_EQ(value_all(sub(price2, last), rows).value.f, 10.6 - 10.4);

  // A custom layout: First(i) at row 1 slot 10+i.
  RefMapper shifted = [](Side s, uint32_t i) {
    return s == Side::First ? SlotRef{1, 10 + i} : SlotRef{0, i};
  };
  rows.r[1][10] = int_slot(42);
  Program p = Program::value(add(ref(Type::Int, 0), ci(1)), shifted);
  EvalStats st;
  EXPECT_EQ(p.eval_value(rows.input(), st).i, 43);
  EXPECT_EQ(p.result_type(), Type::Int);

  // single_row_ref: everything is row 0, slot = index.
  EXPECT_EQ(single_row_ref(Side::First, 5).row, 0);
  EXPECT_EQ(single_row_ref(Side::First, 5).offset, 5u);
  EXPECT_EQ(single_row_ref(Side::Second, 2).row, 0);
}

TEST(Expr, AlwaysTrue) {
  EvalStats st;
  Program t = Program::predicate(tru(), single_row_ref);
  EXPECT_TRUE(t.always_true());
  EXPECT_TRUE(t.eval_predicate(EvalInput{}, st));
  EXPECT_TRUE(Program::predicate(all({tru(), tru()}), single_row_ref).always_true());
  Program f = Program::predicate(eq(ci(1), ci(2)), single_row_ref);
  EXPECT_FALSE(f.always_true());
  EXPECT_FALSE(f.eval_predicate(EvalInput{}, st));
  EXPECT_FALSE(Program::predicate(no(tru()), single_row_ref).always_true());
  EXPECT_FALSE(Program::predicate(no(tru()), single_row_ref).eval_predicate(EvalInput{}, st));
  // TRUE OR (something that may divide by zero) is not always true.
  Slot row[2] = {int_slot(1), int_slot(0)};
  EvalInput in;
  in.rows[0] = row;
  Program g = Program::predicate(any({tru(), eq(div(ref(Type::Int, 0), ref(Type::Int, 1)), ci(0))}),
                                 single_row_ref);
  EXPECT_FALSE(g.always_true());
  EXPECT_FALSE(g.eval_predicate(in, st));
}

TEST(Expr, DefaultConstructedProgramIsFalse) {
  Program p;
  EvalStats st;
  EXPECT_FALSE(p.eval_predicate(EvalInput{}, st));
  EXPECT_EQ(p.eval_value(EvalInput{}, st).i, 0);
}

TEST(Expr, ResultTypes) {
  EXPECT_EQ(Program::value(tof(ref(Type::Int, 0)), single_row_ref).result_type(), Type::Float);
  EXPECT_EQ(Program::value(cs("x"), single_row_ref).result_type(), Type::String);
  EXPECT_EQ(Program::value(ci(1), single_row_ref).result_type(), Type::Int);
}

TEST(Expr, DeepExpressionsUseFewRegisters) {
  // Right-deep and left-deep chains of 300 additions both evaluate (and need few registers).
  TExpr left = ref(Type::Int, 0), right = ref(Type::Int, 0);
  for (int i = 0; i < 300; ++i) {
    left = add(left, ref(Type::Int, 0));
    right = add(ref(Type::Int, 0), right);
  }
  Slot row[1] = {int_slot(2)};
  EvalInput in;
  in.rows[0] = row;
  EvalStats st;
  EXPECT_EQ(Program::value(left, single_row_ref).eval_value(in, st).i, 602);
  EXPECT_EQ(Program::value(right, single_row_ref).eval_value(in, st).i, 602);
  // A balanced tree of 1024 leaves: ~11 registers with Sethi–Ullman ordering.
  std::vector<TExpr> level(1024, ref(Type::Int, 0));
  while (level.size() > 1) {
    std::vector<TExpr> up;
    for (size_t i = 0; i < level.size(); i += 2) up.push_back(sub(level[i], level[i + 1]));
    level = std::move(up);
  }
  Program p = Program::value(level[0], single_row_ref);
  EXPECT_EQ(p.eval_value(in, st).i, 0);
  EXPECT_NE(p.disassemble().find("registers: 11"), std::string::npos) << p.disassemble();
}

TEST(Expr, Disassemble) {
  TExpr e =
      all({eq(ref(Type::String, 0, Side::First), ref(Type::String, 0, Side::Second)),
           gt(ref(Type::Float, 1, Side::Second), mul(cf(1.05), ref(Type::Float, 1, Side::First)))});
  std::string text = Program::predicate(e, two_rows).disassemble();
  EXPECT_NE(text.find("jumping code"), std::string::npos) << text;
  EXPECT_NE(text.find("br.ne.i row0[0], row1[0]"), std::string::npos) << text;
  EXPECT_NE(text.find("mul.f r0, 1.05"), std::string::npos) << text;
  EXPECT_NE(text.find("ret.gt.f row1[1], r0"), std::string::npos) << text;
  EXPECT_NE(text.find("ret true"), std::string::npos) << text;
  std::string v =
      Program::value(eq(div(ref(Type::Int, 0), ref(Type::Int, 1)), ci(0)), single_row_ref)
          .disassemble();
  EXPECT_NE(v.find("may divide by zero"), std::string::npos) << v;
  EXPECT_NE(v.find("div.i"), std::string::npos) << v;
  EXPECT_NE(Program::value(cs("it's"), single_row_ref).disassemble().find("'it''s'"),
            std::string::npos);
}

// ---- Randomized: the interpreter against a tree-walking reference ------------------------------

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  int below(int n) { return int(next() % uint64_t(n)); }
};

struct Ref {
  const Rows& rows;
  uint64_t traps = 0;

  Slot value(const TExpr& e) {
    auto k = [&](int i) { return value(e.kids[i]); };
    switch (e.op) {
      case TOp::Const:
        return e.value;
      case TOp::Ref:
        return rows.r[e.side == Side::Second][e.index];
      case TOp::Dur:
        return int_slot(rows.dur);
      case TOp::ToFloat:
        return float_slot(double(k(0).i));
      case TOp::Neg:
        return e.type == Type::Int ? int_slot(int64_t(-uint64_t(k(0).i))) : float_slot(-k(0).f);
      case TOp::Pow:
        return float_slot(std::pow(k(0).f, k(1).f));
      case TOp::Call: {
        Slot a = k(0);
        if (e.func == Func::Abs)
          return e.type == Type::Int ? int_slot(a.i < 0 ? int64_t(-uint64_t(a.i)) : a.i)
                                     : float_slot(std::fabs(a.f));
        Slot b = k(1);
        bool second;
        if (e.type == Type::Int)
          second = e.func == Func::Min ? b.i < a.i : b.i > a.i;
        else
          second = e.func == Func::Min ? b.f < a.f : b.f > a.f;
        return second ? b : a;
      }
      default:
        break;
    }
    Slot a = k(0), b = k(1);
    if (e.type == Type::Float) {
      switch (e.op) {
        case TOp::Add:
          return float_slot(a.f + b.f);
        case TOp::Sub:
          return float_slot(a.f - b.f);
        case TOp::Mul:
          return float_slot(a.f * b.f);
        case TOp::Div:
          return float_slot(a.f / b.f);
        default:
          return float_slot(std::fmod(a.f, b.f));
      }
    }
    uint64_t x = uint64_t(a.i), y = uint64_t(b.i);
    switch (e.op) {
      case TOp::Add:
        return int_slot(int64_t(x + y));
      case TOp::Sub:
        return int_slot(int64_t(x - y));
      case TOp::Mul:
        return int_slot(int64_t(x * y));
      default:
        break;
    }
    if (b.i == 0) {
      ++traps;
      return int_slot(0);
    }
    if (e.op == TOp::Div) return int_slot(b.i == -1 ? int64_t(-x) : a.i / b.i);
    return int_slot(b.i == -1 ? 0 : a.i % b.i);
  }

  bool pred(const TExpr& e) {
    switch (e.op) {
      case TOp::And: {
        bool r = true;
        for (const auto& k : e.kids) r = pred(k) && r;  // no short-circuit
        return r;
      }
      case TOp::Or: {
        bool r = false;
        for (const auto& k : e.kids) r = pred(k) || r;
        return r;
      }
      case TOp::Not:
        return !pred(e.kids[0]);
      default:
        break;
    }
    Slot a = value(e.kids[0]), b = value(e.kids[1]);
    if (e.kids[0].type == Type::Float) {
      switch (e.op) {
        case TOp::Eq:
          return a.f == b.f;
        case TOp::Ne:
          return a.f != b.f;
        case TOp::Lt:
          return a.f < b.f;
        case TOp::Le:
          return a.f <= b.f;
        case TOp::Gt:
          return a.f > b.f;
        default:
          return a.f >= b.f;
      }
    }
    switch (e.op) {
      case TOp::Eq:
        return a.i == b.i;
      case TOp::Ne:
        return a.i != b.i;
      case TOp::Lt:
        return a.i < b.i;
      case TOp::Le:
        return a.i <= b.i;
      case TOp::Gt:
        return a.i > b.i;
      default:
        return a.i >= b.i;
    }
  }
};

const int64_t kInts[] = {0, 1, -1, 2, -2, 3, 7, -7, 100, kMin, kMax};
const double kFloats[] = {0.0, -0.0, 1.0, -1.5, 2.5, 1e300, -1e-300, 0.1};

TExpr random_value(Rng& rng, Type t, int depth) {
  if (depth == 0 || rng.below(4) == 0) {
    int leaf = rng.below(5);
    if (leaf == 0) return t == Type::Int ? ci(kInts[rng.below(11)]) : cf(kFloats[rng.below(8)]);
    if (leaf == 1 && t == Type::Int) return dur();
    if (leaf == 1) return tof(random_value(rng, Type::Int, depth - 1 < 0 ? 0 : depth - 1));
    return ref(t, uint32_t(t == Type::Int ? rng.below(4) : 4 + rng.below(4)),
               rng.below(2) ? Side::First : Side::Second);
  }
  switch (rng.below(8)) {
    case 0:
      return neg(random_value(rng, t, depth - 1));
    case 1:
      return call(Func::Abs, t, {random_value(rng, t, depth - 1)});
    case 2:
      return call(rng.below(2) ? Func::Min : Func::Max, t,
                  {random_value(rng, t, depth - 1), random_value(rng, t, depth - 1)});
    case 3:
      if (t == Type::Float)
        return pow(random_value(rng, t, depth - 1), random_value(rng, t, depth - 1));
      [[fallthrough]];
    default: {
      static const TOp ops[] = {TOp::Add, TOp::Sub, TOp::Mul, TOp::Div, TOp::Mod};
      return bin(ops[rng.below(5)], random_value(rng, t, depth - 1),
                 random_value(rng, t, depth - 1));
    }
  }
}

TExpr random_pred(Rng& rng, int depth) {
  int k = depth == 0 ? 3 : rng.below(6);
  if (k >= 3) {
    static const TOp cmps[] = {TOp::Eq, TOp::Ne, TOp::Lt, TOp::Le, TOp::Gt, TOp::Ge};
    Type t = rng.below(2) ? Type::Int : Type::Float;
    return cmp(cmps[rng.below(6)], random_value(rng, t, 2), random_value(rng, t, 2));
  }
  if (k == 2) return no(random_pred(rng, depth - 1));
  std::vector<TExpr> kids;
  for (int i = 0, n = 2 + rng.below(2); i < n; ++i) kids.push_back(random_pred(rng, depth - 1));
  return k == 0 ? all(std::move(kids)) : any(std::move(kids));
}

void random_rows(Rng& rng, Rows& rows) {
  for (int r = 0; r < 2; ++r) {
    for (int i = 0; i < 4; ++i) rows.r[r][i] = int_slot(kInts[rng.below(11)]);
    for (int i = 4; i < 8; ++i) rows.r[r][i] = float_slot(kFloats[rng.below(8)]);
  }
  rows.dur = kInts[rng.below(11)];
}

TEST(Expr, RandomValuesMatchReference) {
  Rng rng{0x9e3779b97f4a7c15ull};
  for (int n = 0; n < 400; ++n) {
    Type t = rng.below(2) ? Type::Int : Type::Float;
    TExpr e = random_value(rng, t, 4);
    Program p = Program::value(e, two_rows);
    for (int trial = 0; trial < 8; ++trial) {
      Rows rows;
      random_rows(rng, rows);
      Ref ref_eval{rows};
      Slot want = ref_eval.value(e);
      if (ref_eval.traps) want = int_slot(0);
      EvalStats st;
      Slot got = p.eval_value(rows.input(), st);
      ASSERT_EQ(bits(got), bits(want)) << p.disassemble();
      ASSERT_EQ(st.div_by_zero, ref_eval.traps);
    }
  }
}

TEST(Expr, RandomPredicatesMatchReference) {
  Rng rng{0x243f6a8885a308d3ull};
  int traps_seen = 0, true_seen = 0;
  for (int n = 0; n < 400; ++n) {
    TExpr e = random_pred(rng, 3);
    Program p = Program::predicate(e, two_rows);
    Program v = Program::value(e, two_rows);
    for (int trial = 0; trial < 8; ++trial) {
      Rows rows;
      random_rows(rng, rows);
      Ref ref_eval{rows};
      bool want = ref_eval.pred(e) && ref_eval.traps == 0;
      EvalStats st;
      ASSERT_EQ(p.eval_predicate(rows.input(), st), want) << p.disassemble();
      ASSERT_EQ(st.div_by_zero, ref_eval.traps) << p.disassemble();
      EvalStats st2;
      ASSERT_EQ(v.eval_value(rows.input(), st2).i, want ? 1 : 0) << v.disassemble();
      traps_seen += ref_eval.traps != 0;
      true_seen += want;
    }
  }
  EXPECT_GT(traps_seen, 50);  // the generator does exercise both outcomes
  EXPECT_GT(true_seen, 300);
}

}  // namespace
}  // namespace cayuga

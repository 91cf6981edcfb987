// The JIT backend (compiler/jit/jit.h) against the interpreter (compiler/expr.h).
//
// The main test is differential: random, correctly typed expressions over random rows full of
// edge values (NaN, ±inf, -0.0, denormals, INT64_MIN/MAX, -1 and 0 divisors, empty, long and
// non-ASCII strings) are evaluated by `Program` and by the JIT; results must be bit-identical
// and the division-by-zero counters equal. FLOAT results compare by bit pattern except that any
// two NaNs are equal: NaN payload/sign propagation through `+ - * /` with two NaN operands
// depends on operand order, which neither GCC nor LLVM promise to keep (CEL has no operation
// that observes a NaN's payload or sign). Mismatching NaN payloads are counted and printed.
//
// CAYUGA_JIT_FUZZ_ITERS=<n> sets the number of random expressions (default: a fixed-seed run
// sized for ctest); CAYUGA_JIT_FUZZ_SEED=<n> changes the seed; CAYUGA_JIT_OPT=none|light|o2 the
// optimization level of the JIT under test.
#include "compiler/jit/jit.h"

#include <gtest/gtest.h>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <thread>

namespace cayuga {
namespace {

using jit::CompiledExpr;
using jit::Jit;

// ---- Expression builders -----------------------------------------------------------------------

TExpr K(int64_t v) {
  TExpr e;
  e.op = TOp::Const;
  e.type = Type::Int;
  e.value = int_slot(v);
  return e;
}
TExpr KF(double v) {
  TExpr e;
  e.op = TOp::Const;
  e.type = Type::Float;
  e.value = float_slot(v);
  return e;
}
TExpr KS(std::string_view s) {
  TExpr e;
  e.op = TOp::Const;
  e.type = Type::String;
  e.value = string_slot(intern(s));
  return e;
}
TExpr Ref(Side side, uint32_t index, Type t) {
  TExpr e;
  e.op = TOp::Ref;
  e.type = t;
  e.side = side;
  e.index = index;
  return e;
}
TExpr Node(TOp op, Type t, std::vector<TExpr> kids) {
  TExpr e;
  e.op = op;
  e.type = t;
  e.kids = std::move(kids);
  return e;
}
TExpr Bool(TOp op, std::vector<TExpr> kids) {
  return Node(op, Type::Int, std::move(kids));
}
TExpr Call(Func f, Type t, std::vector<TExpr> kids) {
  TExpr e = Node(TOp::Call, t, std::move(kids));
  e.func = f;
  return e;
}

// ---- Row layout used by the tests --------------------------------------------------------------
// Both schemas have kAttrs attributes of types kTypes. Row 0 holds First then Last (as NEXT/FOLD
// would lay out the instance), row 1 holds Second.
constexpr uint32_t kAttrs = 6;
constexpr Type kTypes[kAttrs] = {Type::Int,   Type::Float, Type::String,
                                 Type::Int,   Type::Float, Type::String};

SlotRef two_rows(Side side, uint32_t index) {
  switch (side) {
    case Side::First:
      return SlotRef{0, index};
    case Side::Last:
      return SlotRef{0, kAttrs + index};
    case Side::Second:
      return SlotRef{1, index};
  }
  return SlotRef{0, index};
}

// ---- The shared JIT ----------------------------------------------------------------------------

// CAYUGA_JIT_OPT=none|light|o2 picks the optimization level (default: Jit's default).
Jit::Options options_from_env() {
  Jit::Options o;
  if (const char* v = std::getenv("CAYUGA_JIT_OPT")) {
    std::string s = v;
    if (s == "none") o.opt = Jit::OptLevel::None;
    if (s == "light") o.opt = Jit::OptLevel::Light;
    if (s == "o2") o.opt = Jit::OptLevel::O2;
  }
  return o;
}

Jit* the_jit() {
  static std::string error;
  static std::unique_ptr<Jit> jit = Jit::create(&error, options_from_env());
  if (!jit) std::fprintf(stderr, "no JIT on this host: %s\n", error.c_str());
  return jit.get();
}

#define REQUIRE_JIT()                                               \
  Jit* jit = the_jit();                                             \
  if (!jit) GTEST_SKIP() << "Jit::create failed on this host";

// ---- Random generation -------------------------------------------------------------------------

struct Gen {
  std::mt19937_64 rng;
  std::vector<uint64_t> strings;

  explicit Gen(uint64_t seed) : rng(seed) {
    std::vector<std::string> pool = {"",      "a",     "A",      "ab",    "abc",   "ABC",
                                     "abcd",  "bcd",   "IBM",    "ibm",   "MSFT",  "Ms Ft",
                                     "aaaa",  "zzz",   "abcabc", "b",     "abd",   "ab\x7f"};
    pool.push_back(std::string("\xc3\xa9t\xc3\xa9"));  // "été" in UTF-8
    pool.push_back(std::string("\xff\xfe\x80"));
    pool.push_back(std::string("\x80"));
    pool.push_back(std::string("A\xe2\x82\xac" "BCDEF"));
    pool.push_back(std::string(1, '\0') + "nul");
    pool.push_back(std::string(300, 'x') + "abc" + std::string(200, 'y'));
    pool.push_back(std::string(1000, 'q'));
    for (const std::string& s : pool) strings.push_back(intern(s));
  }

  uint64_t u(uint64_t n) { return rng() % n; }
  bool chance(int percent) { return int(u(100)) < percent; }

  int64_t int_value() {
    static constexpr int64_t kSpecial[] = {0,  1,  -1, 2,  -2, 3, 7, -7, 10, 100,
                                           std::numeric_limits<int64_t>::min(),
                                           std::numeric_limits<int64_t>::max(),
                                           std::numeric_limits<int64_t>::min() + 1,
                                           int64_t(1) << 53, (int64_t(1) << 53) + 1};
    if (chance(70)) return kSpecial[u(std::size(kSpecial))];
    if (chance(50)) return int64_t(u(2001)) - 1000;
    return int64_t(rng());
  }
  double float_value() {
    static const double kSpecial[] = {0.0,
                                      -0.0,
                                      1.0,
                                      -1.0,
                                      0.5,
                                      1.05,
                                      2.5,
                                      -3.75,
                                      std::numeric_limits<double>::quiet_NaN(),
                                      -std::numeric_limits<double>::quiet_NaN(),
                                      std::numeric_limits<double>::infinity(),
                                      -std::numeric_limits<double>::infinity(),
                                      std::numeric_limits<double>::max(),
                                      std::numeric_limits<double>::lowest(),
                                      std::numeric_limits<double>::denorm_min(),
                                      std::numeric_limits<double>::min(),
                                      9007199254740993.0,
                                      1e-300,
                                      3.0};
    if (chance(70)) return kSpecial[u(std::size(kSpecial))];
    if (chance(50)) return double(int64_t(u(2001)) - 1000) / 8.0;
    return std::bit_cast<double>(rng());  // any bit pattern, NaN payloads included
  }
  Slot slot(Type t) {
    switch (t) {
      case Type::Int:
        return int_slot(int_value());
      case Type::Float:
        return float_slot(float_value());
      case Type::String:
        return string_slot(strings[u(strings.size())]);
    }
    return int_slot(0);
  }

  TExpr leaf(Type t) {
    uint64_t r = u(100);
    if (r < 40) {
      TExpr e;
      e.op = TOp::Const;
      e.type = t;
      e.value = slot(t);
      return e;
    }
    if (t == Type::Int && r < 48) return Node(TOp::Dur, Type::Int, {});
    // A reference to an attribute of type t on a random side.
    std::vector<uint32_t> idx;
    for (uint32_t i = 0; i < kAttrs; ++i)
      if (kTypes[i] == t) idx.push_back(i);
    static constexpr Side kSides[] = {Side::First, Side::Last, Side::Second};
    return Ref(kSides[u(3)], idx[u(idx.size())], t);
  }

  // A divisor that is often zero or -1 (constant or not).
  TExpr divisor(int depth) {
    uint64_t r = u(100);
    if (r < 15) return K(0);
    if (r < 25) return K(-1);
    if (r < 35) return K(int64_t(u(9)) - 4);
    return value(Type::Int, depth);
  }

  TExpr value(Type t, int depth) {
    if (depth <= 0 || chance(25)) return leaf(t);
    --depth;
    switch (t) {
      case Type::Int:
        switch (u(12)) {
          case 0:
            return Node(TOp::Neg, t, {value(t, depth)});
          case 1:
            return Node(TOp::Add, t, {value(t, depth), value(t, depth)});
          case 2:
            return Node(TOp::Sub, t, {value(t, depth), value(t, depth)});
          case 3:
            return Node(TOp::Mul, t, {value(t, depth), value(t, depth)});
          case 4:
            return Node(TOp::Div, t, {value(t, depth), divisor(depth)});
          case 5:
            return Node(TOp::Mod, t, {value(t, depth), divisor(depth)});
          case 6:
            return Call(Func::Abs, t, {value(t, depth)});
          case 7:
            return Call(u(2) ? Func::Min : Func::Max, t, {value(t, depth), value(t, depth)});
          case 8:
            return Call(Func::Length, t, {value(Type::String, depth)});
          case 9:
            return Call(Func::Contains, t, {value(Type::String, depth), value(Type::String, depth)});
          default:
            return leaf(t);
        }
      case Type::Float:
        switch (u(12)) {
          case 0:
            return Node(TOp::ToFloat, t, {value(Type::Int, depth)});
          case 1:
            return Node(TOp::Neg, t, {value(t, depth)});
          case 2:
            return Node(TOp::Add, t, {value(t, depth), value(t, depth)});
          case 3:
            return Node(TOp::Sub, t, {value(t, depth), value(t, depth)});
          case 4:
            return Node(TOp::Mul, t, {value(t, depth), value(t, depth)});
          case 5:
            return Node(TOp::Div, t, {value(t, depth), value(t, depth)});
          case 6:
            return Node(TOp::Mod, t, {value(t, depth), value(t, depth)});
          case 7:
            return Node(TOp::Pow, t, {value(t, depth), value(t, depth)});
          case 8:
            return Call(Func::Abs, t, {value(t, depth)});
          case 9:
            return Call(u(2) ? Func::Min : Func::Max, t, {value(t, depth), value(t, depth)});
          case 10:
            return Call(Func::Similarity, t,
                        {value(Type::String, depth), value(Type::String, depth)});
          default:
            return Node(TOp::ToFloat, t, {value(Type::Int, depth)});
        }
      case Type::String:
        switch (u(4)) {
          case 0:
            return Call(Func::Lower, t, {value(t, depth)});
          case 1:
            return Call(Func::Upper, t, {value(t, depth)});
          case 2:
            return Call(u(2) ? Func::Min : Func::Max, t, {value(t, depth), value(t, depth)});
          default:
            return leaf(t);
        }
    }
    return leaf(t);
  }

  Type any_type() {
    static constexpr Type kAll[] = {Type::Int, Type::Float, Type::String};
    return kAll[u(3)];
  }

  TExpr boolean(int depth) {
    uint64_t r = u(100);
    if (depth <= 0 || r < 35) {
      if (chance(3)) return Bool(TOp::True, {});
      if (chance(4)) return value(any_type(), depth);  // a value used as a condition
      Type t = any_type();
      static constexpr TOp kCmp[] = {TOp::Eq, TOp::Ne, TOp::Lt, TOp::Le, TOp::Gt, TOp::Ge};
      int d = depth > 0 ? depth - 1 : 0;
      return Bool(kCmp[u(6)], {value(t, d), value(t, d)});
    }
    --depth;
    if (r < 50) return Bool(TOp::Not, {boolean(depth)});
    std::vector<TExpr> kids;
    size_t n = 2 + u(3);
    for (size_t i = 0; i < n; ++i) kids.push_back(boolean(depth));
    return Bool(r < 75 ? TOp::And : TOp::Or, std::move(kids));
  }
};

// ---- Comparison --------------------------------------------------------------------------------

struct Tally {
  uint64_t evaluations = 0;
  uint64_t nan_payload_differences = 0;
  uint64_t traps = 0;
  uint64_t true_predicates = 0;
};

bool same_result(Type t, Slot a, Slot b, Tally& tally) {
  if (a.s == b.s) return true;
  if (t == Type::Float && std::isnan(a.f) && std::isnan(b.f)) {
    if (tally.nan_payload_differences++ < 3 && std::getenv("CAYUGA_JIT_SHOW_NAN"))
      std::printf("NaN payload: interpreter 0x%016llx, JIT 0x%016llx\n",
                  (unsigned long long)a.s, (unsigned long long)b.s);
    return true;
  }
  return false;
}

std::string show(Type t, Slot s) {
  char buf[96];
  if (t == Type::Float)
    std::snprintf(buf, sizeof buf, "%.17g (0x%016llx)", s.f, (unsigned long long)s.s);
  else if (t == Type::String)
    return "'" + std::string(interned(s.s)) + "' #" + std::to_string(s.s);
  else
    std::snprintf(buf, sizeof buf, "%lld", (long long)s.i);
  return buf;
}

std::string show_rows(const std::vector<Slot>& r0, const std::vector<Slot>& r1, int64_t dur) {
  std::string out = "dur=" + std::to_string(dur) + " row0=[";
  for (size_t i = 0; i < r0.size(); ++i) out += (i ? ", " : "") + show(kTypes[i % kAttrs], r0[i]);
  out += "] row1=[";
  for (size_t i = 0; i < r1.size(); ++i) out += (i ? ", " : "") + show(kTypes[i], r1[i]);
  return out + "]";
}

uint64_t env_u64(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

// The optimized IR of e as a predicate (for failure reports): compiled again by a private JIT.
std::string ir_of_predicate(const TExpr& e) {
  Jit::Options o = options_from_env();
  o.keep_ir = true;
  std::string error;
  std::unique_ptr<Jit> j = Jit::create(&error, o);
  if (!j) return error;
  CompiledExpr c = j->compile_predicate(e, two_rows, &error);
  return c ? j->last_ir() : error;
}

// Whether a boolean operator of e has a non-boolean operand (a value used as a condition).
// Such trees are only checked as predicates: as a *value*, the interpreter's simplifier turns
// NOT NOT x and AND(TRUE, x) into the bare x, so a boolean-typed value program can return a
// string id or a non-0/1 number (reported to the interpreter's owner); the analyzer never
// produces these trees (CEL's AND/OR/NOT take booleans).
bool has_value_condition(const TExpr& e) {
  bool boolean_op = e.op == TOp::And || e.op == TOp::Or || e.op == TOp::Not;
  for (const TExpr& k : e.kids)
    if ((boolean_op && !k.is_bool()) || has_value_condition(k)) return true;
  return false;
}

// Checks one expression on `rows_per_expr` random inputs, as a predicate and/or as a value.
// Returns false (after reporting) on the first mismatch.
bool check_expression(Jit& jit, Gen& g, const TExpr& e, int rows_per_expr, Tally& tally) {
  bool as_predicate = e.is_bool() || g.chance(20);
  bool as_value = !e.is_bool() || (g.chance(30) && !has_value_condition(e));
  Program ip = as_predicate ? Program::predicate(e, two_rows) : Program{};
  Program iv = as_value ? Program::value(e, two_rows) : Program{};
  std::string error;
  CompiledExpr jp, jv;
  if (as_predicate) {
    jp = jit.compile_predicate(e, two_rows, &error);
    EXPECT_TRUE(jp.valid()) << error << "\n" << dump(e);
    if (!jp.valid()) return false;
  }
  if (as_value) {
    jv = jit.compile_value(e, two_rows, &error);
    EXPECT_TRUE(jv.valid()) << error << "\n" << dump(e);
    if (!jv.valid()) return false;
    EXPECT_EQ(jv.result_type(), iv.result_type());
  }
  std::vector<Slot> r0(2 * kAttrs), r1(kAttrs);
  for (int i = 0; i < rows_per_expr; ++i) {
    for (uint32_t a = 0; a < 2 * kAttrs; ++a) r0[a] = g.slot(kTypes[a % kAttrs]);
    for (uint32_t a = 0; a < kAttrs; ++a) r1[a] = g.slot(kTypes[a]);
    // Sometimes make the rows agree, so equalities and string orders see equal operands.
    if (g.chance(30))
      for (uint32_t a = 0; a < kAttrs; ++a) r1[a] = r0[a];
    EvalInput in;
    in.rows[0] = r0.data();
    in.rows[1] = r1.data();
    in.dur = g.chance(50) ? g.int_value() : int64_t(g.u(1000));
    if (as_predicate) {
      EvalStats si, sj;
      si.div_by_zero = sj.div_by_zero = 5;  // the counters are incremented, never reset
      bool a = ip.eval_predicate(in, si);
      bool b = jp.eval_predicate(in, sj);
      ++tally.evaluations;
      tally.traps += si.div_by_zero - 5;
      tally.true_predicates += a;
      if (a != b || si.div_by_zero != sj.div_by_zero) {
        ADD_FAILURE() << "predicate mismatch: interpreter " << a << " (div_by_zero "
                      << si.div_by_zero - 5 << "), JIT " << b << " (div_by_zero "
                      << sj.div_by_zero - 5 << ")\n  expr: " << dump(e) << "\n  "
                      << show_rows(r0, r1, in.dur) << "\n" << ip.disassemble() << "\n"
                      << ir_of_predicate(e);
        return false;
      }
    }
    if (as_value) {
      EvalStats si, sj;
      Slot a = iv.eval_value(in, si);
      Slot b = jv.eval_value(in, sj);
      ++tally.evaluations;
      uint64_t nan_before = tally.nan_payload_differences;
      bool same = same_result(iv.result_type(), a, b, tally);
      if (tally.nan_payload_differences != nan_before && nan_before < 3 &&
          std::getenv("CAYUGA_JIT_SHOW_NAN"))
        std::printf("  expr: %s\n  %s\n", dump(e).c_str(), show_rows(r0, r1, in.dur).c_str());
      if (!same || si.div_by_zero != sj.div_by_zero) {
        ADD_FAILURE() << "value mismatch: interpreter " << show(iv.result_type(), a)
                      << " (div_by_zero " << si.div_by_zero << "), JIT "
                      << show(iv.result_type(), b) << " (div_by_zero " << sj.div_by_zero
                      << ")\n  expr: " << dump(e) << "\n  " << show_rows(r0, r1, in.dur) << "\n"
                      << iv.disassemble();
        return false;
      }
    }
  }
  return true;
}

// ---- Tests -------------------------------------------------------------------------------------

TEST(Jit, DifferentialFuzz) {
  REQUIRE_JIT();
  uint64_t iters = env_u64("CAYUGA_JIT_FUZZ_ITERS", 2000);
  uint64_t seed = env_u64("CAYUGA_JIT_FUZZ_SEED", 20240917);
  Gen g(seed);
  Tally tally;
  Jit::Stats before = jit->stats();
  auto start = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < iters; ++i) {
    int depth = 1 + int(g.u(5));
    TExpr e = g.chance(75) ? g.boolean(depth) : g.value(g.any_type(), depth);
    if (!check_expression(*jit, g, e, 24, tally)) {
      ADD_FAILURE() << "seed " << seed << ", expression #" << i;
      break;
    }
  }
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Jit::Stats after = jit->stats();
  std::printf(
      "fuzz: %llu expressions, %llu evaluations (%llu div-by-zero traps, %llu true predicates, "
      "%llu NaN payload differences), %llu shapes compiled (%.2f ms each), %llu cache hits, "
      "%.1f s\n",
      (unsigned long long)iters, (unsigned long long)tally.evaluations,
      (unsigned long long)tally.traps, (unsigned long long)tally.true_predicates,
      (unsigned long long)tally.nan_payload_differences,
      (unsigned long long)(after.compiles - before.compiles),
      (after.compile_ms_total - before.compile_ms_total) /
          double(std::max<uint64_t>(1, after.compiles - before.compiles)),
      (unsigned long long)(after.cache_hits - before.cache_hits), secs);
  EXPECT_GT(tally.traps, 0u);
  EXPECT_GT(tally.true_predicates, 0u);
  EXPECT_EQ(after.failures, before.failures);
  // Every CompiledExpr of the run is gone: its code was released.
  EXPECT_EQ(after.live_shapes, before.live_shapes);
}

// The edge cases of expr.h, spelled out (the fuzz test covers them at random).
TEST(Jit, DocumentedEdgeCases) {
  REQUIRE_JIT();
  const int64_t kMin = std::numeric_limits<int64_t>::min();
  std::vector<Slot> r0(2 * kAttrs, int_slot(0)), r1(kAttrs, int_slot(0));
  r0[0] = int_slot(kMin);
  r1[0] = int_slot(-1);
  r0[3] = int_slot(0);
  r0[1] = float_slot(std::numeric_limits<double>::quiet_NaN());
  r1[1] = float_slot(-0.0);
  r0[4] = float_slot(0.0);
  EvalInput in;
  in.rows[0] = r0.data();
  in.rows[1] = r1.data();
  TExpr a = Ref(Side::First, 0, Type::Int);    // INT64_MIN
  TExpr m1 = Ref(Side::Second, 0, Type::Int);  // -1
  TExpr z = Ref(Side::First, 3, Type::Int);    // 0
  TExpr nan = Ref(Side::First, 1, Type::Float);
  TExpr nz = Ref(Side::Second, 1, Type::Float);  // -0.0
  TExpr pz = Ref(Side::First, 4, Type::Float);   // 0.0

  auto value = [&](const TExpr& e) {
    CompiledExpr c = jit->compile_value(e, two_rows);
    EXPECT_TRUE(c.valid()) << dump(e);
    EvalStats s;
    Slot v = c.eval_value(in, s);
    return std::pair<Slot, uint64_t>(v, s.div_by_zero);
  };
  auto pred = [&](const TExpr& e) {
    CompiledExpr c = jit->compile_predicate(e, two_rows);
    EXPECT_TRUE(c.valid()) << dump(e);
    EvalStats s;
    bool v = c.eval_predicate(in, s);
    return std::pair<bool, uint64_t>(v, s.div_by_zero);
  };
  EXPECT_EQ(value(Node(TOp::Div, Type::Int, {a, m1})).first.i, kMin);
  EXPECT_EQ(value(Node(TOp::Mod, Type::Int, {a, m1})).first.i, 0);
  EXPECT_EQ(value(Node(TOp::Neg, Type::Int, {a})).first.i, kMin);
  EXPECT_EQ(value(Call(Func::Abs, Type::Int, {a})).first.i, kMin);
  EXPECT_EQ(value(Node(TOp::Add, Type::Int, {a, m1})).first.i, std::numeric_limits<int64_t>::max());
  // 1/0 + 2/0: value 0, two traps.
  auto two = value(Node(TOp::Add, Type::Int, {Node(TOp::Div, Type::Int, {K(1), z}),
                                               Node(TOp::Div, Type::Int, {K(2), K(0)})}));
  EXPECT_EQ(two.first.i, 0);
  EXPECT_EQ(two.second, 2u);
  // TRUE-ish OR with a division by zero in a later operand: false, counted once.
  auto orp = pred(Bool(TOp::Or, {Bool(TOp::Eq, {K(1), K(1)}),
                                 Bool(TOp::Gt, {Node(TOp::Mod, Type::Int, {K(5), z}), K(-1)})}));
  EXPECT_FALSE(orp.first);
  EXPECT_EQ(orp.second, 1u);
  // NOT around the division by zero does not help.
  auto notp = pred(Bool(TOp::Not, {Bool(TOp::Eq, {Node(TOp::Div, Type::Int, {K(5), z}), K(1)})}));
  EXPECT_FALSE(notp.first);
  EXPECT_EQ(notp.second, 1u);
  // NaN: only != is true.
  EXPECT_FALSE(pred(Bool(TOp::Eq, {nan, nan})).first);
  EXPECT_TRUE(pred(Bool(TOp::Ne, {nan, nan})).first);
  EXPECT_FALSE(pred(Bool(TOp::Lt, {nan, pz})).first);
  EXPECT_TRUE(pred(Bool(TOp::Not, {Bool(TOp::Ge, {nan, pz})})).first);
  // MIN(0.0, -0.0) is 0.0; MIN(x, NaN) is x; MIN(NaN, x) is NaN.
  EXPECT_EQ(value(Call(Func::Min, Type::Float, {pz, nz})).first.s, std::bit_cast<uint64_t>(0.0));
  EXPECT_EQ(value(Call(Func::Min, Type::Float, {nz, pz})).first.s, std::bit_cast<uint64_t>(-0.0));
  EXPECT_EQ(value(Call(Func::Max, Type::Float, {pz, nan})).first.s, std::bit_cast<uint64_t>(0.0));
  EXPECT_TRUE(std::isnan(value(Call(Func::Min, Type::Float, {nan, pz})).first.f));
  // -0.0 is not 0.0 bitwise after negation; 1/-0.0 is -inf.
  EXPECT_EQ(value(Node(TOp::Neg, Type::Float, {pz})).first.s, std::bit_cast<uint64_t>(-0.0));
  EXPECT_EQ(value(Node(TOp::Div, Type::Float, {KF(1.0), nz})).first.f,
            -std::numeric_limits<double>::infinity());
  // Strings: bytewise (0xff > 'a'), shorter prefix first.
  EXPECT_TRUE(pred(Bool(TOp::Lt, {KS("abc"), KS("\xff")})).first);
  EXPECT_TRUE(pred(Bool(TOp::Lt, {KS("ab"), KS("abc")})).first);
  EXPECT_FALSE(pred(Bool(TOp::Lt, {KS("abc"), KS("abc")})).first);
  EXPECT_EQ(value(Call(Func::Upper, Type::String, {KS("a\xc3\xa9z")})).first.s,
            intern("A\xc3\xa9Z"));
}

TEST(Jit, ConstantsDoNotChangeTheShape) {
  REQUIRE_JIT();
  // $1.Price > c1 AND $1.Name = c2, for two sets of constants.
  auto make = [](double price, std::string_view name) {
    return Bool(TOp::And, {Bool(TOp::Gt, {Ref(Side::First, 1, Type::Float), KF(price)}),
                           Bool(TOp::Eq, {Ref(Side::First, 2, Type::String), KS(name)})});
  };
  TExpr e1 = make(1.5, "IBM"), e2 = make(2.5, "MSFT");
  Jit::Stats s0 = jit->stats();
  CompiledExpr c1 = jit->compile_predicate(e1, two_rows);
  CompiledExpr c2 = jit->compile_predicate(e2, two_rows);
  ASSERT_TRUE(c1.valid());
  ASSERT_TRUE(c2.valid());
  Jit::Stats s1 = jit->stats();
  EXPECT_EQ(s1.compiles - s0.compiles, 1u);
  EXPECT_EQ(s1.cache_hits - s0.cache_hits, 1u);
  EXPECT_EQ(c1.predicate_fn(), c2.predicate_fn());
  EXPECT_EQ(c1.shape_key(), c2.shape_key());
  EXPECT_NE(c1.consts()[0].f, c2.consts()[0].f);

  std::vector<Slot> r0(2 * kAttrs, int_slot(0)), r1(kAttrs, int_slot(0));
  EvalInput in;
  in.rows[0] = r0.data();
  in.rows[1] = r1.data();
  EvalStats st;
  r0[1] = float_slot(2.0);
  r0[2] = string_slot(intern("IBM"));
  EXPECT_TRUE(c1.eval_predicate(in, st));
  EXPECT_FALSE(c2.eval_predicate(in, st));
  r0[1] = float_slot(3.0);
  r0[2] = string_slot(intern("MSFT"));
  EXPECT_FALSE(c1.eval_predicate(in, st));
  EXPECT_TRUE(c2.eval_predicate(in, st));

  // Folded constant subtrees are constants too: 1.0 + 1.5 has the same shape.
  TExpr e3 = Bool(TOp::And, {Bool(TOp::Gt, {Ref(Side::First, 1, Type::Float),
                                            Node(TOp::Add, Type::Float, {KF(1.0), KF(1.5)})}),
                             Bool(TOp::Eq, {Ref(Side::First, 2, Type::String), KS("x")})});
  CompiledExpr c3 = jit->compile_predicate(e3, two_rows);
  EXPECT_EQ(c3.predicate_fn(), c1.predicate_fn());

  // A different reference is a different shape.
  TExpr e4 = make(1.5, "IBM");
  e4.kids[0].kids[0].side = Side::Second;
  CompiledExpr c4 = jit->compile_predicate(e4, two_rows);
  EXPECT_NE(c4.shape_key(), c1.shape_key());

  // Release: the code goes with the last user of its shape.
  uint64_t live = jit->stats().live_shapes;
  c1.reset();
  c3.reset();
  EXPECT_EQ(jit->stats().live_shapes, live);
  EXPECT_TRUE(c2.eval_predicate(in, st));  // still runs
  c2.reset();
  EXPECT_EQ(jit->stats().live_shapes, live - 1);
  CompiledExpr again = jit->compile_predicate(e1, two_rows);
  EXPECT_EQ(jit->stats().compiles, s1.compiles + 2);  // recompiled (e4 was the other one)
  r0[1] = float_slot(2.0);
  r0[2] = string_slot(intern("IBM"));
  EXPECT_TRUE(again.eval_predicate(in, st));
}

TEST(Jit, DivisorClassIsPartOfTheShape) {
  REQUIRE_JIT();
  TExpr x = Ref(Side::Second, 0, Type::Int);
  auto pred = [&](int64_t d) {
    return Bool(TOp::Eq, {Node(TOp::Mod, Type::Int, {x, K(d)}), K(1)});
  };
  std::string k7, k3, k0, km1, error;
  ASSERT_TRUE(Jit::shape_of(Program::Kind::Predicate, pred(7), two_rows, &k7, nullptr, &error));
  ASSERT_TRUE(Jit::shape_of(Program::Kind::Predicate, pred(3), two_rows, &k3, nullptr, &error));
  ASSERT_TRUE(Jit::shape_of(Program::Kind::Predicate, pred(0), two_rows, &k0, nullptr, &error));
  ASSERT_TRUE(Jit::shape_of(Program::Kind::Predicate, pred(-1), two_rows, &km1, nullptr, &error));
  EXPECT_EQ(k7, k3);
  EXPECT_NE(k7, k0);
  EXPECT_NE(k7, km1);
  EXPECT_NE(k0, km1);
}

TEST(Jit, MalformedExpressionIsAnErrorNotACrash) {
  REQUIRE_JIT();
  std::string error;
  TExpr bad = Node(TOp::Add, Type::Int, {Ref(Side::First, 0, Type::Int)});  // one operand
  CompiledExpr c = jit->compile_value(bad, two_rows, &error);
  EXPECT_FALSE(c.valid());
  EXPECT_FALSE(error.empty());
  TExpr boolean_operand =
      Node(TOp::Add, Type::Int, {Ref(Side::First, 0, Type::Int), Bool(TOp::Eq, {K(1), K(2)})});
  c = jit->compile_value(boolean_operand, two_rows, &error);
  EXPECT_FALSE(c.valid());
  TExpr mixed = Bool(TOp::Lt, {K(1), KF(2.0)});  // INT < FLOAT without ToFloat
  c = jit->compile_predicate(mixed, two_rows, &error);
  EXPECT_FALSE(c.valid());
}

TEST(Jit, ConcurrentCompilesAndEvaluations) {
  REQUIRE_JIT();
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Gen g(1000 + t % 2);  // two pairs of threads generate the same shapes
      Tally tally;
      for (int i = 0; i < 60; ++i) {
        TExpr e = g.boolean(3);
        if (!check_expression(*jit, g, e, 8, tally)) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(Jit, CompiledExprOutlivesTheJit) {
  std::string error;
  std::unique_ptr<Jit> own = Jit::create(&error);
  if (!own) GTEST_SKIP() << error;
  CompiledExpr c = own->compile_predicate(
      Bool(TOp::Lt, {Ref(Side::First, 0, Type::Int), K(10)}), two_rows, &error);
  ASSERT_TRUE(c.valid()) << error;
  own.reset();
  std::vector<Slot> r0(2 * kAttrs, int_slot(3));
  EvalInput in;
  in.rows[0] = r0.data();
  in.rows[1] = r0.data();
  EvalStats st;
  EXPECT_TRUE(c.eval_predicate(in, st));
}

}  // namespace
}  // namespace cayuga

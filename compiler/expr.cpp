// Lowering of typed expressions to register bytecode, and the interpreter (see expr.h).
//
// Compilation is three steps:
//  1. simplify: constant subtrees are folded by running them through this very interpreter (so
//     folding can never disagree with evaluation), a division by a constant zero is kept for run
//     time so it is counted, trivial TRUE/NOT NOT structure is removed;
//  2. a predicate that cannot divide by zero is lowered to jumping code: each comparison is one
//     fused compare-and-branch whose operands may be registers, immediates or row slots, and
//     AND/OR/NOT become control flow (short-circuit); the last test returns its result directly
//     instead of branching to `ret true`/`ret false`. A predicate that may divide by zero is
//     lowered to value code instead: booleans live in registers as 0/1, an AND/OR only skips its
//     remaining operands when none of them contains a possible division by zero, and the result
//     is false if any division trapped during this evaluation;
//  3. registers are allocated as a stack (Sethi–Ullman order: the operand needing more registers
//     is evaluated first), so a program needs O(log n) registers and the count is known exactly.
#include "compiler/expr.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <utility>

namespace cayuga {

namespace {

using Instr = Program::Instr;

// ---- Conditions -------------------------------------------------------------------------------
// The I conditions compare int64 (and interned string ids for `=`/`!=`); F compare doubles, with
// N-variants (`NLtF` = !(x < y)) because negating a FLOAT comparison is not another comparison
// when NaN is involved; S compare strings bytewise.
// clang-format off
#define CAYUGA_CONDS(X)                                                         \
  X(EqI, "eq.i") X(NeI, "ne.i") X(LtI, "lt.i") X(LeI, "le.i") X(GtI, "gt.i")    \
  X(GeI, "ge.i")                                                                \
  X(EqF, "eq.f") X(NeF, "ne.f") X(LtF, "lt.f") X(LeF, "le.f") X(GtF, "gt.f")    \
  X(GeF, "ge.f") X(NLtF, "nlt.f") X(NLeF, "nle.f") X(NGtF, "ngt.f")             \
  X(NGeF, "nge.f")                                                              \
  X(LtS, "lt.s") X(LeS, "le.s") X(GtS, "gt.s") X(GeS, "ge.s")
// clang-format on

enum class Cond : uint8_t {
#define X(C, name) C,
  CAYUGA_CONDS(X)
#undef X
};

const char* const kCondNames[] = {
#define X(C, name) name,
    CAYUGA_CONDS(X)
#undef X
};

using enum Cond;

// !(x c y) == x negate(c) y, NaN included.
constexpr Cond kNegate[] = {NeI,  EqI,  GeI, GtI, LeI, LtI, NeF, EqF, NLtF, NLeF,
                            NGtF, NGeF, LtF, LeF, GtF, GeF, GeS, GtS, LeS,  LtS};
// (x c y) == (y swap(c) x), NaN included.
constexpr Cond kSwap[] = {EqI, NeI, GtI,  GeI,  LtI,  LeI,  EqF, NeF, GtF, GeF,
                          LtF, LeF, NGtF, NGeF, NLtF, NLeF, GtS, GeS, LtS, LeS};

Type cond_type(Cond c) {
  return c <= GeI ? Type::Int : c <= NGeF ? Type::Float : Type::String;
}

// Bytewise, as unsigned bytes (memcmp), shorter prefix first.
int compare_strings(uint64_t a, uint64_t b) {
  if (a == b) return 0;
  std::string_view x = interned(a), y = interned(b);
  size_t n = std::min(x.size(), y.size());
  if (int r = n ? std::memcmp(x.data(), y.data(), n) : 0) return r;
  return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
}

template <Cond C>
inline bool test(Slot a, Slot b) {
  if constexpr (C == EqI)
    return a.i == b.i;
  else if constexpr (C == NeI)
    return a.i != b.i;
  else if constexpr (C == LtI)
    return a.i < b.i;
  else if constexpr (C == LeI)
    return a.i <= b.i;
  else if constexpr (C == GtI)
    return a.i > b.i;
  else if constexpr (C == GeI)
    return a.i >= b.i;
  else if constexpr (C == EqF)
    return a.f == b.f;
  else if constexpr (C == NeF)
    return a.f != b.f;
  else if constexpr (C == LtF)
    return a.f < b.f;
  else if constexpr (C == LeF)
    return a.f <= b.f;
  else if constexpr (C == GtF)
    return a.f > b.f;
  else if constexpr (C == GeF)
    return a.f >= b.f;
  else if constexpr (C == NLtF)
    return !(a.f < b.f);
  else if constexpr (C == NLeF)
    return !(a.f <= b.f);
  else if constexpr (C == NGtF)
    return !(a.f > b.f);
  else if constexpr (C == NGeF)
    return !(a.f >= b.f);
  else if constexpr (C == LtS)
    return compare_strings(a.s, b.s) < 0;
  else if constexpr (C == LeS)
    return compare_strings(a.s, b.s) <= 0;
  else if constexpr (C == GtS)
    return compare_strings(a.s, b.s) > 0;
  else
    return compare_strings(a.s, b.s) >= 0;
}

// ---- Opcodes ----------------------------------------------------------------------------------
// Operand forms of the compare ops: R register, K immediate, M row slot.
enum Form : uint8_t { RR, RK, MM, MK, MR };
constexpr int kBrForms = 5, kSetForms = 2;

// How disassemble() prints an op's operands.
enum class Shape : uint8_t { Jump, JumpReg, Plain, RetReg, Const, Load, Dur, Unary, Binary, BinK };

// name, printed name, operand shape, type of the immediate (for BinK).
// clang-format off
#define CAYUGA_OPS(X)                        \
  X(Jmp, "jmp", Jump, Int)                   \
  X(JmpZ, "jz", JumpReg, Int)                \
  X(JmpNZ, "jnz", JumpReg, Int)              \
  X(RetTrue, "ret true", Plain, Int)         \
  X(RetFalse, "ret false", Plain, Int)       \
  X(Ret, "ret", RetReg, Int)                 \
  X(LoadK, "const", Const, Int)              \
  X(LoadM, "load", Load, Int)                \
  X(DurV, "dur", Dur, Int)                   \
  X(ToFloatV, "tofloat", Unary, Int)         \
  X(NegI, "neg.i", Unary, Int)               \
  X(NegF, "neg.f", Unary, Int)               \
  X(NotB, "not", Unary, Int)                 \
  X(AndB, "and", Binary, Int)                \
  X(OrB, "or", Binary, Int)                  \
  X(AddI, "add.i", Binary, Int)              \
  X(SubI, "sub.i", Binary, Int)              \
  X(MulI, "mul.i", Binary, Int)              \
  X(DivI, "div.i", Binary, Int)              \
  X(ModI, "mod.i", Binary, Int)              \
  X(AddF, "add.f", Binary, Int)              \
  X(SubF, "sub.f", Binary, Int)              \
  X(MulF, "mul.f", Binary, Int)              \
  X(DivF, "div.f", Binary, Int)              \
  X(ModF, "mod.f", Binary, Int)              \
  X(PowF, "pow.f", Binary, Int)              \
  X(AddIK, "add.i", BinK, Int)               \
  X(SubIK, "sub.i", BinK, Int)               \
  X(MulIK, "mul.i", BinK, Int)               \
  X(DivIK, "div.i", BinK, Int)               \
  X(ModIK, "mod.i", BinK, Int)               \
  X(AddFK, "add.f", BinK, Float)             \
  X(SubFK, "sub.f", BinK, Float)             \
  X(MulFK, "mul.f", BinK, Float)             \
  X(DivFK, "div.f", BinK, Float)             \
  X(ModFK, "mod.f", BinK, Float)             \
  X(PowFK, "pow.f", BinK, Float)             \
  X(AbsI, "abs.i", Unary, Int)               \
  X(AbsF, "abs.f", Unary, Int)               \
  X(MinI, "min.i", Binary, Int)              \
  X(MaxI, "max.i", Binary, Int)              \
  X(MinF, "min.f", Binary, Int)              \
  X(MaxF, "max.f", Binary, Int)              \
  X(MinS, "min.s", Binary, Int)              \
  X(MaxS, "max.s", Binary, Int)              \
  X(Length, "length", Unary, Int)            \
  X(Lower, "lower", Unary, Int)              \
  X(Upper, "upper", Unary, Int)              \
  X(ContainsV, "contains", Binary, Int)      \
  X(SimilarityV, "similarity", Binary, Int)

enum Op : uint16_t {
#define X(C, name) Br##C##_RR, Br##C##_RK, Br##C##_MM, Br##C##_MK, Br##C##_MR,
  CAYUGA_CONDS(X)
#undef X
#define X(C, name) Ret##C##_RR, Ret##C##_RK, Ret##C##_MM, Ret##C##_MK, Ret##C##_MR,
  CAYUGA_CONDS(X)
#undef X
#define X(C, name) Set##C##_RR, Set##C##_RK,
  CAYUGA_CONDS(X)
#undef X
#define X(O, name, shape, ktype) O,
  CAYUGA_OPS(X)
#undef X
  kNumOps
};
// clang-format on
// clang-format on

constexpr int kNumConds = int(GeS) + 1;
constexpr int kFirstRet = int(BrEqI_RR) + kNumConds * kBrForms;
constexpr int kFirstSet = kFirstRet + kNumConds * kBrForms;
constexpr int kFirstOther = kFirstSet + kNumConds * kSetForms;
static_assert(kFirstOther == int(Jmp));

Op br_op(Cond c, Form f) {
  return Op(int(c) * kBrForms + f);
}
Op ret_op(Cond c, Form f) {
  return Op(kFirstRet + int(c) * kBrForms + f);
}
Op set_op(Cond c, Form f) {
  return Op(kFirstSet + int(c) * kSetForms + f);
}

struct OpInfo {
  const char* name;
  Shape shape;
  Type ktype;
};
const OpInfo kOpInfo[] = {
#define X(O, name, shape, ktype) {name, Shape::shape, Type::ktype},
    CAYUGA_OPS(X)
#undef X
};

// ---- Simplification ---------------------------------------------------------------------------

bool is_int_division(const TExpr& e) {
  return (e.op == TOp::Div || e.op == TOp::Mod) && e.type == Type::Int && e.kids.size() == 2;
}

// Whether evaluating e may divide an INT by zero: an INT `/` or `%` whose divisor is not a
// non-zero constant.
bool has_trap(const TExpr& e) {
  if (is_int_division(e) && !(e.kids[1].op == TOp::Const && e.kids[1].value.i != 0)) return true;
  for (const TExpr& k : e.kids)
    if (has_trap(k)) return true;
  return false;
}

TExpr bool_const(bool v) {
  TExpr t;
  t.op = TOp::True;
  if (v) return t;
  TExpr n;
  n.op = TOp::Not;
  n.kids.push_back(std::move(t));
  return n;
}

TExpr simplify(const TExpr& e);
Program::Instr ret_instr(uint32_t r) {
  return Program::Instr{uint16_t(Ret), 0, r, 0, 0, int_slot(0)};
}

// Memory operands are row << 31 | slot offset.
constexpr uint32_t kOffsetMask = 0x7fffffffu;

}  // namespace

// ---- Lowering ---------------------------------------------------------------------------------

struct ProgramBuilder {
  explicit ProgramBuilder(const RefMapper& r) : refs(r) {}

  static Program make_value(const TExpr& e, const RefMapper& refs, bool fold) {
    TExpr s = fold ? simplify(e) : e;
    ProgramBuilder b(refs);
    b.code.push_back(ret_instr(b.value(s)));
    Program p;
    p.code_ = b.finish();
    p.code_->kind = Program::Kind::Value;
    p.code_->result_type = e.is_bool() ? Type::Int : e.type;
    p.code_->may_divide_by_zero = has_trap(s);
    return p;
  }

  static Program make_predicate(const TExpr& e, const RefMapper& refs) {
    TExpr s = simplify(e);
    ProgramBuilder b(refs);
    const bool may_divide_by_zero = has_trap(s);
    bool jump_mode = false;
    if (s.op == TOp::True) {
      b.emit(RetTrue);
    } else if (!may_divide_by_zero) {
      jump_mode = true;
      Label fail;
      b.jump(s, false, fail);
      b.emit(RetTrue);
      b.bind(fail);
      b.emit(RetFalse);
      // "br c -> fail; ret true" returns !c: fuse it into one returning compare, so the last
      // test of a predicate costs no data-dependent jump. Other jumps to `ret true` stay valid.
      size_t n = b.code.size();
      if (n >= 3 && b.code[n - 3].op < kFirstRet && b.code[n - 3].target == n - 1) {
        Instr& last = b.code[n - 3];
        Cond c = Cond(last.op / kBrForms);
        last.op = uint16_t(ret_op(kNegate[int(c)], Form(last.op % kBrForms)));
        last.target = 0;
      }
    } else {
      b.code.push_back(ret_instr(b.boolean(s)));
    }
    Program p;
    p.code_ = b.finish();
    p.code_->kind = Program::Kind::Predicate;
    p.code_->result_type = Type::Int;
    p.code_->always_true = s.op == TOp::True;
    p.code_->may_divide_by_zero = may_divide_by_zero;
    p.code_->jump_mode = jump_mode;
    return p;
  }

  // The code block of the instructions emitted so far.
  Program::Code* finish() {
    Program::Code* c = Program::new_code(code.size());
    std::copy(code.begin(), code.end(), c->instrs());
    c->num_regs = max_regs;
    return c;
  }

  const RefMapper& refs;
  std::vector<Instr> code;
  uint32_t top = 0;  // first free register
  uint32_t max_regs = 0;
  std::unordered_map<const TExpr*, uint32_t> need_memo;

  struct Label {
    std::vector<size_t> uses;
    int64_t pos = -1;
  };

  uint32_t alloc() {
    uint32_t r = top++;
    max_regs = std::max(max_regs, top);
    return r;
  }

  size_t emit(Op op, uint32_t dst = 0, uint32_t x = 0, uint32_t y = 0, Slot k = int_slot(0)) {
    code.push_back(Instr{uint16_t(op), uint16_t(dst), x, y, 0, k});
    return code.size() - 1;
  }
  void jump_to(size_t instr, Label& l) {
    if (l.pos >= 0)
      code[instr].target = uint32_t(l.pos);
    else
      l.uses.push_back(instr);
  }
  void bind(Label& l) {
    l.pos = int64_t(code.size());
    for (size_t u : l.uses) code[u].target = uint32_t(l.pos);
  }

  // Registers needed to evaluate e (Sethi–Ullman number), memoized.
  uint32_t need(const TExpr& e) {
    if (e.kids.empty()) return 1;
    if (auto it = need_memo.find(&e); it != need_memo.end()) return it->second;
    uint32_t n = 0;
    if (e.kids.size() == 1) {
      n = need(e.kids[0]);
    } else if (e.kids.size() == 2) {
      uint32_t a = need(e.kids[0]), b = need(e.kids[1]);
      n = a == b ? a + 1 : std::max(a, b);
    } else {
      for (const TExpr& k : e.kids) n = std::max(n, need(k));
      n += 1;
    }
    need_memo.emplace(&e, n);
    return n;
  }

  // A memory operand: row << 31 | slot offset.
  uint32_t slot_of(const TExpr& e) {
    SlotRef s = refs(e.side, e.index);
    return uint32_t(s.row & 1) << 31 | (s.offset & kOffsetMask);
  }

  // Evaluates a and b into two fresh registers (the deeper one first) and emits op into the lower.
  uint32_t two(Op op, const TExpr& a, const TExpr& b) {
    uint32_t t = top, ra, rb;
    if (need(b) > need(a)) {
      rb = value(b);
      ra = value(a);
    } else {
      ra = value(a);
      rb = value(b);
    }
    emit(op, t, ra, rb);
    top = t + 1;
    return t;
  }

  uint32_t constant(Slot k, Type t) {
    uint32_t r = alloc();
    emit(LoadK, r, 0, 0, k);
    code.back().target = uint32_t(t);  // the constant's type, for disassembly only
    return r;
  }

  // Value code: the result lands in register `top` (at entry), and top is that + 1 at exit.
  uint32_t value(const TExpr& e) {
    switch (e.op) {
      case TOp::Const:
        return constant(e.value, e.type);
      case TOp::Ref: {
        uint32_t r = alloc();
        emit(LoadM, r, slot_of(e));
        return r;
      }
      case TOp::Dur: {
        uint32_t r = alloc();
        emit(DurV, r);
        return r;
      }
      case TOp::ToFloat:
        return unary(ToFloatV, e);
      case TOp::Neg:
        return unary(e.type == Type::Float ? NegF : NegI, e);
      case TOp::Add:
      case TOp::Sub:
      case TOp::Mul:
      case TOp::Div:
      case TOp::Mod:
      case TOp::Pow:
        return arith(e);
      case TOp::Call:
        return call(e);
      default:
        return boolean(e);  // a boolean used as a value: INT 0/1
    }
  }

  uint32_t unary(Op op, const TExpr& e) {
    if (e.kids.empty()) return constant(int_slot(0), e.type);
    uint32_t r = value(e.kids[0]);
    emit(op, r, r);
    return r;
  }

  uint32_t arith(const TExpr& e) {
    if (e.kids.size() != 2) return constant(int_slot(0), e.type);
    static constexpr Op kRR[2][6] = {{AddI, SubI, MulI, DivI, ModI, PowF},
                                     {AddF, SubF, MulF, DivF, ModF, PowF}};
    static constexpr Op kRK[2][6] = {{AddIK, SubIK, MulIK, DivIK, ModIK, PowFK},
                                     {AddFK, SubFK, MulFK, DivFK, ModFK, PowFK}};
    int fl = e.type == Type::Float || e.op == TOp::Pow;
    int i = int(e.op) - int(TOp::Add);
    const TExpr* a = &e.kids[0];
    const TExpr* b = &e.kids[1];
    if (a->op == TOp::Const && b->op != TOp::Const && (e.op == TOp::Add || e.op == TOp::Mul))
      std::swap(a, b);
    // An INT division by a constant zero stays a run-time division so it is trapped and counted.
    if (b->op == TOp::Const && !(is_int_division(e) && b->value.i == 0)) {
      uint32_t r = value(*a);
      emit(kRK[fl][i], r, r, 0, b->value);
      return r;
    }
    return two(kRR[fl][i], *a, *b);
  }

  uint32_t call(const TExpr& e) {
    size_t arity = e.func == Func::Contains || e.func == Func::Similarity || e.func == Func::Min ||
                           e.func == Func::Max
                       ? 2
                       : 1;
    if (e.kids.size() != arity) return constant(int_slot(0), e.type);
    int t = e.type == Type::Int ? 0 : e.type == Type::Float ? 1 : 2;
    switch (e.func) {
      case Func::Abs:
        return unary(t == 1 ? AbsF : AbsI, e);
      case Func::Length:
        return unary(Length, e);
      case Func::Lower:
        return unary(Lower, e);
      case Func::Upper:
        return unary(Upper, e);
      case Func::Min:
        return two(t == 0 ? MinI : t == 1 ? MinF : MinS, e.kids[0], e.kids[1]);
      case Func::Max:
        return two(t == 0 ? MaxI : t == 1 ? MaxF : MaxS, e.kids[0], e.kids[1]);
      case Func::Contains:
        return two(ContainsV, e.kids[0], e.kids[1]);
      case Func::Similarity:
        return two(SimilarityV, e.kids[0], e.kids[1]);
    }
    return constant(int_slot(0), e.type);
  }

  static bool is_compare(const TExpr& e) {
    return e.op >= TOp::Eq && e.op <= TOp::Ge && e.kids.size() == 2;
  }

  static Cond cond_of(const TExpr& e) {
    int d = int(e.op) - int(TOp::Eq);
    switch (e.kids[0].type) {
      case Type::Int:
        return Cond(int(EqI) + d);
      case Type::Float:
        return Cond(int(EqF) + d);
      case Type::String:
        break;
    }
    return d == 0 ? EqI : d == 1 ? NeI : Cond(int(LtS) + d - 2);
  }

  // Boolean as a value: 0/1 in register `top`. AND/OR skip their remaining operands only when
  // none of those may divide by zero.
  uint32_t boolean(const TExpr& e) {
    if (e.op == TOp::True) return constant(int_slot(1), Type::Int);
    if (e.op == TOp::Not && !e.kids.empty()) {
      uint32_t r = boolean(e.kids[0]);
      emit(NotB, r, r);
      return r;
    }
    if ((e.op == TOp::And || e.op == TOp::Or) && !e.kids.empty()) {
      bool is_and = e.op == TOp::And;
      std::vector<bool> trap_after(e.kids.size() + 1, false);
      for (size_t i = e.kids.size(); i-- > 0;)
        trap_after[i] = trap_after[i + 1] || has_trap(e.kids[i]);
      uint32_t t = boolean(e.kids[0]);
      Label done;
      for (size_t i = 1; i < e.kids.size(); ++i) {
        if (!trap_after[i]) jump_to(emit(is_and ? JmpZ : JmpNZ, 0, t), done);
        boolean(e.kids[i]);
        emit(is_and ? AndB : OrB, t, t, t + 1);
        top = t + 1;
      }
      bind(done);
      return t;
    }
    if (is_compare(e)) {
      Cond c = cond_of(e);
      const TExpr* a = &e.kids[0];
      const TExpr* b = &e.kids[1];
      if (a->op == TOp::Const && b->op != TOp::Const) {
        std::swap(a, b);
        c = kSwap[int(c)];
      }
      if (b->op == TOp::Const) {
        uint32_t r = value(*a);
        emit(set_op(c, RK), r, r, 0, b->value);
        return r;
      }
      return two(set_op(c, RR), *a, *b);
    }
    if (e.is_bool()) return constant(int_slot(0), Type::Int);  // malformed: no operands
    // A value used as a condition: non-zero (non-empty) is true.
    uint32_t r = value(e);
    Cond c = e.type == Type::Float ? NeF : NeI;
    emit(set_op(c, RK), r, r, 0, int_slot(0));
    return r;
  }

  // Jumping code: jumps to l when e evaluates to `when`, falls through otherwise. Only for
  // predicates that cannot divide by zero (a jump may skip any code).
  void jump(const TExpr& e, bool when, Label& l) {
    switch (e.op) {
      case TOp::True:
        if (when) jump_to(emit(Jmp), l);
        return;
      case TOp::Not:
        if (!e.kids.empty()) return jump(e.kids[0], !when, l);
        break;
      case TOp::And:
      case TOp::Or: {
        if (e.kids.empty()) break;
        // AND jumping on false / OR jumping on true: every operand jumps straight to l.
        bool direct = (e.op == TOp::And) != when;
        Label skip;
        for (size_t i = 0; i + 1 < e.kids.size(); ++i) {
          if (direct)
            jump(e.kids[i], when, l);
          else
            jump(e.kids[i], !when, skip);
        }
        jump(e.kids.back(), when, l);
        bind(skip);
        return;
      }
      default:
        if (is_compare(e)) {
          Cond c = cond_of(e);
          branch(when ? c : kNegate[int(c)], e.kids[0], e.kids[1], l);
          return;
        }
        break;
    }
    // A value as a condition, or a malformed node.
    uint32_t t = top;
    uint32_t r = boolean(e);
    jump_to(emit(when ? JmpNZ : JmpZ, 0, r), l);
    top = t;
  }

  // One compare-and-branch, with row slots and immediates folded into the instruction.
  void branch(Cond c, const TExpr& a0, const TExpr& b0, Label& l) {
    enum { K, M, R };
    auto kind = [](const TExpr& e) { return e.op == TOp::Const ? K : e.op == TOp::Ref ? M : R; };
    const TExpr* a = &a0;
    const TExpr* b = &b0;
    int ka = kind(*a), kb = kind(*b);
    if ((ka == K && kb != K) || (ka == R && kb == M)) {
      std::swap(a, b);
      std::swap(ka, kb);
      c = kSwap[int(c)];
    }
    uint32_t t = top;
    size_t at;
    if (ka == M) {
      uint32_t ma = slot_of(*a);
      if (kb == M) {
        at = emit(br_op(c, MM), 0, ma, slot_of(*b));
      } else if (kb == K) {
        at = emit(br_op(c, MK), 0, ma, 0, b->value);
      } else {
        uint32_t rb = value(*b);
        at = emit(br_op(c, MR), 0, ma, rb);
      }
    } else if (kb == K) {
      uint32_t ra = value(*a);
      at = emit(br_op(c, RK), 0, ra, 0, b->value);
    } else {
      uint32_t ra, rb;
      if (need(*b) > need(*a)) {
        rb = value(*b);
        ra = value(*a);
      } else {
        ra = value(*a);
        rb = value(*b);
      }
      at = emit(br_op(c, RR), 0, ra, rb);
    }
    top = t;
    jump_to(at, l);
  }
};

// Last and Second cannot occur over a single row; mapping them to row 0 keeps this total.
SlotRef single_row_ref(Side, uint32_t index) {
  return SlotRef{0, index};
}

namespace {

// Folds constant subtrees by evaluating them with the interpreter; keeps divisions by a constant
// zero (they must trap, and be counted, at run time).
TExpr simplify(const TExpr& e) {
  TExpr out = e.shell();
  out.kids.reserve(e.kids.size());
  bool all_const = !e.kids.empty();
  for (const TExpr& k : e.kids) {
    out.kids.push_back(simplify(k));
    all_const = all_const && out.kids.back().op == TOp::Const;
  }
  switch (out.op) {
    case TOp::Not:
      if (!out.kids.empty() && out.kids[0].op == TOp::Not && !out.kids[0].kids.empty()) {
        TExpr inner = std::move(out.kids[0].kids[0]);
        return inner;
      }
      return out;
    case TOp::And: {
      std::erase_if(out.kids, [](const TExpr& k) { return k.op == TOp::True; });
      if (out.kids.empty()) return bool_const(true);
      if (out.kids.size() == 1) {
        TExpr only = std::move(out.kids[0]);
        return only;
      }
      return out;
    }
    case TOp::Or: {
      bool any_true = std::any_of(out.kids.begin(), out.kids.end(),
                                  [](const TExpr& k) { return k.op == TOp::True; });
      if (any_true && !has_trap(out)) return bool_const(true);
      if (out.kids.size() == 1) {
        TExpr only = std::move(out.kids[0]);
        return only;
      }
      return out;
    }
    default:
      break;
  }
  if (all_const && !out.is_bool() && !(is_int_division(out) && out.kids[1].value.i == 0)) {
    EvalStats unused;
    Slot v = ProgramBuilder::make_value(out, single_row_ref, false).eval_value(EvalInput{}, unused);
    TExpr c;
    c.op = TOp::Const;
    c.type = out.type;
    c.value = v;
    return c;
  }
  return out;
}

// ---- The interpreter --------------------------------------------------------------------------
//
// Bytecode layout. A Program is a flat array of 24-byte Instr run from index 0 until a `ret`:
//   op      opcode (enum Op above), 16 bits
//   dst     destination register
//   x, y    operands: a register number (forms R), or a memory operand `row << 31 | slot offset`
//           (forms M; row 0 = the instance or the single row, row 1 = the incoming event)
//   target  jump target, an absolute instruction index (for `const`: the constant's Type, used
//           only by disassemble())
//   k       immediate operand (forms K, `const`), already in the slot representation
// Registers are 8-byte Slots in a per-evaluation array (on the C++ stack when it fits), used as
// a stack; booleans in registers are INT 0/1. Compares come in three families over 20 conditions:
//   Br<cond>_<form>   jump to target if x <cond> y      forms RR RK MM MK MR
//   Ret<cond>_<form>  return x <cond> y                 (the last test of a jumping predicate)
//   Set<cond>_<form>  dst = x <cond> y                  forms RR RK (value code)
// Arithmetic is `<op>` (dst = x op y) or `<op>K` (dst = x op k); `load` reads a row slot, `const`
// an immediate. Jumping predicates end in `ret true` / `ret false`, value code in `ret x`.
// A trapping INT `/` or `%` writes 0 and bumps stats.div_by_zero; the callers turn "the counter
// moved during this evaluation" into false (predicate) or a zero value.

constexpr uint32_t kStackRegs = 32;

// GCC and Clang have computed goto ("labels as values"); elsewhere the loop is a plain switch.
#if defined(__GNUC__) && !defined(CAYUGA_SWITCH_DISPATCH)
#define CAYUGA_THREADED_DISPATCH 1
#else
#define CAYUGA_THREADED_DISPATCH 0
#endif

int64_t wrap_neg(int64_t x) {
  return int64_t(0 - uint64_t(x));
}

// clang-format off
Slot* big_registers(uint32_t n);

Slot run(const Instr* code, uint32_t num_regs, const EvalInput& in, EvalStats& st) {
  Slot local[kStackRegs];
  Slot* const R = num_regs <= kStackRegs ? local : big_registers(num_regs);
  const Slot* const rows[2] = {in.rows[0], in.rows[1]};
  const Instr* p = code;
#define MX rows[p->x >> 31][p->x & kOffsetMask]
#define MY rows[p->y >> 31][p->y & kOffsetMask]
#define RX R[p->x]
#define RY R[p->y]
#define D R[p->dst]
#if CAYUGA_THREADED_DISPATCH
  // Direct threading: every handler ends in its own indirect jump, which predicts far better
  // than the single shared jump of a switch.
  static const void* const kHandlers[] = {
#define X(C, name) &&L_Br##C##_RR, &&L_Br##C##_RK, &&L_Br##C##_MM, &&L_Br##C##_MK, &&L_Br##C##_MR,
    CAYUGA_CONDS(X)
#undef X
#define X(C, name) &&L_Ret##C##_RR, &&L_Ret##C##_RK, &&L_Ret##C##_MM, &&L_Ret##C##_MK, \
                   &&L_Ret##C##_MR,
    CAYUGA_CONDS(X)
#undef X
#define X(C, name) &&L_Set##C##_RR, &&L_Set##C##_RK,
    CAYUGA_CONDS(X)
#undef X
#define X(O, name, shape, ktype) &&L_##O,
    CAYUGA_OPS(X)
#undef X
  };
  static_assert(sizeof kHandlers / sizeof kHandlers[0] == kNumOps);
#define OP(name) L_##name:
#define DISPATCH() goto *kHandlers[p->op]
  DISPATCH();
  {
    {
#else
#define OP(name) case name:
#define DISPATCH() continue
  for (;;) {
    switch (p->op) {
#endif
#define NEXT() { ++p; DISPATCH(); }
#define JUMP() { p = code + p->target; DISPATCH(); }
#define JUMP_IF(c) { p = (c) ? code + p->target : p + 1; DISPATCH(); }
#define X(C, name)                                                        \
      OP(Br##C##_RR) JUMP_IF(test<Cond::C>(RX, RY))                        \
      OP(Br##C##_RK) JUMP_IF(test<Cond::C>(RX, p->k))                      \
      OP(Br##C##_MM) JUMP_IF(test<Cond::C>(MX, MY))                        \
      OP(Br##C##_MK) JUMP_IF(test<Cond::C>(MX, p->k))                      \
      OP(Br##C##_MR) JUMP_IF(test<Cond::C>(MX, RY))                        \
      OP(Ret##C##_RR) return int_slot(test<Cond::C>(RX, RY));              \
      OP(Ret##C##_RK) return int_slot(test<Cond::C>(RX, p->k));            \
      OP(Ret##C##_MM) return int_slot(test<Cond::C>(MX, MY));              \
      OP(Ret##C##_MK) return int_slot(test<Cond::C>(MX, p->k));            \
      OP(Ret##C##_MR) return int_slot(test<Cond::C>(MX, RY));              \
      OP(Set##C##_RR) D.i = test<Cond::C>(RX, RY); NEXT()                  \
      OP(Set##C##_RK) D.i = test<Cond::C>(RX, p->k); NEXT()
      CAYUGA_CONDS(X)
#undef X
      OP(Jmp) JUMP()
      OP(JmpZ) JUMP_IF(RX.i == 0)
      OP(JmpNZ) JUMP_IF(RX.i != 0)
      OP(RetTrue) return int_slot(1);
      OP(RetFalse) return int_slot(0);
      OP(Ret) return RX;
      OP(LoadK) D = p->k; NEXT()
      OP(LoadM) D = MX; NEXT()
      OP(DurV) D.i = in.dur; NEXT()
      OP(ToFloatV) D.f = double(RX.i); NEXT()
      OP(NegI) D.i = wrap_neg(RX.i); NEXT()
      OP(NegF) D.f = -RX.f; NEXT()
      OP(NotB) D.i = RX.i ^ 1; NEXT()
      OP(AndB) D.i = RX.i & RY.i; NEXT()
      OP(OrB) D.i = RX.i | RY.i; NEXT()
      OP(AddI) D.i = int64_t(uint64_t(RX.i) + uint64_t(RY.i)); NEXT()
      OP(SubI) D.i = int64_t(uint64_t(RX.i) - uint64_t(RY.i)); NEXT()
      OP(MulI) D.i = int64_t(uint64_t(RX.i) * uint64_t(RY.i)); NEXT()
      OP(DivI) {
        int64_t x = RX.i, y = RY.i;
        if (y == 0) ++st.div_by_zero;
        D.i = y == 0 ? 0 : y == -1 ? wrap_neg(x) : x / y;
        NEXT()
      }
      OP(ModI) {
        int64_t x = RX.i, y = RY.i;
        if (y == 0) ++st.div_by_zero;
        D.i = y == 0 || y == -1 ? 0 : x % y;
        NEXT()
      }
      OP(AddF) D.f = RX.f + RY.f; NEXT()
      OP(SubF) D.f = RX.f - RY.f; NEXT()
      OP(MulF) D.f = RX.f * RY.f; NEXT()
      OP(DivF) D.f = RX.f / RY.f; NEXT()
      OP(ModF) D.f = std::fmod(RX.f, RY.f); NEXT()
      OP(PowF) D.f = std::pow(RX.f, RY.f); NEXT()
      OP(AddIK) D.i = int64_t(uint64_t(RX.i) + uint64_t(p->k.i)); NEXT()
      OP(SubIK) D.i = int64_t(uint64_t(RX.i) - uint64_t(p->k.i)); NEXT()
      OP(MulIK) D.i = int64_t(uint64_t(RX.i) * uint64_t(p->k.i)); NEXT()
      // k != 0: a constant zero divisor is lowered to DivI / ModI so that it traps.
      OP(DivIK) D.i = p->k.i == -1 ? wrap_neg(RX.i) : RX.i / p->k.i; NEXT()
      OP(ModIK) D.i = p->k.i == -1 ? 0 : RX.i % p->k.i; NEXT()
      OP(AddFK) D.f = RX.f + p->k.f; NEXT()
      OP(SubFK) D.f = RX.f - p->k.f; NEXT()
      OP(MulFK) D.f = RX.f * p->k.f; NEXT()
      OP(DivFK) D.f = RX.f / p->k.f; NEXT()
      OP(ModFK) D.f = std::fmod(RX.f, p->k.f); NEXT()
      OP(PowFK) D.f = std::pow(RX.f, p->k.f); NEXT()
      OP(AbsI) D.i = RX.i < 0 ? wrap_neg(RX.i) : RX.i; NEXT()
      OP(AbsF) D.f = std::fabs(RX.f); NEXT()
      // MIN/MAX: the first operand unless the second is strictly smaller / larger (expr.h).
      OP(MinI) D = RY.i < RX.i ? RY : RX; NEXT()
      OP(MaxI) D = RY.i > RX.i ? RY : RX; NEXT()
      OP(MinF) D = RY.f < RX.f ? RY : RX; NEXT()
      OP(MaxF) D = RY.f > RX.f ? RY : RX; NEXT()
      OP(MinS) D = compare_strings(RY.s, RX.s) < 0 ? RY : RX; NEXT()
      OP(MaxS) D = compare_strings(RY.s, RX.s) > 0 ? RY : RX; NEXT()
      OP(Length) D.i = fn_length(RX.s); NEXT()
      OP(Lower) D.s = fn_lower(RX.s); NEXT()
      OP(Upper) D.s = fn_upper(RX.s); NEXT()
      OP(ContainsV) D.i = fn_contains(RX.s, RY.s); NEXT()
      OP(SimilarityV) D.f = fn_similarity(RX.s, RY.s); NEXT()
#if !CAYUGA_THREADED_DISPATCH
      default: return int_slot(0);  // unreachable: the builder emits only the ops above
#endif
    }
  }
  return int_slot(0);
#undef OP
#undef DISPATCH
#undef NEXT
#undef JUMP
#undef JUMP_IF
#undef MX
#undef MY
#undef RX
#undef RY
#undef D
}
// clang-format on

// The register file lives on the C++ stack when it fits (nearly always), else in a per-thread
// buffer (evaluation never re-enters, so one buffer per thread is enough).
[[gnu::noinline]] Slot* big_registers(uint32_t n) {
  thread_local std::vector<Slot> big;
  if (big.size() < n) big.resize(n);
  return big.data();
}

void append_const(std::string& out, Slot k, Type t) {
  switch (t) {
    case Type::Int:
      out += std::to_string(k.i);
      return;
    case Type::Float: {
      char buf[64];
      auto r = std::to_chars(buf, buf + sizeof buf, k.f);
      out.append(buf, r.ptr);
      if (std::string_view(buf, r.ptr).find_first_of(".en") == std::string_view::npos) out += ".0";
      return;
    }
    case Type::String:
      out += '\'';
      for (char c : interned(k.s)) {
        if (c == '\'') out += '\'';
        out += c;
      }
      out += '\'';
      return;
  }
}

}  // namespace

// Appends `e` in preorder, with references resolved through `refs`.
void Program::flatten(const TExpr& e, const RefMapper& refs, std::vector<Source::Node>& out) {
  Source::Node n{e.op, e.type, e.side, e.func, e.index, static_cast<uint32_t>(e.kids.size()),
                 e.value};
  if (e.op == TOp::Ref) {
    SlotRef r = refs(e.side, e.index);
    n.side = r.row == 0 ? Side::First : Side::Second;
    n.index = r.offset;
  }
  out.push_back(n);
  for (const auto& k : e.kids) flatten(k, refs, out);
}

// The tree of the preorder nodes starting at `at`, which is moved past them.
TExpr Program::unflatten(const Source::Node*& at) {
  const Source::Node& n = *at++;
  TExpr e;
  e.op = n.op;
  e.type = n.type;
  e.side = n.side;
  e.func = n.func;
  e.index = n.index;
  e.value = n.value;
  e.kids.reserve(n.kids);
  for (uint32_t k = 0; k < n.kids; ++k) e.kids.push_back(unflatten(at));
  return e;
}

TExpr Program::source() const {
  if (!source_) return TExpr();  // TRUE
  const Source::Node* at = source_->nodes();
  return unflatten(at);
}

Program::Source* Program::new_source(const TExpr& e, const RefMapper& refs) {
  std::vector<Source::Node> nodes;
  flatten(e, refs, nodes);
  void* raw = ::operator new(sizeof(Source) + nodes.size() * sizeof(Source::Node));
  Source* s = new (raw) Source;
  s->size = static_cast<uint32_t>(nodes.size());
  std::copy(nodes.begin(), nodes.end(), s->nodes());
  return s;
}

void Program::release_source() const {
  unref(std::exchange(source_, nullptr));
}

Program::Code* Program::new_code(size_t size) {
  void* raw = ::operator new(sizeof(Code) + size * sizeof(Instr));
  Code* c = new (raw) Code;
  c->size = static_cast<uint32_t>(size);
  return c;
}

void Program::unref(Code* c) {
  if (c && c->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    c->~Code();  // Instr is trivially destructible
    ::operator delete(c);
  }
}

void Program::unref(Source* s) {
  if (s && s->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    s->~Source();  // the nodes are trivially destructible
    ::operator delete(s);
  }
}

Program::Program(const Program& o)
    : code_(o.code_),
      source_(o.source_),
      native_(o.native_.load(std::memory_order_acquire)) {
  if (code_) code_->refs.fetch_add(1, std::memory_order_relaxed);
  if (source_) source_->refs.fetch_add(1, std::memory_order_relaxed);
}

Program::Program(Program&& o) noexcept
    : code_(std::exchange(o.code_, nullptr)),
      source_(std::exchange(o.source_, nullptr)),
      native_(o.native_.exchange(nullptr, std::memory_order_acq_rel)) {}

Program& Program::operator=(const Program& o) {
  if (this != &o) *this = Program(o);
  return *this;
}

Program& Program::operator=(Program&& o) noexcept {
  if (this != &o) {
    unref(std::exchange(code_, std::exchange(o.code_, nullptr)));
    unref(std::exchange(source_, std::exchange(o.source_, nullptr)));
    native_.store(o.native_.exchange(nullptr, std::memory_order_acq_rel),
                  std::memory_order_release);
  }
  return *this;
}

Program::~Program() {
  unref(code_);
  unref(source_);
}

Program Program::predicate(const TExpr& e, const RefMapper& refs) {
  Program p = ProgramBuilder::make_predicate(e, refs);
  p.source_ = new_source(e, refs);
  return p;
}

Program Program::value(const TExpr& e, const RefMapper& refs) {
  Program p = ProgramBuilder::make_value(e, refs, true);
  p.source_ = new_source(e, refs);
  return p;
}

// Two codes are identical when their header fields (all of which matter to evaluation or to
// disassemble()) and their instructions are. Instructions compare as bytes: emit() sets every
// field and Instr has no padding.
static_assert(sizeof(Program::Instr) == 24);

uint64_t CodePool::header(const Program::Code* c) {
  return uint64_t{c->size} << 32 ^ uint64_t{c->num_regs} << 24 ^ uint64_t(c->kind) << 16 ^
         uint64_t(c->result_type) << 8 ^ uint64_t{c->always_true} << 2 ^
         uint64_t{c->may_divide_by_zero} << 1 ^ uint64_t{c->jump_mode};
}

bool CodePool::same(const Program::Code* a, const Program::Code* b) {
  return header(a) == header(b) &&
         std::memcmp(a->instrs(), b->instrs(), a->size * sizeof(Program::Instr)) == 0;
}

uint32_t CodePool::hash(const Program::Code* c) {
  uint64_t h = header(c);
  const auto* words = reinterpret_cast<const unsigned char*>(c->instrs());
  for (size_t i = 0; i < c->size * sizeof(Program::Instr); i += 8) {
    uint64_t w;
    std::memcpy(&w, words + i, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
  }
  return static_cast<uint32_t>(h ^ (h >> 32));
}

CodePool::CodePool(const CodePool& o) : slots_(o.slots_), count_(o.count_) {
  for (Program::Code* c : slots_)
    if (c) c->refs.fetch_add(1, std::memory_order_relaxed);
}

CodePool::CodePool(CodePool&& o) noexcept
    : slots_(std::move(o.slots_)), count_(std::exchange(o.count_, 0)) {}

CodePool& CodePool::operator=(CodePool o) noexcept {
  std::swap(slots_, o.slots_);
  std::swap(count_, o.count_);
  return *this;
}

CodePool::~CodePool() {
  for (Program::Code* c : slots_) Program::unref(c);
}

void CodePool::share(Program& p) {
  Program::Code* c = p.code_;
  if (!c) return;
  const uint32_t h = hash(c);
  if (!slots_.empty()) {
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask; slots_[i]; i = (i + 1) & mask) {
      Program::Code* o = slots_[i];
      if (o == c) return;
      if (o->hash == h && same(o, c)) {
        o->refs.fetch_add(1, std::memory_order_relaxed);
        Program::unref(std::exchange(p.code_, o));
        return;
      }
    }
  }
  c->hash = h;
  insert(c);
}

void CodePool::insert(Program::Code* c) {
  if (2 * (count_ + 1) > slots_.size()) make_room();
  const size_t mask = slots_.size() - 1;
  size_t i = c->hash & mask;
  while (slots_[i]) i = (i + 1) & mask;
  slots_[i] = c;
  c->refs.fetch_add(1, std::memory_order_relaxed);
  ++count_;
}

// Drops the codes no program uses any more, then doubles the table if it is still half full.
void CodePool::make_room() {
  std::vector<Program::Code*> old = std::move(slots_);
  count_ = 0;
  for (Program::Code*& c : old) {
    if (c && c->refs.load(std::memory_order_acquire) == 1)
      Program::unref(std::exchange(c, nullptr));
    if (c) ++count_;
  }
  size_t n = std::max<size_t>(16, old.size());
  while (2 * (count_ + 1) > n) n *= 2;
  slots_.assign(n, nullptr);
  for (Program::Code* c : old) {
    if (!c) continue;
    size_t i = c->hash & (n - 1);
    while (slots_[i]) i = (i + 1) & (n - 1);
    slots_[i] = c;
  }
}

// A trap anywhere in this evaluation moved the counter: the predicate is false, the value 0.
// (Jumping code never traps, so the check is always right and costs one compare.)
bool Program::interpret_predicate(const EvalInput& in, EvalStats& stats) const {
  if (!code_) return false;
  if (code_->always_true) return true;
  uint64_t before = stats.div_by_zero;
  bool r = run(code_->instrs(), code_->num_regs, in, stats).i != 0;
  return r & (stats.div_by_zero == before);  // `&`: no data-dependent branch here
}

Slot Program::interpret_value(const EvalInput& in, EvalStats& stats) const {
  if (!code_) return int_slot(0);
  uint64_t before = stats.div_by_zero;
  Slot r = run(code_->instrs(), code_->num_regs, in, stats);
  return stats.div_by_zero == before ? r : int_slot(0);
}

std::string Program::disassemble() const {
  const bool jump_mode = code_ && code_->jump_mode;
  const bool may_divide_by_zero = code_ && code_->may_divide_by_zero;
  const uint32_t num_regs = code_ ? code_->num_regs : 0;
  const Instr* code = code_ ? code_->instrs() : nullptr;
  const size_t size = code_ ? code_->size : 0;
  std::string out = kind() == Kind::Predicate ? "; predicate" : "; value ";
  if (kind() == Kind::Value) out += to_string(result_type());
  if (always_true())
    out += ", always true";
  else if (kind() == Kind::Predicate)
    out += jump_mode ? ", jumping code" : ", value code";
  if (may_divide_by_zero) out += ", may divide by zero";
  out += ", registers: " + std::to_string(num_regs) + "\n";
  auto reg = [](uint32_t r) { return "r" + std::to_string(r); };
  auto mem = [](uint32_t m) {
    return "row" + std::to_string(m >> 31) + "[" + std::to_string(m & kOffsetMask) + "]";
  };
  for (size_t i = 0; i < size; ++i) {
    const Instr& in = code[i];
    std::string line = std::to_string(i);
    line.insert(0, line.size() < 4 ? 4 - line.size() : 0, ' ');
    line += "  ";
    if (in.op < kFirstSet) {
      bool is_ret = in.op >= kFirstRet;
      int i = is_ret ? in.op - kFirstRet : in.op;
      Cond c = Cond(i / kBrForms);
      Form f = Form(i % kBrForms);
      line += is_ret ? "ret." : "br.";
      line += kCondNames[int(c)];
      line += ' ';
      line += f == RR || f == RK ? reg(in.x) : mem(in.x);
      line += ", ";
      if (f == RR || f == MR)
        line += reg(in.y);
      else if (f == MM)
        line += mem(in.y);
      else
        append_const(line, in.k, cond_type(c));
      if (!is_ret) line += " -> " + std::to_string(in.target);
    } else if (in.op < kFirstOther) {
      Cond c = Cond((in.op - kFirstSet) / kSetForms);
      Form f = Form((in.op - kFirstSet) % kSetForms);
      line += reg(in.dst) + " = " + kCondNames[int(c)] + " " + reg(in.x) + ", ";
      if (f == RR)
        line += reg(in.y);
      else
        append_const(line, in.k, cond_type(c));
    } else {
      const OpInfo& info = kOpInfo[in.op - kFirstOther];
      switch (info.shape) {
        case Shape::Jump:
          line += std::string(info.name) + " -> " + std::to_string(in.target);
          break;
        case Shape::JumpReg:
          line += std::string(info.name) + " " + reg(in.x) + " -> " + std::to_string(in.target);
          break;
        case Shape::Plain:
          line += info.name;
          break;
        case Shape::RetReg:
          line += std::string(info.name) + " " + reg(in.x);
          break;
        case Shape::Const:
          line += reg(in.dst) + " = const ";
          append_const(line, in.k, Type(in.target));
          break;
        case Shape::Load:
          line += reg(in.dst) + " = load " + mem(in.x);
          break;
        case Shape::Dur:
          line += reg(in.dst) + " = dur";
          break;
        case Shape::Unary:
          line += reg(in.dst) + " = " + info.name + " " + reg(in.x);
          break;
        case Shape::Binary:
          line += reg(in.dst) + " = " + info.name + " " + reg(in.x) + ", " + reg(in.y);
          break;
        case Shape::BinK:
          line += reg(in.dst) + " = " + info.name + " " + reg(in.x) + ", ";
          append_const(line, in.k, info.ktype);
          break;
      }
    }
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace cayuga

// The LLVM ORC JIT backend of the expression IR (see jit.h for the contract).
//
// Pipeline of one compile request:
//  1. fold: constant subtrees are folded by running them through the interpreter, with exactly
//     Program's rule (a non-boolean node whose operands are all constants, except an INT `/` or
//     `%` by a constant zero, which must trap and be counted at run time);
//  2. normalize: the folded tree is checked (a malformed tree is refused, the caller keeps the
//     interpreter), references are resolved through the RefMapper, constants are moved to the
//     per-expression array, and the shape key is written;
//  3. cache lookup by shape key; on a miss, codegen → verify → optimize → add to the LLJIT in a
//     fresh ResourceTracker → look up the function address (this materializes the code).
//
// Optimization (measured with bench/jit_bench.cpp): the default OptLevel::Light runs EarlyCSE,
// InstCombine and SimplifyCFG on the IR and emits with the -O2 code generator: as fast as the
// full O2 IR pipeline on these small functions for about half its compile time. None (no IR
// passes, -O0 FastISel) compiles fastest and runs ~1.5x slower than Light.
//
// Codegen mirrors the interpreter's semantics (expr.cpp) operation by operation:
//  - INT +, -, *, unary - and ABS use plain (wrapping) add/sub/mul, no nsw/nuw flags;
//  - INT `/` and `%` by a non-constant divisor: divisor 0 gives 0 and counts a trap, -1 gives
//    0 - x (resp. 0), otherwise sdiv/srem on a divisor made safe first (no UB in the IR);
//  - FLOAT ops carry no fast-math flags, the target forbids FMA contraction, `%` and `^` call
//    the same libm fmod/pow the interpreter calls (through helpers, so LLVM cannot rewrite them
//    as libcalls), ABS is llvm.fabs, comparisons are ordered except `!=` (une);
//  - string `=`/`!=` compare ids; ordering, CONTAINS, SIMILARITY, LENGTH, LOWER, UPPER call
//    the extern "C" helpers below (registered as absolute symbols in the main JITDylib);
//  - the trap counter is an SSA value: AND/OR short-circuit only over operands that cannot
//    trap (like the interpreter), so every counter update sits on a path that dominates the
//    exit. A predicate returns `cond && traps == 0`, a value `traps == 0 ? v : 0`, and
//    *div_by_zero += traps.
#include "compiler/jit/jit.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <utility>

#include <llvm/ExecutionEngine/Orc/Core.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Transforms/InstCombine/InstCombine.h>
#include <llvm/Transforms/Scalar/EarlyCSE.h>
#include <llvm/Transforms/Scalar/SimplifyCFG.h>

// ---- Runtime helpers called by generated code ---------------------------------------------------
// Plain C ABI; their addresses are registered under these names in the JIT's main JITDylib.
extern "C" {

// Bytewise (unsigned) string order of two interned ids, shorter prefix first: <0, 0, >0.
// Same definition as the interpreter's compare_strings.
int32_t cayuga_jit_strcmp(uint64_t a, uint64_t b) {
  if (a == b) return 0;
  std::string_view x = cayuga::interned(a), y = cayuga::interned(b);
  size_t n = std::min(x.size(), y.size());
  if (int r = n ? std::memcmp(x.data(), y.data(), n) : 0) return r < 0 ? -1 : 1;
  return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
}
int64_t cayuga_jit_contains(uint64_t s, uint64_t pattern) {
  return cayuga::fn_contains(s, pattern);
}
double cayuga_jit_similarity(uint64_t a, uint64_t b) {
  return cayuga::fn_similarity(a, b);
}
int64_t cayuga_jit_length(uint64_t s) {
  return cayuga::fn_length(s);
}
uint64_t cayuga_jit_lower(uint64_t s) {
  return cayuga::fn_lower(s);
}
uint64_t cayuga_jit_upper(uint64_t s) {
  return cayuga::fn_upper(s);
}
double cayuga_jit_fmod(double x, double y) {
  return std::fmod(x, y);
}
double cayuga_jit_pow(double x, double y) {
  return std::pow(x, y);
}

}  // extern "C"

namespace cayuga::jit {

namespace {

// ---- 1. Constant folding (Program's rule, through the interpreter) -----------------------------

bool is_int_division(const TExpr& e) {
  return (e.op == TOp::Div || e.op == TOp::Mod) && e.type == Type::Int && e.kids.size() == 2;
}

TExpr fold(const TExpr& e) {
  TExpr out = e.shell();
  out.kids.reserve(e.kids.size());
  bool all_const = !e.kids.empty();
  for (const TExpr& k : e.kids) {
    out.kids.push_back(fold(k));
    all_const = all_const && out.kids.back().op == TOp::Const;
  }
  if (all_const && !out.is_bool() && !(is_int_division(out) && out.kids[1].value.i == 0)) {
    EvalStats unused;
    TExpr c;
    c.op = TOp::Const;
    c.type = out.type;
    c.value = Program::value(out, single_row_ref).eval_value(EvalInput{}, unused);
    return c;
  }
  return out;
}

// ---- 2. Normalized tree and shape key ----------------------------------------------------------

// Divisor class of an INT `/` or `%`: part of the shape, so the code knows whether to check.
enum class Div : uint8_t { Var, Zero, MinusOne, Other };

bool is_bool_op(TOp op) {
  return op == TOp::True || op == TOp::And || op == TOp::Or || op == TOp::Not ||
         (op >= TOp::Eq && op <= TOp::Ge);
}

struct Node {
  TOp op = TOp::True;
  Type type = Type::Int;
  Func func = Func::Contains;
  uint8_t row = 0;      // Ref
  uint32_t offset = 0;  // Ref: slot; Const: index into the constants array
  Div div = Div::Var;   // INT Div/Mod
  bool trap = false;    // this subtree may divide an INT by zero
  std::vector<Node> kids;
  bool is_bool() const { return is_bool_op(op); }
};

struct Normalizer {
  const RefMapper& refs;
  std::string& key;
  std::vector<Slot>& consts;
  std::string error;

  void put8(uint8_t v) { key.push_back(char(v)); }
  void put32(uint32_t v) {
    for (int i = 0; i < 4; ++i) key.push_back(char(v >> (8 * i)));
  }

  bool fail(const std::string& why) {
    if (error.empty()) error = why;
    return false;
  }

  // A value operand of type `want` (or any value type when want is null).
  bool value(const TExpr& e, Node& n, const Type* want) {
    if (is_bool_op(e.op)) return fail("a boolean used as a value operand");
    if (want && e.type != *want)
      return fail(std::string("operand of type ") + to_string(e.type) + ", expected " +
                  to_string(*want));
    return node(e, n);
  }

  bool node(const TExpr& e, Node& n) {
    n.op = e.op;
    n.type = e.type;
    n.func = e.func;
    put8(uint8_t(e.op));
    if (!is_bool_op(e.op)) put8(uint8_t(e.type));
    auto arity = [&](size_t k) {
      return e.kids.size() == k ||
             fail(std::string("malformed expression: wrong operand count (") + dump(e) + ")");
    };
    auto kids = [&](size_t k) { n.kids.resize(k); };
    const Type I = Type::Int, F = Type::Float, S = Type::String;
    bool ok = true;
    switch (e.op) {
      case TOp::Const:
        if (!arity(0)) return false;
        n.offset = uint32_t(consts.size());
        consts.push_back(e.value);
        return true;
      case TOp::Ref: {
        if (!arity(0)) return false;
        SlotRef s = refs(e.side, e.index);
        n.row = s.row & 1;
        n.offset = s.offset;
        put8(n.row);
        put32(n.offset);
        return true;
      }
      case TOp::Dur:
        return arity(0) && (e.type == I || fail("DUR must be INT"));
      case TOp::True:
        return arity(0);
      case TOp::ToFloat:
        if (!arity(1) || e.type != F) return fail("malformed ToFloat");
        kids(1);
        ok = value(e.kids[0], n.kids[0], &I);
        break;
      case TOp::Neg:
        if (!arity(1) || (e.type != I && e.type != F)) return fail("malformed negation");
        kids(1);
        ok = value(e.kids[0], n.kids[0], &e.type);
        break;
      case TOp::Add:
      case TOp::Sub:
      case TOp::Mul:
      case TOp::Div:
      case TOp::Mod:
        if (!arity(2) || (e.type != I && e.type != F)) return fail("malformed arithmetic");
        kids(2);
        ok = value(e.kids[0], n.kids[0], &e.type) && value(e.kids[1], n.kids[1], &e.type);
        if (ok && is_int_division(e)) {
          const TExpr& d = e.kids[1];
          n.div = d.op != TOp::Const ? Div::Var
                  : d.value.i == 0   ? Div::Zero
                  : d.value.i == -1  ? Div::MinusOne
                                     : Div::Other;
          n.trap = n.div == Div::Var || n.div == Div::Zero;
          put8(uint8_t(n.div));
        }
        break;
      case TOp::Pow:
        if (!arity(2) || e.type != F) return fail("malformed ^");
        kids(2);
        ok = value(e.kids[0], n.kids[0], &F) && value(e.kids[1], n.kids[1], &F);
        break;
      case TOp::Call: {
        put8(uint8_t(e.func));
        switch (e.func) {
          case Func::Contains:
          case Func::Similarity:
            if (!arity(2) || e.type != (e.func == Func::Contains ? I : F))
              return fail("malformed call");
            kids(2);
            ok = value(e.kids[0], n.kids[0], &S) && value(e.kids[1], n.kids[1], &S);
            break;
          case Func::Length:
          case Func::Lower:
          case Func::Upper:
            if (!arity(1) || e.type != (e.func == Func::Length ? I : S))
              return fail("malformed call");
            kids(1);
            ok = value(e.kids[0], n.kids[0], &S);
            break;
          case Func::Abs:
            if (!arity(1) || (e.type != I && e.type != F)) return fail("malformed ABS");
            kids(1);
            ok = value(e.kids[0], n.kids[0], &e.type);
            break;
          case Func::Min:
          case Func::Max:
            if (!arity(2)) return false;
            kids(2);
            ok = value(e.kids[0], n.kids[0], &e.type) && value(e.kids[1], n.kids[1], &e.type);
            break;
          default:
            return fail("unknown function");
        }
        break;
      }
      case TOp::Eq:
      case TOp::Ne:
      case TOp::Lt:
      case TOp::Le:
      case TOp::Gt:
      case TOp::Ge:
        if (!arity(2)) return false;
        kids(2);
        ok = value(e.kids[0], n.kids[0], nullptr) &&
             value(e.kids[1], n.kids[1], &e.kids[0].type);
        if (ok) {
          n.type = e.kids[0].type;  // the operand type decides the comparison
          put8(uint8_t(n.type));
        }
        break;
      case TOp::And:
      case TOp::Or:
        if (e.kids.empty()) return fail("malformed AND/OR without operands");
        put32(uint32_t(e.kids.size()));
        kids(e.kids.size());
        for (size_t i = 0; ok && i < e.kids.size(); ++i) ok = node(e.kids[i], n.kids[i]);
        break;
      case TOp::Not:
        if (!arity(1)) return false;
        kids(1);
        ok = node(e.kids[0], n.kids[0]);
        break;
      default:
        return fail("unknown operator");
    }
    for (const Node& k : n.kids) n.trap = n.trap || k.trap;
    return ok;
  }
};

bool normalize(Program::Kind kind, const TExpr& e, const RefMapper& refs, std::string& key,
               std::vector<Slot>& consts, Node& root, std::string* error) {
  key.clear();
  consts.clear();
  key.push_back(kind == Program::Kind::Predicate ? 'P' : 'V');
  TExpr folded = fold(e);
  Normalizer n{refs, key, consts, {}};
  if (!n.node(folded, root)) {
    if (error) *error = n.error.empty() ? "malformed expression" : n.error;
    return false;
  }
  return true;
}

// ---- 3. Code generation ------------------------------------------------------------------------

struct Codegen {
  llvm::LLVMContext& ctx;
  llvm::Module& mod;
  llvm::IRBuilder<> b;
  llvm::Function* fn = nullptr;
  llvm::Type* i64;
  llvm::Type* f64;
  llvm::Value* rows_arg = nullptr;
  llvm::Value* dur_arg = nullptr;
  llvm::Value* consts_arg = nullptr;
  llvm::Value* dbz_arg = nullptr;
  llvm::Value* row_ptr[2] = {nullptr, nullptr};
  llvm::Value* traps = nullptr;  // SSA count of INT divisions by zero so far

  Codegen(llvm::LLVMContext& c, llvm::Module& m)
      : ctx(c), mod(m), b(c), i64(llvm::Type::getInt64Ty(c)), f64(llvm::Type::getDoubleTy(c)) {}

  llvm::Type* ty(Type t) { return t == Type::Float ? f64 : i64; }

  llvm::FunctionCallee helper(const char* name, llvm::Type* ret, std::vector<llvm::Type*> args,
                              bool readonly) {
    auto* ft = llvm::FunctionType::get(ret, args, false);
    llvm::FunctionCallee f = mod.getOrInsertFunction(name, ft);
    if (auto* decl = llvm::dyn_cast<llvm::Function>(f.getCallee())) {
      decl->addFnAttr(llvm::Attribute::NoUnwind);
      decl->addFnAttr(llvm::Attribute::WillReturn);
      // The helpers never touch memory the generated code can see (rows, constants, counter);
      // the pure ones (only reading the string table) may be removed when unused and merged
      // when repeated. LOWER/UPPER may intern a string (a write the IR cannot see).
      decl->setMemoryEffects(llvm::MemoryEffects::inaccessibleMemOnly(
          readonly ? llvm::ModRefInfo::Ref : llvm::ModRefInfo::ModRef));
    }
    return f;
  }

  llvm::Value* call(const char* name, llvm::Type* ret, std::vector<llvm::Value*> args,
                    bool readonly = true) {
    std::vector<llvm::Type*> types;
    for (llvm::Value* a : args) types.push_back(a->getType());
    return b.CreateCall(helper(name, ret, types, readonly), args);
  }

  void build(Program::Kind kind, const Node& root, const std::string& name) {
    // (const Slot* const* rows, int64 dur, const Slot* consts, uint64* div_by_zero)
    llvm::Type* ptr = llvm::PointerType::get(ctx, 0);
    auto* ft = llvm::FunctionType::get(i64, {ptr, i64, ptr, ptr}, false);
    fn = llvm::Function::Create(ft, llvm::Function::ExternalLinkage, name, mod);
    fn->addFnAttr(llvm::Attribute::NoUnwind);
    for (unsigned a : {0u, 2u}) {
      fn->addParamAttr(a, llvm::Attribute::NoAlias);
      fn->addParamAttr(a, llvm::Attribute::ReadOnly);
      fn->addParamAttr(a, llvm::Attribute::NoCapture);
    }
    fn->addParamAttr(3, llvm::Attribute::NoAlias);
    fn->addParamAttr(3, llvm::Attribute::NoCapture);
    rows_arg = fn->getArg(0);
    dur_arg = fn->getArg(1);
    consts_arg = fn->getArg(2);
    dbz_arg = fn->getArg(3);
    b.SetInsertPoint(llvm::BasicBlock::Create(ctx, "entry", fn));
    traps = b.getInt64(0);
    bool used[2] = {false, false};
    mark_rows(root, used);
    for (int r = 0; r < 2; ++r)
      if (used[r])
        row_ptr[r] = b.CreateLoad(ptr, b.CreateConstInBoundsGEP1_64(ptr, rows_arg, r),
                                  r ? "row1" : "row0");

    llvm::Value* result;
    if (kind == Program::Kind::Predicate) {
      result = b.CreateZExt(cond(root), i64);
    } else {
      result = root.is_bool() ? b.CreateZExt(cond(root), i64) : value(root);
      if (result->getType() != i64) result = b.CreateBitCast(result, i64);
    }
    if (root.trap) {
      llvm::Value* old = b.CreateLoad(i64, dbz_arg);
      b.CreateStore(b.CreateAdd(old, traps), dbz_arg);
      llvm::Value* clean = b.CreateICmpEQ(traps, b.getInt64(0));
      result = b.CreateSelect(clean, result, b.getInt64(0));
    }
    b.CreateRet(result);
  }

  static void mark_rows(const Node& n, bool used[2]) {
    if (n.op == TOp::Ref) used[n.row] = true;
    for (const Node& k : n.kids) mark_rows(k, used);
  }

  llvm::Value* load_slot(llvm::Value* base, uint32_t index, Type t) {
    return b.CreateLoad(ty(t), b.CreateConstInBoundsGEP1_64(i64, base, index));
  }

  // INT / and % (the interpreter's DivI/ModI/DivIK/ModIK).
  llvm::Value* int_division(const Node& n, llvm::Value* x, llvm::Value* y) {
    bool is_div = n.op == TOp::Div;
    llvm::Value* zero = b.getInt64(0);
    switch (n.div) {
      case Div::Zero:
        traps = b.CreateAdd(traps, b.getInt64(1));
        return zero;
      case Div::MinusOne:
        return is_div ? b.CreateSub(zero, x) : zero;
      case Div::Other:  // a constant neither 0 nor -1: the division is defined
        return is_div ? b.CreateSDiv(x, y) : b.CreateSRem(x, y);
      case Div::Var:
        break;
    }
    llvm::Value* is_zero = b.CreateICmpEQ(y, zero);
    llvm::Value* is_m1 = b.CreateICmpEQ(y, b.getInt64(-1));
    traps = b.CreateAdd(traps, b.CreateZExt(is_zero, i64));
    llvm::Value* safe_y = b.CreateSelect(b.CreateOr(is_zero, is_m1), b.getInt64(1), y);
    if (is_div) {
      llvm::Value* q = b.CreateSDiv(x, safe_y);
      return b.CreateSelect(is_zero, zero, b.CreateSelect(is_m1, b.CreateSub(zero, x), q));
    }
    llvm::Value* r = b.CreateSRem(x, safe_y);
    return b.CreateSelect(b.CreateOr(is_zero, is_m1), zero, r);
  }

  // A value node: i64 (INT, STRING id) or double (FLOAT).
  llvm::Value* value(const Node& n) {
    if (n.is_bool()) return b.CreateZExt(cond(n), i64);
    bool fl = n.type == Type::Float;
    switch (n.op) {
      case TOp::Const:
        return load_slot(consts_arg, n.offset, n.type);
      case TOp::Ref:
        return load_slot(row_ptr[n.row], n.offset, n.type);
      case TOp::Dur:
        return dur_arg;
      case TOp::ToFloat:
        return b.CreateSIToFP(value(n.kids[0]), f64);
      case TOp::Neg: {
        llvm::Value* x = value(n.kids[0]);
        return fl ? b.CreateFNeg(x) : b.CreateSub(b.getInt64(0), x);
      }
      case TOp::Add:
      case TOp::Sub:
      case TOp::Mul:
      case TOp::Div:
      case TOp::Mod:
      case TOp::Pow: {
        llvm::Value* x = value(n.kids[0]);
        llvm::Value* y = value(n.kids[1]);
        switch (n.op) {
          case TOp::Add:
            return fl ? b.CreateFAdd(x, y) : b.CreateAdd(x, y);
          case TOp::Sub:
            return fl ? b.CreateFSub(x, y) : b.CreateSub(x, y);
          case TOp::Mul:
            return fl ? b.CreateFMul(x, y) : b.CreateMul(x, y);
          case TOp::Div:
            return fl ? b.CreateFDiv(x, y) : int_division(n, x, y);
          case TOp::Mod:
            return fl ? call("cayuga_jit_fmod", f64, {x, y}) : int_division(n, x, y);
          default:
            return call("cayuga_jit_pow", f64, {x, y});
        }
      }
      case TOp::Call:
        return function(n);
      default:
        return b.getInt64(0);  // unreachable: normalize() refuses other nodes
    }
  }

  llvm::Value* function(const Node& n) {
    switch (n.func) {
      case Func::Contains:
        return call("cayuga_jit_contains", i64, {value(n.kids[0]), value(n.kids[1])});
      case Func::Similarity:
        return call("cayuga_jit_similarity", f64, {value(n.kids[0]), value(n.kids[1])});
      case Func::Length:
        return call("cayuga_jit_length", i64, {value(n.kids[0])});
      case Func::Lower:
        return call("cayuga_jit_lower", i64, {value(n.kids[0])}, false);
      case Func::Upper:
        return call("cayuga_jit_upper", i64, {value(n.kids[0])}, false);
      case Func::Abs: {
        llvm::Value* x = value(n.kids[0]);
        if (n.type == Type::Float)
          return b.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x);
        llvm::Value* neg = b.CreateICmpSLT(x, b.getInt64(0));
        return b.CreateSelect(neg, b.CreateSub(b.getInt64(0), x), x);
      }
      case Func::Min:
      case Func::Max: {
        // MIN(x, y) = y < x ? y : x; MAX(x, y) = y > x ? y : x.
        llvm::Value* x = value(n.kids[0]);
        llvm::Value* y = value(n.kids[1]);
        bool is_min = n.func == Func::Min;
        llvm::Value* take_y;
        switch (n.type) {
          case Type::Int:
            take_y = is_min ? b.CreateICmpSLT(y, x) : b.CreateICmpSGT(y, x);
            break;
          case Type::Float:
            take_y = is_min ? b.CreateFCmpOLT(y, x) : b.CreateFCmpOGT(y, x);
            break;
          default: {
            llvm::Value* c = call("cayuga_jit_strcmp", b.getInt32Ty(), {y, x});
            take_y = is_min ? b.CreateICmpSLT(c, b.getInt32(0)) : b.CreateICmpSGT(c, b.getInt32(0));
            break;
          }
        }
        return b.CreateSelect(take_y, y, x);
      }
    }
    return b.getInt64(0);
  }

  llvm::Value* compare(const Node& n) {
    llvm::Value* x = value(n.kids[0]);
    llvm::Value* y = value(n.kids[1]);
    int d = int(n.op) - int(TOp::Eq);  // Eq Ne Lt Le Gt Ge
    using P = llvm::CmpInst::Predicate;
    switch (n.type) {
      case Type::Int: {
        static constexpr P kI[] = {P::ICMP_EQ,  P::ICMP_NE,  P::ICMP_SLT,
                                   P::ICMP_SLE, P::ICMP_SGT, P::ICMP_SGE};
        return b.CreateICmp(kI[d], x, y);
      }
      case Type::Float: {
        // C++ semantics on doubles: `!=` is unordered-or-not-equal, the others ordered.
        static constexpr P kF[] = {P::FCMP_OEQ, P::FCMP_UNE, P::FCMP_OLT,
                                   P::FCMP_OLE, P::FCMP_OGT, P::FCMP_OGE};
        return b.CreateFCmp(kF[d], x, y);
      }
      case Type::String: {
        if (d < 2) return b.CreateICmp(d == 0 ? P::ICMP_EQ : P::ICMP_NE, x, y);
        static constexpr P kS[] = {P::ICMP_SLT, P::ICMP_SLE, P::ICMP_SGT, P::ICMP_SGE};
        llvm::Value* c = call("cayuga_jit_strcmp", b.getInt32Ty(), {x, y});
        return b.CreateICmp(kS[d - 2], c, b.getInt32(0));
      }
    }
    return b.getFalse();
  }

  // A boolean (i1). AND/OR skip their remaining operands only when none of those may trap.
  llvm::Value* cond(const Node& n) {
    switch (n.op) {
      case TOp::True:
        return b.getTrue();
      case TOp::Not:
        return b.CreateNot(cond(n.kids[0]));
      case TOp::And:
      case TOp::Or: {
        bool is_and = n.op == TOp::And;
        size_t k = n.kids.size();
        std::vector<bool> trap_after(k + 1, false);
        for (size_t i = k; i-- > 0;) trap_after[i] = trap_after[i + 1] || n.kids[i].trap;
        llvm::Value* acc = cond(n.kids[0]);
        llvm::BasicBlock* done = nullptr;
        std::vector<std::pair<llvm::Value*, llvm::BasicBlock*>> incoming;
        for (size_t i = 1; i < k; ++i) {
          if (!trap_after[i]) {
            // Short-circuit: reaching the next operand means acc is true (AND) / false (OR),
            // so the result is that operand's value.
            if (!done) done = llvm::BasicBlock::Create(ctx, is_and ? "and.done" : "or.done", fn);
            llvm::BasicBlock* next =
                llvm::BasicBlock::Create(ctx, is_and ? "and.next" : "or.next", fn);
            incoming.emplace_back(acc, b.GetInsertBlock());
            if (is_and)
              b.CreateCondBr(acc, next, done);
            else
              b.CreateCondBr(acc, done, next);
            b.SetInsertPoint(next);
            acc = cond(n.kids[i]);
          } else {
            llvm::Value* v = cond(n.kids[i]);
            acc = is_and ? b.CreateAnd(acc, v) : b.CreateOr(acc, v);
          }
        }
        if (!done) return acc;
        incoming.emplace_back(acc, b.GetInsertBlock());
        b.CreateBr(done);
        b.SetInsertPoint(done);
        llvm::PHINode* phi = b.CreatePHI(b.getInt1Ty(), unsigned(incoming.size()));
        for (auto& [v, bb] : incoming) phi->addIncoming(v, bb);
        return phi;
      }
      default:
        if (n.op >= TOp::Eq && n.op <= TOp::Ge) return compare(n);
        // A value used as a condition: non-zero (non-empty) is true.
        llvm::Value* v = value(n);
        if (n.type == Type::Float)
          return b.CreateFCmpUNE(v, llvm::ConstantFP::get(f64, 0.0));
        return b.CreateICmpNE(v, b.getInt64(0));
    }
  }
};

std::string error_text(llvm::Error e) {
  return llvm::toString(std::move(e));
}

}  // namespace

// ---- The engine --------------------------------------------------------------------------------

struct Shape {
  std::shared_ptr<Jit::Impl> impl;  // keeps the LLJIT alive while the code is in use
  std::string key;
  llvm::orc::ResourceTrackerSP tracker;
  void* fn = nullptr;
  ~Shape();
};

struct Jit::Impl {
  std::mutex mu;
  Options options;
  std::unique_ptr<llvm::TargetMachine> tm;  // for the optimizer's target info (under mu)
  std::unique_ptr<llvm::orc::LLJIT> lljit;
  struct Entry {
    std::weak_ptr<Shape> shape;
    const Shape* raw = nullptr;
  };
  std::unordered_map<std::string, Entry> cache;
  Stats stats;
  uint64_t next_id = 0;
  std::string last_ir;

  ~Impl() {
    // Every Shape holds a reference on Impl, so no code is loaded any more; the LLJIT goes
    // after the cache (declaration order reversed).
  }

  void optimize(llvm::Module& m) {
    if (options.opt == OptLevel::None) return;
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PassBuilder pb(tm.get());
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    if (options.opt == OptLevel::O2) {
      llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O2);
      mpm.run(m, mam);
      return;
    }
    llvm::FunctionPassManager fpm;
    fpm.addPass(llvm::EarlyCSEPass());
    fpm.addPass(llvm::InstCombinePass());
    fpm.addPass(llvm::SimplifyCFGPass());
    for (llvm::Function& f : m)
      if (!f.isDeclaration()) fpm.run(f, fam);
  }

  // Compiles one shape; called with mu held.
  void* compile_shape(Program::Kind kind, const Node& root, llvm::orc::ResourceTrackerSP& rt,
                      std::string* error) {
    std::string name = "cayuga_expr_" + std::to_string(next_id++);
    auto ctx = std::make_unique<llvm::LLVMContext>();
    auto mod = std::make_unique<llvm::Module>(name, *ctx);
    mod->setDataLayout(lljit->getDataLayout());
    mod->setTargetTriple(lljit->getTargetTriple().str());
    Codegen cg(*ctx, *mod);
    cg.build(kind, root, name);
    std::string verify;
    llvm::raw_string_ostream vs(verify);
    if (llvm::verifyModule(*mod, &vs)) {
      if (error) *error = "JIT: generated IR does not verify: " + vs.str();
      return nullptr;
    }
    optimize(*mod);
    if (options.keep_ir) {
      last_ir.clear();
      llvm::raw_string_ostream irs(last_ir);
      mod->print(irs, nullptr);
    }
    rt = lljit->getMainJITDylib().createResourceTracker();
    if (llvm::Error e =
            lljit->addIRModule(rt, llvm::orc::ThreadSafeModule(std::move(mod), std::move(ctx)))) {
      if (error) *error = "JIT: " + error_text(std::move(e));
      llvm::consumeError(rt->remove());
      rt = nullptr;
      return nullptr;
    }
    llvm::Expected<llvm::orc::ExecutorAddr> addr = lljit->lookup(name);
    if (!addr) {
      if (error) *error = "JIT: " + error_text(addr.takeError());
      llvm::consumeError(rt->remove());
      rt = nullptr;
      return nullptr;
    }
    return addr->toPtr<void*>();
  }
};

Shape::~Shape() {
  std::lock_guard lock(impl->mu);
  auto it = impl->cache.find(key);
  if (it != impl->cache.end() && it->second.raw == this) impl->cache.erase(it);
  if (tracker) llvm::consumeError(tracker->remove());
  --impl->stats.live_shapes;
  ++impl->stats.released;
}

const std::string& CompiledExpr::shape_key() const {
  static const std::string kEmpty;
  return shape_ ? shape_->key : kEmpty;
}

CompiledExpr::CompiledExpr(const CompiledExpr&) = default;
CompiledExpr::CompiledExpr(CompiledExpr&& o) noexcept
    : shape_(std::move(o.shape_)),
      fn_(std::exchange(o.fn_, nullptr)),
      consts_(std::move(o.consts_)),
      kind_(o.kind_),
      result_type_(o.result_type_) {}
CompiledExpr& CompiledExpr::operator=(const CompiledExpr&) = default;
CompiledExpr& CompiledExpr::operator=(CompiledExpr&& o) noexcept {
  if (this != &o) {
    shape_ = std::move(o.shape_);
    fn_ = std::exchange(o.fn_, nullptr);
    consts_ = std::move(o.consts_);
    kind_ = o.kind_;
    result_type_ = o.result_type_;
  }
  return *this;
}
CompiledExpr::~CompiledExpr() = default;

void CompiledExpr::reset() {
  shape_.reset();
  fn_ = nullptr;
  consts_.clear();
}

Jit::Jit(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Jit::~Jit() = default;

std::unique_ptr<Jit> Jit::create(std::string* error, Options options) {
  auto set_error = [&](std::string why) {
    if (error) *error = std::move(why);
    return nullptr;
  };
  static std::once_flag once;
  static bool native_ok = false;
  std::call_once(once, [] {
    native_ok = !llvm::InitializeNativeTarget() && !llvm::InitializeNativeTargetAsmPrinter();
  });
  if (!native_ok) return set_error("JIT: no native target in this LLVM build");

  auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!jtmb) return set_error("JIT: cannot detect the host: " + error_text(jtmb.takeError()));
  // No FMA contraction: a*b+c must round twice, as in the interpreter.
  jtmb->getOptions().AllowFPOpFusion = llvm::FPOpFusion::Strict;
  // Measured (bench/jit_bench.cpp): the -O2 code generator (SelectionDAG, greedy register
  // allocation) is worth ~1.5 ns per evaluation of the complex predicate over the fast -O0 one;
  // the O2 IR pipeline adds nothing over Light's three passes but doubles the compile time.
  jtmb->setCodeGenOptLevel(options.opt == OptLevel::None ? llvm::CodeGenOptLevel::None
                                                         : llvm::CodeGenOptLevel::Default);
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  auto tm = jtmb->createTargetMachine();
  if (!tm) return set_error("JIT: no target machine: " + error_text(tm.takeError()));
  impl->tm = std::move(*tm);
  auto lljit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(*jtmb)).create();
  if (!lljit) return set_error("JIT: cannot create LLJIT: " + error_text(lljit.takeError()));
  impl->lljit = std::move(*lljit);

  llvm::orc::SymbolMap helpers;
  auto add = [&](const char* name, auto* fn) {
    helpers[impl->lljit->mangleAndIntern(name)] = llvm::orc::ExecutorSymbolDef(
        llvm::orc::ExecutorAddr::fromPtr(fn),
        llvm::JITSymbolFlags::Exported | llvm::JITSymbolFlags::Callable);
  };
  add("cayuga_jit_strcmp", &cayuga_jit_strcmp);
  add("cayuga_jit_contains", &cayuga_jit_contains);
  add("cayuga_jit_similarity", &cayuga_jit_similarity);
  add("cayuga_jit_length", &cayuga_jit_length);
  add("cayuga_jit_lower", &cayuga_jit_lower);
  add("cayuga_jit_upper", &cayuga_jit_upper);
  add("cayuga_jit_fmod", &cayuga_jit_fmod);
  add("cayuga_jit_pow", &cayuga_jit_pow);
  if (llvm::Error e =
          impl->lljit->getMainJITDylib().define(llvm::orc::absoluteSymbols(std::move(helpers))))
    return set_error("JIT: cannot define the runtime helpers: " + error_text(std::move(e)));
  return std::unique_ptr<Jit>(new Jit(std::move(impl)));
}

bool Jit::shape_of(Program::Kind kind, const TExpr& e, const RefMapper& refs, std::string* key,
                   std::vector<Slot>* consts, std::string* error) {
  std::string k;
  std::vector<Slot> c;
  Node root;
  if (!normalize(kind, e, refs, k, c, root, error)) return false;
  if (key) *key = std::move(k);
  if (consts) *consts = std::move(c);
  return true;
}

CompiledExpr Jit::compile_predicate(const TExpr& e, const RefMapper& refs, std::string* error) {
  return compile(Program::Kind::Predicate, e, refs, error);
}

CompiledExpr Jit::compile_value(const TExpr& e, const RefMapper& refs, std::string* error) {
  return compile(Program::Kind::Value, e, refs, error);
}

CompiledExpr Jit::compile(Program::Kind kind, const TExpr& e, const RefMapper& refs,
                          std::string* error) {
  CompiledExpr out;
  std::string key;
  Node root;
  std::vector<Slot> consts;
  if (!normalize(kind, e, refs, key, consts, root, error)) {
    std::lock_guard lock(impl_->mu);
    ++impl_->stats.failures;
    return out;
  }
  out.consts_ = FixedVector<Slot>(std::move(consts));
  out.kind_ = kind;
  out.result_type_ = kind == Program::Kind::Predicate || e.is_bool() ? Type::Int : e.type;

  std::lock_guard lock(impl_->mu);
  Impl& im = *impl_;
  if (auto it = im.cache.find(key); it != im.cache.end()) {
    if (std::shared_ptr<Shape> s = it->second.shape.lock()) {
      ++im.stats.cache_hits;
      out.fn_ = s->fn;
      out.shape_ = std::move(s);
      return out;
    }
  }
  auto start = std::chrono::steady_clock::now();
  llvm::orc::ResourceTrackerSP rt;
  void* fn = im.compile_shape(kind, root, rt, error);
  im.stats.compile_ms_total +=
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!fn) {
    ++im.stats.failures;
    out.consts_.clear();
    return out;
  }
  ++im.stats.compiles;
  ++im.stats.live_shapes;
  auto shape = std::make_shared<Shape>();
  shape->impl = impl_;
  shape->key = key;
  shape->tracker = std::move(rt);
  shape->fn = fn;
  im.cache[key] = Impl::Entry{shape, shape.get()};
  out.fn_ = fn;
  out.shape_ = std::move(shape);
  return out;
}

Jit::Stats Jit::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

std::string Jit::last_ir() const {
  std::lock_guard lock(impl_->mu);
  return impl_->last_ir;
}

}  // namespace cayuga::jit

// A JIT backend for the expression IR: typed expressions (compiler/typed.h) compiled to machine
// code with LLVM ORC (LLJIT), bit-identical to the interpreter of compiler/expr.h.
//
// Semantics are exactly those documented in expr.h (wrapping INT arithmetic, INT64_MIN / -1,
// INT `/` and `%` by zero counted and making the whole predicate false / the value 0, IEEE
// floats, string `=`/`!=` on interned ids, bytewise ordering, the fn_* built-ins). The
// differential fuzz test tests/jit/jit_test.cpp checks this against `Program`.
//
// Shapes. Constants are not baked into the code: an expression is reduced to its *shape* (the
// tree with constants replaced by typed placeholders, references by their resolved
// (row, offset), and for an INT `/` or `%` by a constant only the class of the divisor: zero,
// -1 or other) and the compiled function of a shape is cached. The constants travel in a
// per-expression array passed at each call, so 100k queries whose predicates differ only in
// constants share one function. Constant subtrees are folded first, through the interpreter
// itself, exactly as Program does.
//
// Lifetime. A CompiledExpr holds a reference on its shape; when the last CompiledExpr of a shape
// goes away, the shape's machine code is removed (each shape lives in its own ResourceTracker).
// A CompiledExpr keeps the JIT engine alive, so it may outlive the `Jit` object.
//
// Threads. compile_predicate / compile_value / stats may be called concurrently from any threads
// (e.g. a background compiler thread); they serialize on one internal mutex. Evaluating a
// CompiledExpr takes no lock and may run on any number of threads at once, concurrently with
// compiles and with the release of other shapes. Copying / destroying CompiledExpr objects is
// thread-safe like std::shared_ptr (distinct objects: yes; the same object: no).
//
// Failure. Nothing here throws or aborts on bad input: a host without a usable native target
// makes Jit::create return nullptr, and an expression the JIT cannot compile (malformed tree,
// LLVM error) yields an empty CompiledExpr with the reason; the caller keeps using the
// interpreter.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compiler/expr.h"
#include "compiler/fixed_vector.h"

namespace cayuga::jit {

// The generated code. `rows` are EvalInput::rows, `dur` EvalInput::dur, `consts` the constants
// of the expression in shape order, `div_by_zero` is incremented once per executed INT division
// or modulo by zero (EvalStats::div_by_zero). A predicate returns 0 or 1; a value returns the
// result slot's 64 bits.
using PredicateFn = int64_t (*)(const Slot* const* rows, int64_t dur, const Slot* consts,
                                uint64_t* div_by_zero);
using ValueFn = uint64_t (*)(const Slot* const* rows, int64_t dur, const Slot* consts,
                             uint64_t* div_by_zero);

struct Shape;  // one compiled function (opaque; defined in jit.cpp)

// A compiled expression: the shared code of its shape plus its own constants. Empty when
// default-constructed or when compilation failed. Cheap to copy (the code is shared).
class CompiledExpr {
 public:
  CompiledExpr() = default;
  // Out of line: the shared code reference is only touched inside jit.cpp, which is built
  // without RTTI (its std::shared_ptr control blocks have no typeinfo; keeping every use in one
  // translation unit keeps -fsanitize=vptr builds of the callers clean).
  CompiledExpr(const CompiledExpr&);
  CompiledExpr(CompiledExpr&&) noexcept;
  CompiledExpr& operator=(const CompiledExpr&);
  CompiledExpr& operator=(CompiledExpr&&) noexcept;
  ~CompiledExpr();

  bool valid() const { return fn_ != nullptr; }
  explicit operator bool() const { return valid(); }
  Program::Kind kind() const { return kind_; }
  Type result_type() const { return result_type_; }  // INT for predicates

  // Same contract as Program::eval_predicate / eval_value. Must be valid() and of that kind.
  bool eval_predicate(const EvalInput& in, EvalStats& stats) const {
    return reinterpret_cast<PredicateFn>(fn_)(in.rows, in.dur, consts_.data(),
                                              &stats.div_by_zero) != 0;
  }
  Slot eval_value(const EvalInput& in, EvalStats& stats) const {
    Slot s;
    s.s = reinterpret_cast<ValueFn>(fn_)(in.rows, in.dur, consts_.data(), &stats.div_by_zero);
    return s;
  }

  // Raw access, e.g. to call the code without an EvalInput. Valid while this object lives.
  PredicateFn predicate_fn() const { return reinterpret_cast<PredicateFn>(fn_); }
  ValueFn value_fn() const { return reinterpret_cast<ValueFn>(fn_); }
  const FixedVector<Slot>& consts() const { return consts_; }
  const std::string& shape_key() const;  // "" when empty

  // Drops this reference on the shape (the code is freed when it was the last one).
  void reset();

 private:
  friend class Jit;
  std::shared_ptr<const Shape> shape_;
  void* fn_ = nullptr;
  FixedVector<Slot> consts_;  // exact size: one CompiledExpr per compiled program
  Program::Kind kind_ = Program::Kind::Predicate;
  Type result_type_ = Type::Int;
};

class Jit {
 public:
  // How hard to optimize each shape (see the numbers in the report / bench/jit_bench.cpp).
  enum class OptLevel : uint8_t {
    None,   // no IR passes; codegen -O0 (FastISel): fastest compile, slowest code
    Light,  // early-cse, instcombine, simplifycfg; codegen -O2 (the default: see the bench)
    O2,     // the PassBuilder O2 module pipeline; codegen -O2 (no faster code, 2x compile)
  };
  struct Options {
    OptLevel opt = OptLevel::Light;
    bool keep_ir = false;  // keep the optimized IR of the last compiled shape for last_ir()
  };

  // The JIT for the host, or nullptr with the reason in *error (if not null).
  static std::unique_ptr<Jit> create(std::string* error, Options options);
  static std::unique_ptr<Jit> create(std::string* error) { return create(error, Options{}); }
  ~Jit();
  Jit(const Jit&) = delete;
  Jit& operator=(const Jit&) = delete;

  // Compiles (or finds in the shape cache) the code for `e`, referencing rows through `refs`
  // exactly as Program::predicate / Program::value would. On failure returns an empty
  // CompiledExpr and sets *error (if not null). Thread-safe.
  CompiledExpr compile_predicate(const TExpr& e, const RefMapper& refs,
                                 std::string* error = nullptr);
  CompiledExpr compile_value(const TExpr& e, const RefMapper& refs, std::string* error = nullptr);

  // The shape key of `e` and its constants in shape order (what the cache is keyed by), without
  // compiling. False with *error when the tree is malformed (the JIT would refuse it).
  static bool shape_of(Program::Kind kind, const TExpr& e, const RefMapper& refs,
                       std::string* key, std::vector<Slot>* consts, std::string* error);

  struct Stats {
    uint64_t compiles = 0;        // shapes compiled to machine code
    uint64_t cache_hits = 0;      // compile requests served by an already compiled shape
    uint64_t failures = 0;        // compile requests that failed
    uint64_t live_shapes = 0;     // shapes whose code is currently loaded
    uint64_t released = 0;        // shapes whose code was removed (last user gone)
    double compile_ms_total = 0;  // wall time spent building + optimizing + emitting code
  };
  Stats stats() const;

  // The optimized LLVM IR of the most recently compiled shape when Options::keep_ir, else "".
  std::string last_ir() const;

  struct Impl;  // defined in jit.cpp

 private:
  explicit Jit(std::shared_ptr<Impl> impl);
  CompiledExpr compile(Program::Kind kind, const TExpr& e, const RefMapper& refs,
                       std::string* error);
  std::shared_ptr<Impl> impl_;
};

}  // namespace cayuga::jit

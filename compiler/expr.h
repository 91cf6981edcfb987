// The predicate / schema-map IR and its interpreter: the reference semantics of CEL.md §3.
//
// A typed expression (compiler/typed.h) is lowered into a compact bytecode `Program` whose
// attribute references are already resolved to (row, slot offset): row 0 is the instance (or the
// single row of a FILTER/SELECT), row 1 the incoming event. The automaton compiler decides the
// layout and passes a `RefMapper`. The interpreter is the reference the JIT must match bit for bit.
//
// Semantics that are easy to get wrong, and are tested in tests/unit/expr_test.cpp:
//  - INT arithmetic wraps in two's complement (+, -, *, unary -, ABS); `/` truncates toward zero,
//    `%` takes the dividend's sign; INT64_MIN / -1 wraps to INT64_MIN and INT64_MIN % -1 is 0.
//  - An INT `/` or `%` by zero anywhere in a predicate makes the whole predicate false, whatever
//    its AND/OR/NOT structure: every atom of such a predicate is evaluated (no short-circuit past
//    a possible division by zero). In a value (SELECT item, FOLD aggregate) it makes the value 0
//    (0, 0.0, or "" for a STRING). Each occurrence is counted in EvalStats.
//  - FLOAT follows IEEE 754: x/0.0 is ±inf or NaN, comparisons with NaN are false except `!=`.
//  - `^` is C pow on doubles. Strings compare bytewise; `=`/`!=` on strings compare interned ids.
//  - A trapping INT `/` or `%` yields 0 and evaluation goes on; every executed division or modulo
//    by zero adds 1 to EvalStats::div_by_zero (so `1/0 + 2/0` counts 2).
//  - MIN(x, y) is `y < x ? y : x` and MAX(x, y) is `y > x ? y : x` for INT, FLOAT and STRING
//    (bytewise): the first argument wins unless the second is strictly smaller (larger). For
//    FLOAT this means a NaN second argument yields x, a NaN first argument yields NaN, and
//    MIN(0.0, -0.0) is 0.0. ABS(INT64_MIN) wraps to INT64_MIN; FLOAT ABS is fabs.
//  - LENGTH counts bytes; LOWER/UPPER map ASCII letters only; CONTAINS(s, '') is 1;
//    SIMILARITY is the overlap coefficient of byte 3-gram sets (a string shorter than 3 bytes is
//    its own single gram; an empty string on either side gives 0.0).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <functional>
#include <string>
#include <vector>

#include "compiler/typed.h"

namespace cayuga {

struct SlotRef {
  uint8_t row;      // 0: instance / single row, 1: incoming event
  uint32_t offset;  // slot index within that row
  bool operator==(const SlotRef&) const = default;
};
// For SharedArray<SlotRef>::Pool (compiler/fixed_vector.h).
inline uint64_t element_bits(const SlotRef& r) { return uint64_t{r.row} << 32 | r.offset; }

using RefMapper = std::function<SlotRef(Side side, uint32_t index)>;

// Maps First(i) → row 0 slot i; the mapper for FILTER and SELECT over one row.
SlotRef single_row_ref(Side side, uint32_t index);

struct EvalInput {
  const Slot* rows[2] = {nullptr, nullptr};
  int64_t dur = 0;
};

struct EvalStats {
  uint64_t div_by_zero = 0;
};

class Program {
 public:
  enum class Kind : uint8_t { Predicate, Value };

  static Program predicate(const TExpr& e, const RefMapper& refs);
  static Program value(const TExpr& e, const RefMapper& refs);

  // A default-constructed program is a predicate that is always false (a value: 0).
  Program() = default;
  // Copies share the bytecode and the source expression (both immutable, reference counted).
  Program(const Program& o);
  Program(Program&& o) noexcept;
  Program& operator=(const Program& o);
  Program& operator=(Program&& o) noexcept;
  ~Program();

  // Native code, installed by a JIT (runtime/jit_manager.h) possibly from another thread while
  // the program runs; from then on evaluation calls it instead of interpreting the bytecode.
  // The JIT guarantees identical results (tests/jit/jit_test.cpp). The Native object must
  // outlive every evaluation of this program.
  struct Native {
    int64_t (*predicate)(const Slot* const* rows, int64_t dur, const Slot* consts,
                         uint64_t* div_by_zero) = nullptr;
    uint64_t (*value)(const Slot* const* rows, int64_t dur, const Slot* consts,
                      uint64_t* div_by_zero) = nullptr;
    const Slot* consts = nullptr;
  };
  void install_native(const Native* native) const {
    native_.store(native, std::memory_order_release);
  }
  bool has_native() const { return native_.load(std::memory_order_acquire) != nullptr; }
  const Native* native() const { return native_.load(std::memory_order_acquire); }
  // The expression this program was compiled from, with references resolved to rows
  // (Side::First = row 0, Side::Second = row 1, index = slot offset), for a JIT to compile.
  // Rebuilt at each call from a compact copy (TRUE once released).
  TExpr source() const;
  // Drops the source expression once no JIT will need it (it is most of a program's memory).
  // Not thread-safe against source(): the JIT manager calls it from the thread that compiled it.
  // Other copies of the program keep theirs.
  void release_source() const;

  bool eval_predicate(const EvalInput& in, EvalStats& stats) const {
    if (const Native* n = native_.load(std::memory_order_acquire))
      return n->predicate(in.rows, in.dur, n->consts, &stats.div_by_zero) != 0;
    return interpret_predicate(in, stats);
  }
  Slot eval_value(const EvalInput& in, EvalStats& stats) const {
    if (const Native* n = native_.load(std::memory_order_acquire)) {
      Slot s;
      s.s = n->value(in.rows, in.dur, n->consts, &stats.div_by_zero);
      return s;
    }
    return interpret_value(in, stats);
  }
  // The bytecode interpreter alone (the reference semantics).
  bool interpret_predicate(const EvalInput& in, EvalStats& stats) const;
  Slot interpret_value(const EvalInput& in, EvalStats& stats) const;

  // Programs with the same bytecode (shared through a CodePool) compute the same function:
  // this identifies it, for a JIT that compiles each once.
  const void* code_identity() const { return code_; }
  Kind kind() const { return code_ ? code_->kind : Kind::Predicate; }
  Type result_type() const { return code_ ? code_->result_type : Type::Int; }
  // An empty / TRUE predicate.
  bool always_true() const { return code_ && code_->always_true; }
  std::string disassemble() const;

  // Bytecode; the layout is documented in expr.cpp next to the interpreter loop.
  struct Instr {
    uint16_t op;      // opcode (enum Op in expr.cpp)
    uint16_t dst;     // destination register
    uint32_t x;       // first operand: register number, or row << 31 | slot offset
    uint32_t y;       // second operand: register number, or row << 31 | slot offset
    uint32_t target;  // jump target (instruction index)
    Slot k;           // immediate constant
  };

 private:
  // The compiled program: one allocation holding these fields followed by `size` instructions.
  // Immutable once built and shared by every copy of the program (reference counted), so a
  // program is three pointers inline.
  struct alignas(Instr) Code {
    std::atomic<uint32_t> refs{1};
    uint32_t size = 0;      // instructions
    uint32_t num_regs = 0;  // registers the code uses; sized at compile time
    uint32_t hash = 0;      // of everything else (CodePool), once complete
    Kind kind = Kind::Predicate;
    Type result_type = Type::Int;
    bool always_true = false;
    bool may_divide_by_zero = false;
    bool jump_mode = false;  // predicate lowered to compare-and-branch code (no possible trap)
    const Instr* instrs() const { return reinterpret_cast<const Instr*>(this + 1); }
    Instr* instrs() { return reinterpret_cast<Instr*>(this + 1); }
  };
  static_assert(sizeof(Code) % alignof(Instr) == 0);
  // The source expression, shared by copies (reference counted): one allocation holding these
  // fields followed by the expression's `size` nodes in preorder, each with its operand count
  // (a third of the memory of the TExpr tree).
  struct alignas(8) Source {
    struct Node {
      TOp op;
      Type type;
      Side side;
      Func func;
      uint32_t index;
      uint32_t kids;
      Slot value;
    };
    std::atomic<uint32_t> refs{1};
    uint32_t size = 0;
    const Node* nodes() const { return reinterpret_cast<const Node*>(this + 1); }
    Node* nodes() { return reinterpret_cast<Node*>(this + 1); }
  };
  static_assert(sizeof(Source) % alignof(Source::Node) == 0);

  static Code* new_code(size_t size);
  static Source* new_source(const TExpr& e, const RefMapper& refs);
  static void flatten(const TExpr& e, const RefMapper& refs, std::vector<Source::Node>& out);
  static TExpr unflatten(const Source::Node*& at);
  static void unref(Code* c);
  static void unref(Source* s);

  Code* code_ = nullptr;               // null: the default program
  mutable Source* source_ = nullptr;   // null: TRUE (or released)
  mutable std::atomic<const Native*> native_{nullptr};
  friend struct ProgramBuilder;
  friend class CodePool;
};

// Shares bytecode between programs: a program passed to share() whose code is identical to that
// of an earlier one (same instructions, constants included) is switched to the earlier copy.
// The automaton keeps one pool, so the predicates and maps that many queries have in common (a
// NEXT predicate with the same factor, the same DUR bound) are stored once. The pool holds a
// reference on each code it knows; codes only it still uses are dropped when it grows.
// Not thread-safe: use it from the thread that builds the programs.
class CodePool {
 public:
  CodePool() = default;
  CodePool(const CodePool& o);
  CodePool(CodePool&& o) noexcept;
  CodePool& operator=(CodePool o) noexcept;
  ~CodePool();

  void share(Program& p);
  size_t size() const { return count_; }

 private:
  static uint64_t header(const Program::Code* c);
  static bool same(const Program::Code* a, const Program::Code* b);
  static uint32_t hash(const Program::Code* c);
  void insert(Program::Code* c);  // c is not in the pool; takes a reference
  void make_room();

  std::vector<Program::Code*> slots_;  // open addressing by Code::hash; null: empty
  size_t count_ = 0;
};

// The built-in functions of CEL.md §3, exposed for tests and the JIT's runtime calls.
int64_t fn_contains(uint64_t s, uint64_t pattern);
double fn_similarity(uint64_t a, uint64_t b);
int64_t fn_length(uint64_t s);
uint64_t fn_lower(uint64_t s);
uint64_t fn_upper(uint64_t s);

}  // namespace cayuga

// The CEL abstract syntax tree, owned by the project.
//
// The X3 grammar (lang/parser.cpp) parses into its own attribute types and converts them into
// these plain structs, so nothing outside lang/parser.cpp sees Spirit. Every node carries the
// source position of its first character; diagnostics in later stages point there.
//
// Predicates and terms share one node type (`Expr`): a comparison, AND, OR and NOT are just
// expression kinds whose operands are terms or predicates. The grammar keeps the two apart;
// the compiler checks types.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cayuga::ast {

// An optional value kept on the heap: where there is none it costs a pointer, not the size of
// one (a million queries' trees hold millions of stream expressions, most without a
// predicate). Copies are deep, as std::optional's are.
template <class T>
class Box {
 public:
  Box() = default;
  Box(T value) : p_(std::make_unique<T>(std::move(value))) {}  // NOLINT: as std::optional
  Box(const Box& o) : p_(o.p_ ? std::make_unique<T>(*o.p_) : nullptr) {}
  Box(Box&&) noexcept = default;
  Box& operator=(Box o) noexcept {
    p_ = std::move(o.p_);
    return *this;
  }
  ~Box() = default;
  explicit operator bool() const { return p_ != nullptr; }
  T& operator*() { return *p_; }
  const T& operator*() const { return *p_; }
  T* operator->() { return p_.get(); }
  const T* operator->() const { return p_.get(); }

 private:
  std::unique_ptr<T> p_;
};

// 1-based line and column, plus the 0-based byte offset into the script text.
struct Pos {
  uint32_t line = 1;
  uint32_t column = 1;
  uint32_t offset = 0;
};

// How an attribute reference was written: `a`, `$.a`, `$1.a`, `$2.a`.
enum class RefScope : uint8_t { Bare, Last, First, Second };

// Time units of duration literals (`10 MIN`, `10min`, `3 SECONDS`).
enum class TimeUnit : uint8_t { Us, Ms, Sec, Min, Hour, Day };

enum class ExprKind : uint8_t {
  IntLit,       // int_value
  FloatLit,     // float_value
  StringLit,    // text (unescaped)
  DurationLit,  // number (int_value or float_value by is_float) and unit
  Ref,          // scope, text = attribute name
  Dur,          // DUR
  Neg,          // - args[0]
  Binary,       // args[0] op args[1]; op in BinOp
  Call,         // text = function name as written; args
  Compare,      // args[0] cmp args[1]
  And,          // args (>= 2)
  Or,           // args (>= 2)
  Not,          // args[0]
};

enum class BinOp : uint8_t { Add, Sub, Mul, Div, Mod, Pow };
enum class CmpOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge };  // `<>` parses as Ne

struct Expr {  // (the one-byte fields first, beside the position: 96 bytes, not 104)
  ExprKind kind = ExprKind::IntLit;
  bool is_float = false;  // DurationLit: the number was written with a fraction
  RefScope scope = RefScope::Bare;
  BinOp op = BinOp::Add;
  CmpOp cmp = CmpOp::Eq;
  TimeUnit unit = TimeUnit::Ms;
  Pos pos;
  int64_t int_value = 0;
  double float_value = 0;
  std::string text;  // StringLit value, Ref attribute name, Call function name
  std::vector<Expr> args;
};

// One aggregate `term AS name` of a FOLD.
struct Aggregate {
  Pos pos;
  Expr value;
  std::string name;
};

struct Query;

enum class StreamKind : uint8_t {
  Name,      // name
  Filter,    // FILTER{pred} inputs[0]
  Next,      // inputs[0] NEXT{pred} inputs[1]
  Fold,      // inputs[0] FOLD{pred, pred2, aggregates} inputs[1]
  Union,     // inputs[0] UNION inputs[1] UNION ... (>= 2, flattened)
  Subquery,  // "(" query ")"
};

struct StreamExpr {
  StreamKind kind = StreamKind::Name;
  Pos pos;            // first character of the expression; for Next/Fold/Filter: the keyword
  std::string name;   // Name
  Box<Expr> pred;     // Filter (always set), Next / Fold θ1 (unset when empty)
  Box<Expr> pred2;    // Fold θ2 (unset when empty)
  std::vector<Aggregate> aggregates;  // Fold
  std::vector<StreamExpr> inputs;
  std::shared_ptr<Query> subquery;  // Subquery
};

struct SelectItem {
  Pos pos;
  bool star = false;
  Expr value;                        // unset when star
  std::optional<std::string> alias;  // AS name
};

struct Query {
  Pos pos;
  bool has_select = false;  // false: `FROM`-less form, the stream expression's schema as is
  std::vector<SelectItem> items;
  StreamExpr from;
  std::optional<std::string> publish;
  Pos publish_pos;
};

struct AttrDecl {
  Pos pos;
  std::string name;
  std::string type;  // as written: INT, FLOAT or STRING in any case (checked by the compiler)
  Pos type_pos;
};

struct CreateStream {
  Pos pos;
  std::string name;
  std::vector<AttrDecl> attrs;
};

using Statement = std::variant<CreateStream, Query>;

struct Script {
  std::vector<Statement> statements;
};

// A compact, stable, one-line-per-statement text form used by tests and `cayuga explain`.
// Examples: `(next (name Stock) (name Stock) (cmp = (ref 1 Name) (ref 2 Name)))`.
std::string dump(const Expr& e);
std::string dump(const StreamExpr& s);
std::string dump(const Query& q);
std::string dump(const Statement& s);
std::string dump(const Script& s);

const char* to_string(BinOp op);
const char* to_string(CmpOp op);
const char* to_string(TimeUnit u);

}  // namespace cayuga::ast

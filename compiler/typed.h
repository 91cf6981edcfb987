// The typed algebra: what the analyzer (compiler/analyzer.cpp) makes of the AST.
//
// Names are resolved to (side, attribute index), every expression node carries its type, and
// implicit INT→FLOAT promotions are explicit `ToFloat` nodes, so the interpreter and the JIT
// never need to reason about types. Each query is a tree of algebra operators (CEL.md §6) with
// its output schema computed exactly as CEL.md §5 says.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/types.h"
#include "lang/ast.h"

namespace cayuga {

// Which row a reference reads.
//  - In FILTER and SELECT there is one row: the operand's output (`a` and `$1.a` → First).
//  - In NEXT{θ}: First = the left (S1) value, Second = the incoming S2 event.
//  - In FOLD{θ1, θ2, f}: First = the first (left) event's S1 value, Last = the last value of an
//    S1 attribute (previous S2 event's value for attributes S2 also has, else the current
//    aggregate), Second = the incoming S2 event.
// `index` is an attribute index into S1's schema for First and Last, into S2's for Second.
enum class Side : uint8_t { First, Last, Second };

enum class Func : uint8_t { Contains, Similarity, Abs, Min, Max, Length, Lower, Upper };
const char* to_string(Func f);

enum class TOp : uint8_t {
  Const,    // type, value (a string constant holds its interned id)
  Ref,      // type, side, index
  Dur,      // INT: t1 - t0 (FILTER/SELECT: of the row; NEXT/FOLD: e.t1 - instance.t0)
  ToFloat,  // FLOAT: kids[0] is INT
  Neg,      // type of kids[0] (INT or FLOAT)
  Add, Sub, Mul, Div, Mod,  // both kids of `type` (INT or FLOAT)
  Pow,      // FLOAT, both kids FLOAT
  Call,     // func, kids; type = result type (MIN/MAX/ABS take kids of result type)
  Eq, Ne, Lt, Le, Gt, Ge,   // boolean; both kids of the same type (INT, FLOAT or STRING)
  And, Or,  // boolean; kids >= 2
  Not,      // boolean; kids[0]
  True,     // boolean constant: an empty NEXT/FOLD predicate
};

struct TExpr {
  TOp op = TOp::True;
  Type type = Type::Int;  // value type; unused for boolean ops
  Side side = Side::First;
  Func func = Func::Contains;
  uint32_t index = 0;
  Slot value{};
  std::vector<TExpr> kids;

  // This node without its kids, for rebuilding a tree bottom-up.
  TExpr shell() const {
    TExpr s;
    s.op = op;
    s.type = type;
    s.side = side;
    s.func = func;
    s.index = index;
    s.value = value;
    return s;
  }

  bool is_bool() const {
    return op == TOp::True || op == TOp::And || op == TOp::Or || op == TOp::Not ||
           (op >= TOp::Eq && op <= TOp::Ge);
  }
};

enum class PlanKind : uint8_t { Source, Filter, Select, Next, Fold, Union };

struct Plan {
  PlanKind kind = PlanKind::Source;
  ast::Pos pos;
  Schema schema;            // output schema
  std::string stream;       // Source: the stream name read
  // (Boxed: a million queries' plans have millions of nodes, most without a predicate.)
  ast::Box<TExpr> pred;   // Filter: θ over First; Next: θ; Fold: θ1 (True when empty)
  ast::Box<TExpr> pred2;  // Fold: θ2 (True when empty)
  struct Aggregate {
    uint32_t target;  // index into S1's schema (an S1-only attribute)
    TExpr value;
  };
  std::vector<Aggregate> aggregates;  // Fold
  std::vector<TExpr> items;           // Select: one expression per output attribute, over First
  std::vector<Plan> inputs;           // Filter/Select: 1; Next/Fold: 2 (left, right); Union: >= 2
};

struct QueryPlan {
  uint32_t number = 0;   // 1-based position among the script's queries
  std::string publish;   // the PUBLISH name, or "q<number>"
  ast::Pos pos;
  Plan root;
};

// Streams known to a script: inputs declared with CREATE STREAM and streams published by queries
// (of this script or already running in the engine).
struct StreamInfo {
  Schema schema;
  bool is_input = false;              // declared by CREATE STREAM
  std::vector<uint32_t> publishers;   // query numbers (this script) publishing it
};

// Streams a script may use without declaring them (those of a running engine), as the analyzer
// asks for them: by name, and all of their names only for an error's message.
class StreamSource {
 public:
  virtual ~StreamSource() = default;
  // The stream called `name` (its publishers left empty), or nullopt.
  virtual std::optional<StreamInfo> find(std::string_view name) const = 0;
  // Every stream's name, in any order.
  virtual std::vector<std::string> names() const = 0;
};

struct Catalog : StreamSource {
  std::map<std::string, StreamInfo, std::less<>> streams;
  std::optional<StreamInfo> find(std::string_view name) const override {
    const auto it = streams.find(name);
    if (it == streams.end()) return std::nullopt;
    return StreamInfo{it->second.schema, it->second.is_input, {}};
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& [name, info] : streams) out.push_back(name);
    return out;
  }
};

struct AnalyzedScript {
  Catalog catalog;                 // every stream the script declares, publishes or reads
  std::vector<std::string> inputs; // CREATE STREAM names in script order
  std::vector<QueryPlan> queries;  // in script order
  // Queries in an order where every publisher comes before its subscribers.
  std::vector<uint32_t> topo_order;
};

// Stable text forms used by tests and `cayuga explain`.
std::string dump(const TExpr& e);
std::string dump(const Plan& p);

}  // namespace cayuga
